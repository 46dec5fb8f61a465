"""Where the wall time of one small ``sweeper run`` goes: a timeline of the driver.

Runs ``sweeper run`` in this process with timers wrapped around the steps of the CLI
path (spec, data, study folder, engine imports, ``ray.init``, the object-store put, the
Tuner, ``fit``, ``ray.shutdown``, the closing summary) and around the driver callback's
sinks (table and history records, the Optuna mirror, W&B, the progress line), then prints
the steps in order (start and length, seconds from the interpreter's start) and the time
inside each sink. The driver's callback runs inside Ray Tune's control loop and a trial's
``tune.report`` waits for the driver to take its result, so sink time is on every
trial's path. Trial-side figures (actor start, imports, data) come from the study folder.

    python benchmarks/startup_breakdown.py                       # 8 configs x 8 epochs
    python benchmarks/startup_breakdown.py --configs 8 --epochs 2 --train-size 10000
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sweep_throughput import grid_configs, subset_sweep  # noqa: E402


def process_start() -> float:
    """This process's start time (epoch seconds, to the kernel's 10 ms tick)."""
    with open("/proc/stat") as f:
        btime = next(int(ln.split()[1]) for ln in f if ln.startswith("btime"))
    with open("/proc/self/stat") as f:
        ticks = int(f.read().rpartition(")")[2].split()[19])
    return btime + ticks / os.sysconf("SC_CLK_TCK")


T0 = process_start()
STEPS: list[tuple[str, float, float]] = []  # (name, start, end) in epoch seconds
SINKS: dict[str, float] = defaultdict(float)  # sink -> seconds inside it
EVENTS: list[tuple[float, str, str, float]] = []  # (time, event, trial id, epoch_s)


def step(name: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t = time.time()
        try:
            return fn(*args, **kwargs)
        finally:
            STEPS.append((name, t, time.time()))

    return wrapper


def sink(name: str, fn, event: str | None = None):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        if event:  # callback events: (self, iteration, trials, trial[, result])
            trial = args[3] if len(args) > 3 else kwargs.get("trial")
            result = args[4] if len(args) > 4 else kwargs.get("result") or {}
            EVENTS.append(
                (time.time(), event, getattr(trial, "trial_id", ""), result.get("epoch_s", 0.0))
            )
        try:
            return fn(*args, **kwargs)
        finally:
            SINKS[name] += time.perf_counter() - t

    return wrapper


def patch(module: str, attr: str, wrap) -> None:
    """Wrap ``module.attr`` (``Class.method`` allowed); a name that is gone is skipped."""
    try:
        owner = importlib.import_module(module)
        *path, last = attr.split(".")
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, last, wrap(getattr(owner, last)))
    except (ImportError, AttributeError) as exc:
        print(f"(not timed: {module}.{attr}: {exc})", file=sys.stderr)


def instrument() -> None:
    import ray

    STEPS.append(("python start-up + import ray", T0, time.time()))
    for attr, name in [
        ("_plan", "spec + plan (registry checks)"),
        ("_load_data", "load data (driver)"),
        ("print_summary", "closing summary table"),
    ]:
        patch("sweeper.cli._run", attr, functools.partial(step, name))
    for attr, name in [
        ("init_ray", "ray.init"),
        ("make_trainable", "data into the object store (with_parameters)"),
        ("build_tuner", "Tuner + OptunaSearch set-up"),
    ]:
        patch("sweeper.engine.tune", attr, functools.partial(step, name))
    patch("sweeper.engine.tune", "run_study", functools.partial(step, "run_study (all)"))
    patch("sweeper.store", "Study.create", functools.partial(step, "study folder"))
    patch("ray.tune", "Tuner.fit", functools.partial(step, "Tuner.fit (all)"))
    ray.shutdown = step("ray.shutdown", ray.shutdown)
    cb = "sweeper.engine.callbacks"
    patch(cb, "StudyCallback._record", functools.partial(sink, "trial table"))
    patch(cb, "StudyCallback._record_history", functools.partial(sink, "history"))
    patch(cb, "StudyCallback._reconcile", functools.partial(sink, "reconcile + mirror open"))
    patch(cb, "StudyCallback.close", functools.partial(sink, "close (all sinks)"))
    patch(
        cb,
        "StudyCallback.on_trial_start",
        functools.partial(sink, "callback: on_trial_start", event="start"),
    )
    patch(
        cb,
        "StudyCallback.on_trial_result",
        functools.partial(sink, "callback: on_trial_result", event="result"),
    )
    patch(
        cb,
        "StudyCallback.on_trial_complete",
        functools.partial(sink, "callback: on_trial_complete", event="complete"),
    )
    patch("sweeper.optuna_mirror", "OptunaMirror.record", functools.partial(sink, "optuna mirror"))
    for name in ("start", "log", "finish", "close"):
        patch(
            "sweeper.engine.tracking", f"WandbSink.{name}", functools.partial(sink, f"W&B {name}")
        )
    patch("sweeper.engine.progress", "Progress.show", functools.partial(sink, "progress line"))


def trial_figures(study_dir: Path) -> list[dict]:
    """Per trial: when its function began (starts.jsonl), start-up and training seconds."""
    from sweeper.store import Study

    out = []
    df = Study(study_dir).trials()
    for row in df.to_dict(orient="records"):
        starts = sorted((study_dir / "tune").glob(f"*{row['trial_id']}*/starts.jsonl"))
        began = json.loads(starts[0].read_text().splitlines()[0])["time"] if starts else None
        out.append(
            {
                "trial": row["trial_id"],
                "began": began,
                "startup_s": row.get("startup_s"),
                "wall_s": row.get("wall_s"),
            }
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", default="sweeps/mlp_grid.yaml")
    ap.add_argument("--configs", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--train-size", type=int, default=10_000)
    ap.add_argument("--data-dir", default=os.environ.get("SWEEPER_DATA_DIR"))
    ap.add_argument("--wandb", default=None, help="offline | disabled (default: the file's)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    instrument()
    from sweeper.cli import main as sweeper

    out = Path(tempfile.mkdtemp(prefix="sweeper-startup-"))
    configs = grid_configs(args.sweep)[: args.configs]
    sweep = subset_sweep(args.sweep, configs, args.epochs, args.train_size, out)
    argv = ["run", str(sweep), "--out", str(out), "--force-new"]
    argv += ["--data-dir", args.data_dir] if args.data_dir else []
    argv += ["--wandb", args.wandb] if args.wandb else []
    t_main = time.time()
    code = sweeper(argv)
    t_end = time.time()
    if code != 0:
        print(f"sweeper run exited {code}", file=sys.stderr)
        return code
    trials = trial_figures(out / "bench")
    report(t_main, t_end, trials)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"steps": STEPS, "sinks": SINKS, "events": EVENTS, "trials": trials})
        )
    return 0


def between_epochs(events: list) -> float:
    """Median gap between a trial's consecutive results, less the later epoch's own time:
    the checkpoint, ``tune.report``'s round trip through the driver, Tune's bookkeeping."""
    import statistics

    last: dict[str, float] = {}
    gaps = []
    for t, event, trial, epoch_s in events:
        if event == "result" and trial in last:
            gaps.append(t - last[trial] - epoch_s)
        if event in ("result", "start"):
            last[trial] = t
    return statistics.median(gaps) if gaps else float("nan")


def report(t_main: float, t_end: float, trials: list[dict]) -> None:
    print(f"\nwall from process start to the end of main(): {t_end - T0:.2f} s")
    print("\n| step | starts at (s) | seconds |\n|---|---:|---:|")
    for name, a, b in sorted(STEPS, key=lambda s: s[1]):
        print(f"| {name} | {a - T0:.2f} | {b - a:.2f} |")
    ev = sorted(EVENTS)
    if ev:
        first_start = next(t for t, e, *_ in ev if e == "start")
        first_result = next((t for t, e, *_ in ev if e == "result"), first_start)
        last = max(t for t, e, *_ in ev if e == "complete")
        print(
            f"\nfirst trial started (driver) at {first_start - T0:.2f} s, first result at "
            f"{first_result - T0:.2f} s, last trial complete at {last - T0:.2f} s"
        )
        print(f"between epochs, beyond the epoch itself: {between_epochs(ev):.3f} s (median)")
    began = [t["began"] for t in trials if t["began"]]
    if began:
        print(f"first trial function began at {min(began) - T0:.2f} s")
    train = sum(float(t["wall_s"] or 0) for t in trials)
    startup = sum(float(t["startup_s"] or 0) for t in trials)
    print(f"trials: {train:.2f} s training, {startup:.2f} s trial start-up (sums over trials)")
    print("\n| driver sink | seconds |\n|---|---:|")
    for name, s in sorted(SINKS.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {s:.3f} |")


if __name__ == "__main__":
    sys.exit(main())
