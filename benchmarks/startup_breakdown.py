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
    python benchmarks/startup_breakdown.py --repeats 3           # medians of 3 fresh runs
    python benchmarks/startup_breakdown.py --configs 8 --epochs 2 --train-size 10000

Sink seconds spent on a thread of the driver's own (W&B, the Optuna mirror) are marked
"(thread)": they are not on the control loop's path.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
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
            main = threading.current_thread() is threading.main_thread()
            SINKS[name if main else f"{name} (thread)"] += time.perf_counter() - t

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
    if hasattr(importlib.import_module("sweeper.engine.tune"), "shutdown_ray"):
        patch("sweeper.engine.tune", "shutdown_ray", functools.partial(step, "ray shutdown"))
    else:  # before engine/session.py
        ray.shutdown = step("ray shutdown", ray.shutdown)
    cb = "sweeper.engine.callbacks"
    patch("sweeper.sinks.table", "TableSink._record", functools.partial(sink, "trial table"))
    patch("sweeper.sinks.table", "TableSink._history", functools.partial(sink, "history"))
    patch(cb, "StudyCallback._begin", functools.partial(sink, "reconcile + sinks' start"))
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
    patch("sweeper.sinks.mirror", "OptunaMirror.record", functools.partial(sink, "optuna mirror"))
    for name in (
        "trial_started",
        "trial_result",
        "trial_ended",
        "close",
        "_start",
        "_log",
        "_finish",
    ):
        label = f"W&B {name.lstrip('_')}"
        patch("sweeper.sinks.wandb.sink", f"WandbSink.{name}", functools.partial(sink, label))
    patch("sweeper.sinks.wandb", "WandbTracker.prepare", functools.partial(sink, "W&B start-up"))
    patch("sweeper.sinks.mirror", "MirrorSink._open", functools.partial(sink, "mirror open"))
    patch("sweeper.sinks.progress", "Progress.show", functools.partial(sink, "progress line"))


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


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", default="sweeps/mlp_grid.yaml")
    ap.add_argument("--configs", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--train-size", type=int, default=10_000)
    ap.add_argument("--data-dir", default=os.environ.get("SWEEPER_DATA_DIR"))
    ap.add_argument("--wandb", default=None, help="offline | disabled (default: the file's)")
    ap.add_argument("--repeats", type=int, default=1, help="fresh runs; the table has medians")
    ap.add_argument("--json", help="write this run's figures to this file")
    return ap.parse_args(argv)


def main() -> int:
    args = parse()
    if args.repeats > 1:
        return repeated(args)
    instrument()
    from sweeper.cli import main as sweeper

    out = Path(tempfile.mkdtemp(prefix="sweeper-startup-"))
    configs = grid_configs(args.sweep)[: args.configs]
    sweep = subset_sweep(args.sweep, configs, args.epochs, args.train_size, out)
    argv = ["run", str(sweep), "--out", str(out), "--force-new"]
    argv += ["--data-dir", args.data_dir] if args.data_dir else []
    argv += ["--wandb", args.wandb] if args.wandb else []
    code = sweeper(argv)
    t_end = time.time()
    if code != 0:
        print(f"sweeper run exited {code}", file=sys.stderr)
        return code
    figures = phases(t_end, trial_figures(out / "bench"))
    print_phases([figures])
    if args.json:
        Path(args.json).write_text(json.dumps(figures))
    return 0


def repeated(args: argparse.Namespace) -> int:
    """Run this script ``--repeats`` times, each in a fresh interpreter; print medians."""
    runs = []
    for i in range(args.repeats):
        target = Path(tempfile.mkdtemp(prefix="startup-breakdown-")) / "run.json"
        cmd = [sys.executable, __file__, "--repeats", "1", "--json", str(target)]
        for flag in ("sweep", "configs", "epochs", "train_size", "data_dir", "wandb"):
            value = getattr(args, flag)
            if value is not None:
                cmd += [f"--{flag.replace('_', '-')}", str(value)]
        load = os.getloadavg()[0]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        runs.append(json.loads(target.read_text()))
        print(f"run {i + 1}: {runs[-1]['wall']['total wall']:.1f} s (load {load:.2f})", flush=True)
    print_phases(runs)
    return 0


def phases(t_end: float, trials: list[dict]) -> dict:
    """The run's figures: its phases in order (wall seconds) and the sinks' seconds."""
    steps = {name: (a, b) for name, a, b in STEPS}
    ev = sorted(EVENTS)
    began = min((t["began"] for t in trials if t["began"]), default=None)
    first_result = next((t for t, e, *_ in ev if e == "result"), None)
    last = max((t for t, e, *_ in ev if e == "complete"), default=None)
    fit = steps.get("Tuner.fit (all)")

    def span(name: str) -> float | None:
        return steps[name][1] - steps[name][0] if name in steps else None

    wall = {
        "python start-up, imports (ray.tune too: the timers import it first)": steps[
            "spec + plan (registry checks)"
        ][0]
        - T0,
        "spec + plan (registry checks; imports torch)": span("spec + plan (registry checks)"),
        "load data (driver)": span("load data (driver)"),
        "lock, study state, optuna import": steps["ray.init"][0] - steps["study folder"][1],
        "ray.init": span("ray.init"),
        "data into the object store": span("data into the object store (with_parameters)"),
        "Tuner + OptunaSearch set-up": span("Tuner + OptunaSearch set-up"),
        "fit start to the first trial's function (actors, worker imports)": (
            began - fit[0] if began and fit else None
        ),
        "first trial's function to its first result": (
            first_result - began if began and first_result else None
        ),
        "first result to the last trial's end (training)": (
            last - first_result if last and first_result else None
        ),
        "last trial's end to the end of fit (closing the sinks)": (
            fit[1] - last if fit and last else None
        ),
        "ray shutdown": span("ray shutdown"),
        "closing summary table": span("closing summary table"),
        "total wall": t_end - T0,
    }
    return {
        "wall": wall,
        "sinks": dict(SINKS),
        "between_epochs": between_epochs(ev),
        "train_s": sum(float(t["wall_s"] or 0) for t in trials),
        "trial_startup_s": sum(float(t["startup_s"] or 0) for t in trials),
    }


def print_phases(runs: list[dict]) -> None:
    def med(values: list) -> float:
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else float("nan")

    n = len(runs)
    print(f"\n| phase (median of {n}) | seconds |\n|---|---:|")
    for name in runs[0]["wall"]:
        print(f"| {name} | {med([r['wall'][name] for r in runs]):.2f} |")
    print(
        f"\ntrials: {med([r['train_s'] for r in runs]):.2f} s training, "
        f"{med([r['trial_startup_s'] for r in runs]):.2f} s trial start-up (sums over trials); "
        f"between epochs beyond the epoch: {med([r['between_epochs'] for r in runs]):.3f} s"
    )
    names = sorted({k for r in runs for k in r["sinks"]})
    print("\n| driver sink (callback path unless marked) | seconds |\n|---|---:|")
    rows = [(k, med([r["sinks"].get(k, 0.0) for r in runs])) for k in names]
    for name, value in sorted(rows, key=lambda kv: -kv[1]):
        print(f"| {name} | {value:.3f} |")


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


if __name__ == "__main__":
    sys.exit(main())
