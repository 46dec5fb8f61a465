"""One host (``trial/host.py``) against the bare loop and ``train_trial`` on the CPU, in one process.

The same configs (the first ``--configs`` of the sweep file's grid, as in
``sweep_throughput.py``) trained three ways over the same resident data:

* ``bare``: the bare loop of ``throughput_ways.py`` (resident tensors, batches by index),
  one trial after another: no metrics beyond val/test accuracy, no checkpoints.
* ``loop``: ``train_trial`` (the process path's training, what each Ray trial runs), one
  trial after another in this process: what sweeper's own training costs over the bare loop.
* ``host``: every config added to one :class:`~sweeper.trial.host.Host` at once and
  trained round robin, one step of each in turn, reporting what ``train_trial`` reports
  per epoch (train/val metrics, test metrics and per-class accuracy at the end) and, with
  the configs' defaults (``train.checkpoint: true``), a CPU copy of each trial's state per
  epoch (no disk).
* ``fused``: the same host with ``fuse=True`` (``trial/host_fusion.py``): trials of one
  architecture and batch size train as one stacked step (each its own optimizer, lr and
  data order), then evaluate and report alone.

``--configs-from same-arch`` trains 8 configs of ONE architecture (the grid's first: MLP
depth 2, width 32, batch 256) with different optimizers and lrs (:data:`SAME_ARCH`), the
case fusion is for; the grid's first configs differ in batch size and optimizer family.

``--configs-from widths`` trains 8 configs of ONE depth (MLP depth 2, batch 256) whose
hidden widths differ (``--widths``: 32, 64, ..., 256) with mixed optimizers (:data:`MIXED`): ``fused``
pads them to the widest member of their group (``trial/padding.py``) where the padded
parameter count stays within ``padding.MAX_PAD_COST["cpu"]`` times their own (1.0 by
default: no padding on the CPU; ``--max-pad-cost`` sets another bound for the run); the
table's note prints the groups that bound forms.

Timed: the training only (data loaded once, before any way; the host's set-up, model
building included, is inside its time). The ways alternate over ``--repeats`` rounds and the
table shows medians. Prints one Markdown table and the machine; paste both into
benchmarks/RESULTS.md.

    python benchmarks/host_cpu.py                          # 8 configs x 8 epochs, 10k images
    python benchmarks/host_cpu.py --repeats 3 --threads 1
    python benchmarks/host_cpu.py --configs-from same-arch --ways bare,host,fused
    python benchmarks/host_cpu.py --configs-from widths --ways host,fused --max-pad-cost 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sweep_throughput import grid_configs, machine  # noqa: E402
from throughput_ways import bare_trial, job_spec, resident  # noqa: E402

WAYS = {
    "bare": "bare loop, one trial after another",
    "loop": "train_trial, one after another",
    "host": "one host, all trials at once",
    "fused": "one host, fused (same shapes; widths padded)",
}
# one architecture and batch size (the grid's first), 8 optimizer settings
SAME_ARCH = [
    {"depth": 2, "width": 32, "batch_size": 256, "optimizer": opt, **kw}
    for opt, kw in [
        ("adam", {"lr": 1e-3}),
        ("adam", {"lr": 3e-4}),
        ("adam", {"lr": 3e-3}),
        ("adamw", {"lr": 1e-3}),
        ("sgd", {"lr": 0.01, "momentum": 0.9}),
        ("sgd", {"lr": 0.05, "momentum": 0.9}),
        ("sgd", {"lr": 0.1, "momentum": 0.9}),
        ("sgd", {"lr": 0.01, "momentum": 0.0}),
    ]
]

# one depth and batch size, 8 hidden widths (--widths), mixed optimizers (Adam, AdamW, SGD)
WIDTHS = tuple(range(32, 257, 32))
MIXED = [
    ("adam", {"lr": 1e-3}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4}),
    ("adamw", {"lr": 1e-3, "weight_decay": 0.01}),
    ("adam", {"lr": 3e-4}),
    ("sgd", {"lr": 0.1, "momentum": 0.9}),
    ("adamw", {"lr": 2e-3, "weight_decay": 0.05}),
    ("adam", {"lr": 1e-3, "weight_decay": 1e-4}),
    ("sgd", {"lr": 0.01, "momentum": 0.0}),
]


def width_configs(widths: tuple[int, ...]) -> list[dict]:
    """MLP depth 2, batch 256, one config per width, the optimizers of :data:`MIXED` in turn."""
    return [
        {"depth": 2, "width": w, "batch_size": 256, "optimizer": opt, **kw}
        for w, (opt, kw) in zip(widths, MIXED * len(widths), strict=False)
    ]


def run_bare(spec, configs, data) -> tuple[float, list[float]]:
    t0 = time.perf_counter()
    results = [bare_trial(spec, c, data) for c in configs]
    return time.perf_counter() - t0, [r["val_acc"] for r in results]


def run_loop(spec, configs, splits) -> tuple[float, list[float]]:
    from sweeper.trial import resolve_trial
    from sweeper.trial.loop import TrialContext, train_trial

    t0 = time.perf_counter()
    accs = []
    for params in configs:
        final = train_trial(resolve_trial(spec, params), TrialContext(splits, lambda m, s: None))
        accs.append(final["val_acc"])
    return time.perf_counter() - t0, accs


def run_host(spec, configs, splits, fuse: bool = False) -> tuple[float, list[float]]:
    from sweeper.trial import resolve_trial
    from sweeper.trial.host import Host

    t0 = time.perf_counter()
    host = Host(splits, "cpu", fuse=fuse)
    for i, params in enumerate(configs):
        host.add(str(i), resolve_trial(spec, params))
    last: dict[str, float] = {}
    for event in host.run():
        if event.error:
            raise RuntimeError(f"trial {event.trial_id}: {event.error}")
        last[event.trial_id] = event.metrics["val_acc"]
    return time.perf_counter() - t0, [last[str(i)] for i in range(len(configs))]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", default="sweeps/mlp_grid.yaml")
    ap.add_argument("--configs", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--train-size", type=int, default=10_000)
    ap.add_argument("--data-dir", default=os.environ.get("SWEEPER_DATA_DIR"))
    ap.add_argument("--threads", type=int, default=1, help="torch threads (both ways)")
    ap.add_argument("--repeats", type=int, default=3, help="rounds of both ways; medians")
    ap.add_argument("--configs-from", choices=("grid", "same-arch", "widths"), default="grid")
    ap.add_argument(
        "--widths",
        default=",".join(map(str, WIDTHS)),
        help="--configs-from widths: the hidden widths, comma-separated",
    )
    ap.add_argument(
        "--max-pad-cost",
        type=float,
        default=None,
        help="fused: the padded/own parameter bound of a CPU group (default: padding.MAX_PAD_COST)",
    )
    ap.add_argument(
        "--ways", default=",".join(WAYS), help="comma-separated, of: " + ", ".join(WAYS)
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import torch

    from sweeper.data import load_splits

    args = parse(argv)
    torch.set_num_threads(args.threads)
    if args.configs_from == "grid":
        configs = grid_configs(args.sweep)[: args.configs]
    elif args.configs_from == "widths":
        configs = width_configs(tuple(int(w) for w in args.widths.split(",")))[: args.configs]
    else:
        configs = SAME_ARCH[: args.configs]
    if args.max_pad_cost is not None:
        from sweeper.trial import padding

        padding.MAX_PAD_COST["cpu"] = args.max_pad_cost  # this benchmark's process only
    ways = [w.strip() for w in args.ways.split(",")]
    if unknown := set(ways) - set(WAYS):
        raise SystemExit(f"--ways: unknown {sorted(unknown)}; expected some of {list(WAYS)}")
    job = {
        "sweep": args.sweep,
        "epochs": args.epochs,
        "train_size": args.train_size,
        "data_dir": args.data_dir,
    }
    spec = job_spec(job)
    splits = load_splits(spec.data, spec.data.root)
    data = resident(spec)
    walls: dict[str, list[float]] = {way: [] for way in ways}
    cpus: dict[str, list[float]] = {way: [] for way in ways}
    accs: dict[str, list[float]] = {}
    for r in range(args.repeats):
        for way in ways if r % 2 == 0 else ways[::-1]:
            cpu0 = time.process_time()
            if way == "bare":
                wall, acc = run_bare(spec, configs, data)
            elif way == "loop":
                wall, acc = run_loop(spec, configs, splits)
            else:
                wall, acc = run_host(spec, configs, splits, fuse=way == "fused")
            walls[way].append(wall)
            cpus[way].append(time.process_time() - cpu0)
            accs[way] = acc
            print(f"round {r + 1}: {way} {wall:.1f} s", file=sys.stderr)
    print_table(walls, accs, len(configs), args.epochs, cpus)
    if "fused" in ways:
        print(f"\n{padded_groups(spec, configs, splits)}")
    load = os.getloadavg()
    print(
        f"\nconfigs: {args.configs_from}; machine: {machine()}; {args.threads} torch thread(s); train size "
        f"{len(splits.x_train)}; medians of {args.repeats}; load average at the end "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min)"
    )
    return 0


def print_table(walls: dict, accs: dict, n_configs: int, epochs: int, cpus: dict) -> None:
    """The table; ``cpus``: the process's CPU seconds per run (what a loaded machine's
    other work moves least, with one torch thread)."""
    base = statistics.median(walls["bare" if "bare" in walls else next(iter(walls))])
    print(f"\n{n_configs} configs x {epochs} epochs, training only (data loaded before)\n")
    print(
        "| way | wall s (median) | fastest s | all runs s | CPU s (median) "
        "| trial-epochs/s (median) | / bare | best val acc |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for way in walls:
        label, wall = WAYS[way], statistics.median(walls[way])
        runs = ", ".join(f"{w:.1f}" for w in walls[way])
        rate = n_configs * epochs / wall
        print(
            f"| {label} | {wall:.1f} | {min(walls[way]):.1f} | {runs} "
            f"| {statistics.median(cpus[way]):.1f} | {rate:.2f} | {wall / base:.2f}x "
            f"| {max(accs[way]):.4f} |"
        )
    first = next(iter(accs.values()))
    worst = max(abs(a - b) for acc in accs.values() for a, b in zip(first, acc, strict=True))
    print(f"\nlargest difference of a config's final val acc between the ways: {worst:.2g}")


def padded_groups(spec, configs, splits) -> str:
    """One line: the groups ``plan`` forms from ``configs`` at the first epoch boundary,
    each as its members' positions and its padded/own parameter count."""
    from sweeper.trial import padding, resolve_trial
    from sweeper.trial.host import Host
    from sweeper.trial.host_fusion import plan

    host = Host(splits, "cpu", fuse=True)
    for i, params in enumerate(configs):
        host.add(str(i), resolve_trial(spec, params))
    trials = list(host._trials.values())
    shapes = {t.trial_id: padding.param_shapes(t.runs[0].model) for t in trials}
    parts = [
        f"[{', '.join(t.trial_id for t in g)}] "
        f"{padding.pad_cost([shapes[t.trial_id] for t in g]):.2f}x"
        for g in plan(trials, host._keys)
    ]
    every = padding.pad_cost(list(shapes.values()))
    return (
        f"fused groups (config positions, padded/own parameters; bound "
        f"{padding.pad_limit('cpu')}): {'; '.join(parts) or 'none'}; all {len(trials)} in one "
        f"group would be {every:.2f}x"
    )


if __name__ == "__main__":
    sys.exit(main())
