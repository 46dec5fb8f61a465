#!/usr/bin/env python
"""Chaos benchmark for ``sweeper resume``: SIGKILL the driver at random moments, resume, repeat.

A grid sweep (8-16 MLP configs x a few epochs on a slice of Fashion-MNIST) runs as a
subprocess in its own session; at a random moment (seeded) the driver gets SIGKILL, the Ray
processes it leaves behind (its session) are killed, the study folder is read back (it must
always be readable), and ``sweeper resume`` starts again. After the last kill one resume runs
to the end, and the study is checked: every planned config exactly once, all COMPLETE, each
(trial, epoch) once in the history, each trial once in optuna.db, and trials that had epochs
done before a kill continued from a checkpoint (each trial's ``starts.jsonl``).

Usage (from the project root)::

    SWEEPER_DATA_DIR=../shared/data .venv/bin/python benchmarks/chaos.py --kills 10

Prints a table per kill cycle and the totals; ``--json F`` also writes them to F. The harness
is ``tests/support/chaos.py``, shared with ``tests/test_chaos.py`` (the short form that CI
runs).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the harness is tests.support.chaos

from tests.support.chaos import run_chaos, table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--widths", default="16,32,64,128", help="grid widths (x 2 depths x 2 optimizers)"
    )
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--train-size", type=int, default=10000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--window", default="0.5,25", help="kill-time window in seconds: lo,hi")
    p.add_argument("--workdir", help="keep the study and the drivers' log here")
    p.add_argument("--json", help="also write the cycles and totals to this file")
    p.add_argument(
        "--executor", default="auto", choices=("auto", "host", "process"), help="resources.executor"
    )
    args = p.parse_args(argv)
    lo, hi = (float(x) for x in args.window.split(","))
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="chaos-"))
    outcome = run_chaos(
        workdir,
        kills=args.kills,
        seed=args.seed,
        window=(lo, hi),
        widths=tuple(int(w) for w in args.widths.split(",")),
        epochs=args.epochs,
        train_size=args.train_size,
        batch_size=args.batch_size,
        log=lambda s: print(s, file=sys.stderr, flush=True),
        executor=args.executor,
    )
    print(table(outcome))
    print(f"\nstudy and drivers' log: {workdir}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({**asdict(outcome), "ok": outcome.ok()}, indent=2, default=str)
        )
    return 0 if outcome.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
