"""Orchestration cost of a large study: N one-epoch trials of a tiny XOR MLP.

Runs ``sweeper run`` in this process on a random search of N trials (2 at a time on a
2-core machine, W&B disabled), then prints, for the first and the last 1,000 trials to end,
the wall time per trial, the training time per trial (the epochs), the orchestration cost
per trial (wall time less training spread over the trial slots: trial start-up, Ray, the
driver's records), and the bytes this driver wrote per trial (``wchar`` of
/proc/self/io: the study folder, Ray's experiment snapshots, logs). The per-trial figures of
the last 1,000 should match the first 1,000's: no cost grows with the study's size.

    python benchmarks/scale.py --trials 10000          # about half an hour on 2 cores
    python benchmarks/scale.py --trials 2000 --window 500
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

SWEEP = """\
name: scale
method: random
metric: {{name: val_acc, goal: maximize}}
run_cap: {trials}
parameters:
  width: {{min: 1, max: 8}}
  lr: {{min: 0.01, max: 0.5, distribution: log_uniform_values}}
model: {{name: xor_mlp}}
data: {{name: xor, val_size: 200}}
train: {{epochs: 1, batch_size: 128, optimizer: sgd, per_class: false}}
resources: {{cpus: 1, num_cpus: {cpus}}}
wandb: {{mode: disabled}}
"""


def written_bytes() -> int:
    """Bytes this process has passed to write() so far."""
    with open("/proc/self/io") as f:
        fields = dict(line.split(": ") for line in f.read().splitlines())
    return int(fields["wchar"])


class Sampler(threading.Thread):
    """(time, bytes written) every ``every`` seconds while the study runs."""

    def __init__(self, every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.every = every
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.time(), written_bytes()))
            self.stop.wait(self.every)
        self.samples.append((time.time(), written_bytes()))

    def bytes_at(self, t: float) -> float:
        import numpy as np

        times, counts = zip(*self.samples, strict=True)
        return float(np.interp(t, times, counts))


def window(df, sampler: Sampler, t0: float, lo: int, hi: int, slots: int) -> dict:
    """Figures for the trials that ended lo-th to hi-th (0-based, hi exclusive)."""
    ends = df["ended_at"].to_numpy()
    start = t0 if lo == 0 else ends[lo - 1]
    span = ends[hi - 1] - start
    part = df.iloc[lo:hi]
    n = hi - lo
    train = float(part["wall_s"].sum())  # the epochs themselves (start-up is orchestration)
    return {
        "trials": f"{lo + 1:,}-{hi:,}",
        "wall_per_trial": span / n,
        "train_per_trial": train / n,
        "orchestration": (span - train / slots) / n,
        "bytes_per_trial": (sampler.bytes_at(ends[hi - 1]) - sampler.bytes_at(start)) / n,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--window", type=int, default=1_000, help="trials in each measured window")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs Ray may use (one per trial)")
    ap.add_argument("--out", help="folder for the study (default: a temporary one)")
    args = ap.parse_args()
    os.environ.setdefault("WANDB_MODE", "disabled")
    from sweeper.cli import main as sweeper
    from sweeper.store import Study

    out = Path(args.out or tempfile.mkdtemp(prefix="sweeper-scale-"))
    sweep = out / "scale.yaml"
    out.mkdir(parents=True, exist_ok=True)
    sweep.write_text(SWEEP.format(trials=args.trials, cpus=args.cpus))
    sampler = Sampler()
    sampler.start()
    t0 = time.time()
    code = sweeper(["run", str(sweep), "--out", str(out), "--force-new"])
    total = time.time() - t0
    sampler.stop.set()
    sampler.join()
    if code != 0:
        print(f"sweeper run exited {code}", file=sys.stderr)
        return code
    df = Study.open("scale", out).trials().sort_values("ended_at").reset_index(drop=True)
    n, w = len(df), min(args.window, len(df))
    first_end = df["ended_at"].iloc[0]
    t_first = first_end - df["wall_s"].iloc[0] - df["startup_s"].iloc[0]
    rows = [
        window(df, sampler, t_first, 0, w, args.cpus),
        window(df, sampler, t_first, n - w, n, args.cpus),
    ]
    print(
        f"\n{n:,} trials ({', '.join(f'{s}: {c}' for s, c in df['state'].value_counts().items())}) "
        f"in {total:.0f} s, {args.cpus} at a time; study folder {out / 'scale'}\n"
    )
    print(
        "| trials (by end) | wall s/trial | training s/trial | orchestration s/trial | driver bytes written/trial |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['trials']} | {r['wall_per_trial']:.4f} | {r['train_per_trial']:.4f} | "
            f"{r['orchestration']:.4f} | {r['bytes_per_trial']:,.0f} |"
        )
    ratio = rows[1]["orchestration"] / rows[0]["orchestration"]
    print(f"\nlast/first orchestration cost: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
