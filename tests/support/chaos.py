"""The chaos harness for ``sweeper resume``: SIGKILL drivers at chosen moments, read the
study back after each kill, resume, and check the study at the end.

Used by ``tests/test_chaos.py`` (the short form CI runs) and ``benchmarks/chaos.py`` (the
long form: 10 kills, a table per cycle); the drivers are :mod:`tests.support.drivers`. A
grid sweep (MLP width x depth x optimizer, a few epochs on a slice of Fashion-MNIST) runs as
``python -m sweeper.cli`` in a new session; at a moment (seeded) the driver gets SIGKILL,
the Ray processes it leaves behind (its session) are killed, the study folder is read back
(it must always be readable), and ``sweeper resume`` starts again. After the last kill one
resume runs to the end, and the study is checked: every planned config exactly once, all
COMPLETE, each (trial, epoch) once in the history, each trial once in optuna.db, and trials
that had epochs done before a kill continued from a checkpoint (each trial's
``starts.jsonl``).
"""

from __future__ import annotations

import itertools
import json
import random
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweeper.states import TrialState
from tests.support import REPO, sweeps
from tests.support.drivers import Driver, harness_env


def write_sweep(
    folder: Path,
    name: str = "chaos",
    widths: tuple[int, ...] = (16, 32),
    epochs: int = 4,
    train_size: int = 2000,
    batch_size: int = 32,
    executor: str = "auto",
) -> tuple[Path, list[tuple]]:
    """The chaos grid's sweep file; returns it and the planned configs (width, depth, optimizer)."""
    path = sweeps.write_sweep(
        folder,
        name,
        epochs,
        parameters={"width": {"values": list(widths)}, "depth": {"values": [1, 2]}},
        model={"args": None},
        data={"train_size": train_size},
        train={"batch_size": batch_size},
        resources={"executor": executor},
    )
    return path, sorted(itertools.product(widths, (1, 2), ("adam", "sgd")))


# -- reading the study back --------------------------------------------------------------


@dataclass
class Snapshot:
    """What the study folder says at one moment (read through sweeper.store: must not fail)."""

    state: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    history_pairs: dict[tuple[str, int, str], int] = field(default_factory=dict)
    optuna_ids: list[str] = field(default_factory=list)

    def complete(self) -> set[str]:
        return {r["trial_id"] for r in self.rows if r["state"] == TrialState.COMPLETE}

    def epochs(self) -> dict[str, int]:
        return {r["trial_id"]: int(r["epochs"] or 0) for r in self.rows}

    def configs(self) -> list[tuple]:
        return [config_of(r) for r in self.rows]


def config_of(row: dict[str, Any]) -> tuple:
    return (int(row["config/width"]), int(row["config/depth"]), str(row["config/optimizer"]))


def read_study(path: Path) -> Snapshot:
    """Read the study folder as ``sweeper status`` would; raises if anything is unreadable."""
    from sweeper.store import Study

    snap = Snapshot()
    if not (path / "study.json").exists():
        return snap  # killed before the study was created
    study = Study.open(str(path))
    snap.state = study.meta().get("state")
    study.spec()
    df = study.trials()
    study.history()
    snap.rows = [{k: v for k, v in r.items()} for r in df.to_dict(orient="records")]
    for r in snap.rows:
        r["trial_id"] = str(r["trial_id"])
    # the history as its readers see it (restart marks applied): each key once per epoch
    for rec in study.history_file.long().itertuples(index=False):
        key = (str(rec.trial_id), int(rec.epoch), str(rec.key))
        snap.history_pairs[key] = snap.history_pairs.get(key, 0) + 1
    if (path / "optuna.db").exists():
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        try:
            ot = optuna.load_study(study_name=path.name, storage=study.optuna_url)
            snap.optuna_ids = [t.user_attrs.get("trial_id") for t in ot.trials]
        except KeyError:  # the database exists but holds no study yet
            pass
    return snap


def starts(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Each trial's starts (``starts.jsonl`` in its Ray folder), keyed by trial id."""
    out: dict[str, list[dict[str, Any]]] = {}
    for log in sorted((path / "tune").glob("*/starts.jsonl")):
        trial_id = log.parent.name.split("_")[2]  # ray_trainable_<id>_<n>_...
        lines = [json.loads(ln) for ln in log.read_text().splitlines() if ln.strip()]
        out[trial_id] = sorted(lines, key=lambda d: d["time"])
    return out


# -- the cycles --------------------------------------------------------------------------


@dataclass
class Cycle:
    cycle: int
    command: str
    trigger: str  # what the kill waited for
    kill_s: float  # when it came, seconds after the driver's start
    snapshot_torn: bool | None  # the newest Ray snapshot left torn by the kill (None: none)
    killed: bool
    exit_code: int | None
    state_at_kill: str | None
    finished_before: int  # COMPLETE rows in trials.csv right after the kill
    running_with_epochs: dict[str, int]  # trial -> epochs done, for unfinished trials
    duplicated_at_kill: int  # configs with two rows in trials.csv after the kill
    lost: int = 0  # trials COMPLETE at the kill but not kept to the end
    resumed: int = 0  # unfinished trials with epochs done that continued from a checkpoint
    restarted: int = 0  # ... that started over from epoch 0
    dropped: int = 0  # ... unknown to Ray's snapshot (begun after it): rerun under a new id
    redone_epochs: int = 0  # epochs trained again (kill between checkpoint and result)


@dataclass
class Outcome:
    cycles: list[Cycle]
    planned: list[tuple]
    final_rows: list[dict[str, Any]]
    final_state: str | None
    final_exit: int
    lost: int  # planned configs missing from the final table
    duplicated: int  # rows beyond one per config
    not_complete: int  # final rows not COMPLETE
    history_duplicates: int  # (trial, epoch, key) written more than once
    history_gaps: int  # trials whose history is not exactly epochs 1..N
    optuna_trials: int
    optuna_duplicates: int
    resumes: int  # resume commands run (kills + the final one)
    torn_set_aside: int  # snapshot files of torn Ray snapshots that a resume set aside
    wall_s: float

    def ok(self) -> bool:
        return (
            self.final_exit == 0
            and self.final_state == "finished"
            and self.lost == 0
            and self.duplicated == 0
            and self.not_complete == 0
            and self.history_duplicates == 0
            and self.history_gaps == 0
            and self.optuna_trials == len(self.planned)
            and self.optuna_duplicates == 0
            and all(c.lost == 0 and c.restarted == 0 for c in self.cycles)
        )


@dataclass(frozen=True)
class Kill:
    """When to SIGKILL a driver: ``after_s`` seconds after its start, or (``epochs`` set) that
    many new epoch results after its start plus ``after_s`` seconds."""

    after_s: float
    epochs: int | None = None
    mid_trial: int | None = None  # also wait for a running trial with 1..mid_trial epochs

    def describe(self) -> str:
        if self.epochs is None:
            return f"at {self.after_s:.1f}s"
        mid = " mid-trial" if self.mid_trial else ""
        return f"{self.epochs} epochs in{mid}, +{self.after_s:.2f}s"


def kill_schedule(rng: random.Random, kills: int, window: tuple[float, float]) -> list[Kill]:
    """The kills: the first during start-up (imports, study creation, ``ray.init``), the
    second early, then a seeded mix of moments in ``window`` and moments a few epoch results
    into a run (so that some land while trials are mid-way)."""
    lo, hi = window
    plan = [Kill(rng.uniform(0.2, 2.5)), Kill(rng.uniform(2.5, 8.0))]
    while len(plan) < kills:
        if rng.random() < 0.5:
            plan.append(Kill(rng.uniform(lo, hi)))
        else:
            plan.append(Kill(rng.uniform(0.0, 0.5), epochs=rng.randint(1, 8)))
    return plan[:kills]


def _rows(study: Path) -> list[dict]:
    """The trial table's rows (trials.csv plus its journal), [] while there are none."""
    from sweeper.store.table import TrialTable

    try:
        return TrialTable(study).rows()
    except (OSError, ValueError):
        return []


def progress(study: Path) -> int:
    """Epochs done over all trials, from the trial table (0 before it exists)."""
    return sum(int(float(r.get("epochs") or 0)) for r in _rows(study))


def running_epochs(study: Path) -> list[int]:
    """Epochs done by each running trial, from the trial table."""
    return [
        int(float(r.get("epochs") or 0))
        for r in _rows(study)
        if r.get("state") == TrialState.RUNNING
    ]


def wait_for_kill(d: Driver, kill: Kill, study: Path) -> bool:
    """Wait for the kill's moment; False if the driver exits first."""
    if kill.epochs is not None:
        base = progress(study)
        while progress(study) < base + kill.epochs or (
            kill.mid_trial and not any(1 <= e <= kill.mid_trial for e in running_epochs(study))
        ):
            if d.proc.poll() is not None:
                return False
            time.sleep(0.02)
    try:
        d.proc.wait(timeout=kill.after_s)
        return False
    except subprocess.TimeoutExpired:
        return True


def snapshot_torn(study: Path) -> bool | None:
    """Whether the newest Ray snapshot in tune/ is torn (None: there is none)."""
    from sweeper.engine.snapshot import read_snapshot

    if not any((study / "tune").glob("experiment_state-*.json")):
        return None
    return bool(read_snapshot(study / "tune").torn)


def run_chaos(
    workdir: Path,
    kills: int = 10,
    seed: int = 0,
    schedule: list[Kill] | None = None,
    window: tuple[float, float] = (0.5, 25.0),
    widths: tuple[int, ...] = (16, 32),
    epochs: int = 4,
    train_size: int = 10000,
    batch_size: int = 16,
    final_timeout: float = 600.0,
    log=print,
    executor: str = "auto",
) -> Outcome:
    """Run, kill, resume ``kills`` times, then resume to the end; check the study."""
    t_start = time.monotonic()
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    sweep, planned = write_sweep(
        workdir,
        widths=widths,
        epochs=epochs,
        train_size=train_size,
        batch_size=batch_size,
        executor=executor,
    )
    out = workdir / "runs"
    study = out / "chaos"
    ray_tmp = Path(tempfile.mkdtemp(prefix="swc", dir="/tmp"))  # short: Ray's socket paths
    env = harness_env(ray_tmp)
    driver_log = workdir / "drivers.log"
    run_args = ["run", str(sweep), "--out", str(out)]
    resume_args = ["resume", "chaos", "--out", str(out)]
    cycles: list[Cycle] = []
    try:
        for i, kill in enumerate(schedule or kill_schedule(rng, kills, window)):
            started = (study / "study.json").exists()
            args = resume_args if started else run_args
            d = Driver(args, driver_log, env, REPO)
            if wait_for_kill(d, kill, study):
                killed = d.kill()
            else:
                killed = False
                d.wait()
            t_kill = d.elapsed()
            snap = read_study(study)  # must be readable after any kill
            torn = snapshot_torn(study)
            running = {
                r["trial_id"]: int(r["epochs"] or 0)
                for r in snap.rows
                if not TrialState.of(r["state"]).ended and int(r["epochs"] or 0) > 0
            }
            configs = snap.configs()
            cycles.append(
                Cycle(
                    cycle=i + 1,
                    command=args[0],
                    trigger=kill.describe(),
                    kill_s=round(t_kill, 2),
                    snapshot_torn=torn,
                    killed=killed,
                    exit_code=d.proc.returncode,
                    state_at_kill=snap.state,
                    finished_before=len(snap.complete()),
                    running_with_epochs=running,
                    duplicated_at_kill=len(configs) - len(set(configs)),
                )
            )
            cycles[-1].__dict__["_complete"] = snap.complete()
            cycles[-1].__dict__["_time"] = time.time()
            log(
                f"cycle {i + 1}: {args[0]} killed at {t_kill:.1f}s ({kill.describe()})"
                if killed
                else f"cycle {i + 1}: {args[0]} exited {d.proc.returncode} after {t_kill:.1f}s"
            )
            log(f"  state {snap.state}, {len(snap.complete())} complete, running {running}")
        # the last resume runs to the end
        final_started = (study / "study.json").exists()
        d = Driver(resume_args if final_started else run_args, driver_log, env, REPO)
        final_exit = d.wait(final_timeout)
        final = read_study(study)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)

    trial_starts = starts(study)
    final_complete = final.complete()
    for c in cycles:
        done_then: set[str] = c.__dict__.pop("_complete")
        t_kill_wall: float = c.__dict__.pop("_time")
        c.lost = len(done_then - final_complete)
        for trial_id, epochs_done in c.running_with_epochs.items():
            later = [s for s in trial_starts.get(trial_id, []) if s["time"] > t_kill_wall]
            if not later:
                # begun after Ray's last snapshot: its row went, its config ran again
                c.dropped += trial_id not in {r["trial_id"] for r in final.rows}
                continue
            first = later[0]["epoch"]
            if first == 0:
                c.restarted += 1
            else:
                c.resumed += 1
                c.redone_epochs += max(0, epochs_done - first)

    configs = final.configs()
    dup_hist = sum(n - 1 for n in final.history_pairs.values() if n > 1)
    gaps = 0
    for r in final.rows:
        got = sorted({e for (t, e, _k) in final.history_pairs if t == r["trial_id"]})
        if got != list(range(1, int(r["epochs"]) + 1)):
            gaps += 1
    return Outcome(
        cycles=cycles,
        planned=planned,
        final_rows=final.rows,
        final_state=final.state,
        final_exit=final_exit,
        lost=len(
            set(planned) - {config_of(r) for r in final.rows if r["state"] == TrialState.COMPLETE}
        ),
        duplicated=len(configs) - len(set(configs)),
        not_complete=sum(r["state"] != TrialState.COMPLETE for r in final.rows),
        history_duplicates=dup_hist,
        history_gaps=gaps,
        optuna_trials=len(final.optuna_ids),
        optuna_duplicates=len(final.optuna_ids) - len(set(final.optuna_ids)),
        resumes=sum(c.command == "resume" for c in cycles) + (1 if final_started else 0),
        torn_set_aside=len(list((study / "tune").glob("*.torn"))),
        wall_s=round(time.monotonic() - t_start, 1),
    )


def table(outcome: Outcome) -> str:
    """The cycles and totals as a Markdown table."""
    head = (
        "| cycle | command | kill trigger | killed at (s) | state at kill | Ray snapshot "
        "| trials finished before kill | unfinished with epochs done | lost trials "
        "| duplicated trials | resumed from checkpoint | restarted from epoch 0 "
        "| epochs redone |"
    )
    lines = [head, "|" + "---|" * 13]
    for c in outcome.cycles:
        snap = {None: "none yet", True: "torn", False: "ok"}[c.snapshot_torn]
        lines.append(
            f"| {c.cycle} | {c.command} | {c.trigger} "
            f"| {f'{c.kill_s:.1f}' if c.killed else f'exited at {c.kill_s:.1f}'} "
            f"| {c.state_at_kill or '(no study yet)'} | {snap} | {c.finished_before} "
            f"| {len(c.running_with_epochs)} | {c.lost} | {c.duplicated_at_kill} | {c.resumed} "
            f"| {c.restarted} | {c.redone_epochs} |"
        )
    kills = sum(c.killed for c in outcome.cycles)
    lines.append("")
    lines.append(
        f"Totals: {kills} kills, {outcome.resumes} resumes; final study "
        f"{outcome.final_state!r} (exit {outcome.final_exit}): {len(outcome.final_rows)} rows "
        f"for {len(outcome.planned)} planned configs; lost {outcome.lost}, duplicated "
        f"{outcome.duplicated}, not COMPLETE {outcome.not_complete}; resumed from a checkpoint "
        f"{sum(c.resumed for c in outcome.cycles)}, restarted from epoch 0 "
        f"{sum(c.restarted for c in outcome.cycles)}, begun after Ray's snapshot and rerun "
        f"{sum(c.dropped for c in outcome.cycles)}, epochs redone "
        f"{sum(c.redone_epochs for c in outcome.cycles)}; history (trial, epoch, key) written "
        f"twice {outcome.history_duplicates}, trials with gaps {outcome.history_gaps}; optuna.db "
        f"{outcome.optuna_trials} trials ({outcome.optuna_duplicates} duplicated); torn "
        f"snapshot files set aside {outcome.torn_set_aside}; "
        f"{outcome.wall_s:.0f} s in all."
    )
    return "\n".join(lines)
