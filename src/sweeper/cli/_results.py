"""``sweeper report``, ``export`` and ``sync``: what a study's folder gives back."""

from __future__ import annotations

import argparse

from sweeper.cli._console import console


def report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-o", "--output", metavar="FILE",
        help="where to write (default <study>/report.html, report.md, or report_csv/)",
    )  # fmt: skip
    p.add_argument("--format", choices=("html", "md", "csv"), default="html")
    p.add_argument("--top", type=int, default=10, metavar="K", help="best trials listed")
    p.add_argument(
        "--threshold", type=float, metavar="X",
        help="metric value for 'epochs to reach' (default: median of finished trials)",
    )  # fmt: skip


def cmd_report(args: argparse.Namespace) -> int:
    """Write a study's report: one self-contained HTML page (or Markdown / CSV tables)."""
    from sweeper.api import open_study

    study = open_study(args.study, args.out)
    paths = study.report(args.output, format=args.format, top=args.top, threshold=args.threshold)
    out = console()
    for path in paths:
        out.print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


def export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--top", type=int, default=3, metavar="K", help="best configs to export")
    p.add_argument("-o", "--output", metavar="DIR", help="folder to write (default <study>/export)")


def cmd_export(args: argparse.Namespace) -> int:
    """Export the best configs as runnable sweep files, with their metrics and weights."""
    from sweeper.api import open_study

    study = open_study(args.study, args.out)
    metric = study.spec.metric.name
    out = console()
    for item in study.export(args.top, out=args.output):
        value = item.metrics.get(metric)
        out.print(f"#{item.rank} trial {item.trial_id} ({value}): {item.sweep}")
        for path in item.weights:
            out.print(f"    {path.name}")
        if item.note:
            out.print(f"    {item.note}")
    return 0


def sync_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="list the runs, upload nothing")


def cmd_sync(args: argparse.Namespace) -> int:
    """Upload a study's offline W&B runs (``wandb sync``; needs a W&B key and a network)."""
    from sweeper.store import Study
    from sweeper.tracking import offline_run_dirs, sync_runs

    study = Study.open(args.study, args.out)
    folders = offline_run_dirs(study.path)
    if not folders:
        console().print(f"study {study.name}: no offline W&B runs under {study.path / 'wandb'}")
        return 0
    return sync_runs(folders, entity=study.spec().wandb.entity, dry_run=args.dry_run)
