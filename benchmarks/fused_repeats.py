"""Epoch time of R repeats fused into one vmapped model against the same R in a loop.

For each case (the XOR MLP; an MLP on a Fashion-MNIST slice) three configs train through
``train_trial``: one repeat, R repeats fused (``train.fuse: true``) and R repeats in the
loop (``fuse: false``). Rounds interleave the configs (the machine may be shared); each
trial's epochs but its first and last (warm-up; the test evaluation) are timed by the
trial's own ``epoch_s`` (training plus validation). The table gives each config's median
epoch time and the median over rounds of its ratio to one repeat in the same round.

Run: .venv/bin/python benchmarks/fused_repeats.py [--repeats 8] [--rounds 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import torch

CASES = {
    "xor": {
        "model": {"name": "xor_mlp", "args": {"depth": 2, "width": 3}},
        "data": {"name": "xor"},
        "train": {"epochs": 12, "batch_size": 128, "optimizer": "sgd", "lr": 0.1},
    },
    "fashion_mlp": {
        "model": {"name": "mlp", "args": {"depth": 2, "width": 128}},
        "data": {"train_size": 5000, "val_size": 1000, "test_size": 1000},
        "train": {"epochs": 5, "batch_size": 256, "optimizer": "adam", "lr": 1e-3},
    },
}


def trial(case: str, repeats: int, fuse: bool, root: Path) -> list[float]:
    """Train one config; its timed epochs' ``epoch_s``."""
    from sweeper.data import load_splits
    from sweeper.spec import spec_from_dict
    from sweeper.trial import resolve_trial
    from sweeper.trial.loop import TrialContext, train_trial

    base = CASES[case]
    train = {**base["train"], "repeats": repeats, "fuse": fuse, "checkpoint": False}
    spec = spec_from_dict({"name": "bench", **base, "train": train}, "bench")
    epochs: list[float] = []
    ctx = TrialContext(load_splits(spec.data, root), lambda m, _: epochs.append(m["epoch_s"]))
    train_trial(resolve_trial(spec, {}), ctx)
    return epochs[1:-1]


def bench(case: str, repeats: int, rounds: int, root: Path) -> dict[str, tuple[float, float]]:
    """Per config: median epoch seconds, and the median over rounds of its ratio to one
    repeat in the same round (rounds are minutes apart; load on a shared machine drifts)."""
    configs = {
        "1 repeat": (1, True),
        f"{repeats} fused": (repeats, True),
        f"{repeats} loop": (repeats, False),
    }
    times: dict[str, list[float]] = {name: [] for name in configs}
    ratios: dict[str, list[float]] = {name: [] for name in configs}
    trial(case, repeats, True, root)  # warm-up: imports, first vmap
    for _ in range(rounds):
        medians = {}
        for name, (r, fuse) in configs.items():
            epochs = trial(case, r, fuse, root)
            times[name] += epochs
            medians[name] = statistics.median(epochs)
        for name in configs:
            ratios[name].append(medians[name] / medians["1 repeat"])
    return {
        name: (statistics.median(times[name]), statistics.median(ratios[name])) for name in configs
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a trial's cpus)")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support import SHARED_DATA

    root = Path(os.environ.get("SWEEPER_DATA_DIR", SHARED_DATA))
    print(f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} CPUs")
    print("| case | config | epoch ms (median) | x one repeat |")
    print("|---|---|---|---|")
    for case in args.cases:
        for name, (t, ratio) in bench(case, args.repeats, args.rounds, root).items():
            print(f"| {case} | {name} | {t * 1e3:.2f} | {ratio:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
