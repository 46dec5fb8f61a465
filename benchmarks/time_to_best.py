"""Time to best: how many epochs (and seconds) each search method spends before its best
result is within ``--within`` (0.3 pp) of the full grid's best val accuracy (issue 12).

Methods, each with the same trial budget (the grid's size) and the same seeds:

* ``grid``: every cell of the grid once, in the GridSampler's seeded order;
* ``random``, ``tpe``: Optuna's samplers over the same finite space;
* ``tpe+asha``: TPE with ``early_terminate: {type: hyperband, min_iter: 1, eta: 3}``;
* ``tpe+median``: TPE with Optuna's median pruner, ``pruner: {name: median}``. A method
  the spec refuses (an older sweeper) gets a row saying why instead of figures.

Every study runs in this process through ``sweeper run`` (the CLI's ``main``) with
``--set`` overrides, on one Ray started once. The grid run of each seed is that seed's
reference: its best final ``val_acc``. A method's best-so-far is the best final val_acc
of its COMPLETE trials, in the order their epochs ended; its epochs spent count every
trained epoch, pruned trials' included. Each epoch's end is placed in time from the study's
own files: the trial's ``ended_at`` and ``wall_s`` (trial table) and the epoch's running
``train_s`` (history).

The full benchmark (the seed's 96-config MLP grid for 100 epochs, 3 seeds) needs a GPU.
The CPU reduction: ``--configs`` (a sub-grid: the longest value lists lose their last
values until at most that many configs remain; a continuous parameter becomes three
values), ``--epochs``, ``--train-size``/``--val-size``/``--test-size`` (a Fashion-MNIST slice), ``--seeds``;
W&B and checkpoints are off (``--set wandb.mode=disabled train.checkpoint=false``).
A rerun with the same ``--out`` re-reads the finished studies there instead of training.

    python benchmarks/time_to_best.py --sweep sweeps/mlp_grid.yaml --epochs 27 \\
        --train-size 5000 --seeds 0,1,2      # every cell, ASHA rungs at 1, 3, 9; ~47 min
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
ASHA = "early_terminate={type: hyperband, min_iter: 1, eta: 3}"
METHODS: dict[str, list[str]] = {
    "grid": ["method=grid", "sampler=grid"],
    "random": ["sampler=random"],
    "tpe": ["sampler=tpe"],
    "tpe+asha": ["sampler=tpe", ASHA],
    "tpe+median": ["sampler=tpe", "pruner={name: median}"],
}


def sub_grid(parameters: dict[str, Any], configs: int) -> dict[str, Any]:
    """Every swept parameter as a finite ``values`` list, cut to at most ``configs`` cells."""
    values = {}
    for name, p in parameters.items():
        if "values" in p:
            values[name] = list(p["values"])
        elif "value" not in p:  # a continuous range: its ends and their (geometric) middle
            lo, hi = float(p["min"]), float(p["max"])
            mid = math.sqrt(lo * hi) if "log" in p.get("distribution", "") else (lo + hi) / 2
            values[name] = [lo, mid, hi]
    while math.prod(len(v) for v in values.values()) > configs:
        longest = max(values, key=lambda k: len(values[k]))
        if len(values[longest]) == 1:
            break
        values[longest].pop()
    return {**parameters, **{k: {"values": v} for k, v in values.items()}}


def write_sweep(source: Path, folder: Path, configs: int) -> tuple[Path, int]:
    raw = yaml.safe_load(source.read_text())
    raw["parameters"] = sub_grid(raw["parameters"], configs)
    raw.pop("early_terminate", None)
    raw.pop("run_cap", None)
    n = math.prod(len(p["values"]) for p in raw["parameters"].values() if "values" in p)
    path = folder / f"{raw['name']}_sub.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path, n


def accepted(sweep: Path, sets: list[str]) -> str | None:
    """None when the spec accepts the overrides, else the one-line error."""
    from sweeper.errors import SweeperError
    from sweeper.spec import load_spec

    try:
        load_spec(str(sweep), overrides=sets)
    except SweeperError as exc:
        return str(exc)
    return None


def epochs_in_order(study: Any) -> list[tuple[float, str, int, float | None]]:
    """Every trained epoch as (ended at, trial, epoch, the trial's final val_acc if this is
    the last epoch of a COMPLETE trial, else None), in the order the epochs ended."""
    trials = study.trials().set_index(study.trials()["trial_id"].astype(str))
    hist = study.history()
    out = []
    for rec in hist.itertuples(index=False):
        row = trials.loc[str(rec.trial_id)]
        started = float(row["ended_at"]) - float(row["wall_s"])
        done = started + float(rec.train_s)
        last = int(rec.epoch) == int(row["epochs"]) and row["state"] == "COMPLETE"
        out.append(
            (done, str(rec.trial_id), int(rec.epoch), float(row["val_acc"]) if last else None)
        )
    return sorted(out)


def time_to_target(study: Any, target: float) -> dict[str, Any]:
    """Epochs and seconds (from the first trial's training start) until the best-so-far is
    at least ``target``; ``best``: the final best, ``total_epochs``: every epoch trained."""
    order = epochs_in_order(study)
    trials = study.trials()
    t0 = float((trials["ended_at"] - trials["wall_s"]).min()) if order else 0.0  # first start
    best, spent = -math.inf, 0
    found: tuple[int, float] | None = None
    for spent, (done, _, _, final) in enumerate(order, start=1):
        if final is not None:
            best = max(best, final)
            if found is None and best >= target:
                found = (spent, done - t0)
    return {"epochs": found[0] if found else None, "seconds": found[1] if found else None,
            "total_epochs": spent, "best": best}  # fmt: skip


def run_one(sweep: Path, out: Path, name: str, sets: list[str], budget: int) -> Any:
    from sweeper.cli import main
    from sweeper.store import Study

    if (out / name / "study.json").exists():
        done = Study.open(name, out)
        if done.meta().get("state") == "finished":  # a rerun re-reads the studies it has
            return done
        raise SystemExit(f"{out / name}: not finished; remove it or resume it first")
    _start_ray()
    argv = ["run", str(sweep), "--out", str(out), "--name", name, "--max-trials", str(budget)]
    for item in sets:
        argv += ["--set", item]
    with open(out / f"{name}.log", "w") as log:  # the run's own table and progress lines
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            code = main(argv)
    if code != 0:
        raise SystemExit(f"{name}: sweeper run exited {code}")
    return Study.open(name, out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sweep", default=str(REPO / "sweeps" / "mlp_grid.yaml"))
    p.add_argument("--configs", type=int, default=96, help="at most this many grid cells")
    p.add_argument("--epochs", type=int, default=None, help="train.epochs (default: the file's)")
    p.add_argument("--train-size", type=int, default=None)
    p.add_argument("--val-size", type=int, default=None)
    p.add_argument("--test-size", type=int, default=None)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--within", type=float, default=0.003, help="target: grid best - this")
    p.add_argument("--out", default=None, help="folder for the studies (default: a temp dir)")
    args = p.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "disabled")
    folder = Path(args.out or tempfile.mkdtemp(prefix="time_to_best_"))
    folder.mkdir(parents=True, exist_ok=True)
    sweep, n = write_sweep(Path(args.sweep), folder, args.configs)
    base = ["wandb.mode=disabled", "train.checkpoint=false", "resources.cpus=1"]
    for key, value in (("train.epochs", args.epochs), ("data.train_size", args.train_size),
                       ("data.val_size", args.val_size), ("data.test_size", args.test_size)):  # fmt: skip
        if value is not None:
            base.append(f"{key}={value}")
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    if methods[0] != "grid":
        methods = ["grid", *[m for m in methods if m != "grid"]]  # the reference runs first
    t0 = time.perf_counter()
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    skipped: dict[str, str] = {}
    reference: dict[int, float] = {}
    for method in methods:
        sets = [*base, *METHODS[method]]
        refused = accepted(sweep, sets)
        if refused is not None:
            skipped[method] = refused
            continue
        for seed in seeds:
            name = f"{method.replace('+', '_')}_s{seed}"
            study = run_one(sweep, folder, name, [*sets, f"train.seed={seed}"], n)
            if method == "grid":
                reference[seed] = time_to_target(study, math.inf)["best"]
            res = time_to_target(study, reference[seed] - args.within)
            results[method].append(res)
            print(f"  {name}: {res}", file=sys.stderr, flush=True)
    print(table(results, skipped, n, args, time.perf_counter() - t0, reference))
    return 0


def _start_ray() -> None:
    """One Ray for every study (a no-op once started): ``sweeper run`` then uses it."""
    from sweeper.engine.tune import init_ray, ray_env
    from sweeper.spec import spec_from_dict

    ray_env(spec_from_dict({"name": "env", "model": {"name": "mlp"}}, "time_to_best"))
    init_ray(os.cpu_count() or 1)


def _mean(values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    if not got:
        return "-"
    return f"{statistics.mean(got):.1f}" + (
        "" if len(got) == len(values) else f" ({len(got)} of {len(values)})"
    )


def table(results: dict, skipped: dict, n: int, args: Any, wall: float, reference: dict) -> str:
    grid_epochs = (
        statistics.mean(r["total_epochs"] for r in results["grid"]) if results.get("grid") else None
    )
    lines = [
        f"Machine: {platform.node()} ({os.cpu_count()} CPUs, {platform.processor() or platform.machine()}), "
        f"python {platform.python_version()}; {len(reference)} seed(s), {n} configs, "
        f"target: within {args.within * 100:.1f} pp of each seed's grid best "
        f"({', '.join(f'{v:.4f}' for v in reference.values())}); wall {wall:.0f} s.",
        "",
        "| method | epochs to target | % of grid's epochs | seconds to target | epochs spent in all | final best val_acc |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for method, rows in results.items():
        if method in skipped:
            lines.append(
                f"| {method} | refused by the spec (`{skipped[method][:60]}...`) | | | | |"
            )
            continue
        to = [r["epochs"] for r in rows]
        share = [None if e is None or not grid_epochs else 100 * e / grid_epochs for e in to]
        lines.append(
            f"| {method} | {_mean(to)} | {_mean(share)} | {_mean([r['seconds'] for r in rows])} "
            f"| {_mean([r['total_epochs'] for r in rows])} "
            f"| {statistics.mean(r['best'] for r in rows):.4f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
