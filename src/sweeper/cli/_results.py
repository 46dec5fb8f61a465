"""``sweeper report``, ``export`` and ``sync``: what a study's folder gives back."""

from __future__ import annotations

import argparse

from sweeper.cli._console import console


def report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-o", "--output", metavar="FILE",
        help="the file to write (default <study>/report.html, report.md, or report_csv/)",
    )  # fmt: skip
    p.add_argument(
        "--format", choices=("html", "md", "csv"), default="html",
        help="html: one self-contained page with the figures (default); md: the tables as "
        "Markdown; csv: the tables as CSV files in a folder",
    )  # fmt: skip
    p.add_argument(
        "--top", type=int, default=10, metavar="K", help="best trials listed (default 10)"
    )
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
    p.add_argument(
        "--top", type=int, default=3, metavar="K", help="how many best configs (default 3)"
    )
    p.add_argument(
        "-o", "--output", metavar="DIR",
        help="the folder to write the exports into (default <study>/export)",
    )  # fmt: skip


def cmd_export(args: argparse.Namespace) -> int:
    """Export the best K configs (--top, default 3) as runnable sweep files, each with its
    metrics and weights, in its own folder: top<rank>_<trial>/."""
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
    from sweeper.sinks.wandb import offline_run_dirs, sync_runs
    from sweeper.store import Study

    study = Study.open(args.study, args.out)
    folders = offline_run_dirs(study.path)
    if not folders:
        console().print(f"study {study.name}: no offline W&B runs under {study.path / 'wandb'}")
        return 0
    return sync_runs(folders, entity=study.spec().wandb.entity, dry_run=args.dry_run)
