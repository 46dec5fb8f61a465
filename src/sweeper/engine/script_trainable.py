"""The Ray Tune function trainable of a script trial: the user's program as a subprocess.

Each start runs the program from scratch in the trial's folder (``tune/<trial>/``) with
W&B's agent environment (:mod:`sweeper.script.launch`), then follows the JSON lines the
hook writes for each ``wandb.log`` call: every line holding the sweep's metric is one
``tune.report`` (one iteration for ASHA; its ``epoch`` is the count of such lines), with
the line's other numbers. When the program exits 0 its last such line is reported again
with ``exit_code: 0``, which tells the study the trial ran to its end (COMPLETE, not
PRUNED). A non-zero exit, or an exit without ever logging the metric, fails the trial
with the end of its stderr as the error.

When Ray stops the trial (the scheduler pruned it, or the study was interrupted),
``tune.report`` ends the trainable's thread (``SystemExit``); the ``finally`` stops the
program's process group, SIGTERM then SIGKILL. If the Ray worker itself dies, the hook
inside the program stops the group (it watches the worker's pid).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from sweeper.script.launch import ENV_GRACE, Launch, plan_launch
from sweeper.script.process import DEFAULT_GRACE_S, ScriptProcess

POLL_S = 0.1
DONE_KEY = "exit_code"  # in the last report of a program that exited 0


class ScriptFailed(RuntimeError):
    """The program exited non-zero, or never logged the sweep's metric."""


class MetricsTail:
    """The complete JSON lines appended to a file since the last :meth:`read`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""

    def read(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        *lines, self.partial = (self.partial + chunk).split(b"\n")
        out = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # not the hook's line
            if isinstance(record, dict):
                out.append(record)
        return out


def script_trainable(config: dict[str, Any], spec: Any, study_path: str) -> None:
    """Run one script trial inside a Ray worker (see the module's notes)."""
    from ray import tune

    from sweeper.engine.trainable import log_start, node_name, trial_folder
    from sweeper.search.space import constants, script_config
    from sweeper.sinks.wandb.runs import run_id
    from sweeper.store.table import NODE_KEY

    trial_dir = trial_folder()
    trial_id = tune.get_context().get_trial_id()
    grace = float(os.environ.get(ENV_GRACE) or DEFAULT_GRACE_S)
    values = {**constants(spec), **config}
    launch = plan_launch(
        spec,
        script_config(spec, values),  # the file's order, nested as the file nests
        study_dir=Path(study_path),
        trial_dir=trial_dir,
        run_id=run_id(spec.name, str(trial_id)),
        base_env=dict(os.environ),
        watch_pid=os.getpid(),
        grace_s=grace,
    )
    log_start(trial_dir, 0, None)  # a script always starts from scratch
    node = node_name()
    follow(launch, spec.metric.name, lambda m: tune.report({**m, NODE_KEY: node}), grace)


def follow(launch: Launch, metric: str, report: Any, grace_s: float) -> int:
    """Start the program, report its metric lines as they come, stop it on the way out.

    Returns how many times the metric was reported; raises :class:`ScriptFailed`.
    """
    proc = ScriptProcess(launch)
    started = time.monotonic()
    tail = MetricsTail(launch.metrics)
    count, last, seen = 0, None, set[str]()
    try:
        while True:
            code = proc.poll()  # before reading: every line of an ended program is read
            for record in tail.read():
                seen.update(record)
                if metric in record:
                    count += 1
                    last = _result(record, count, started)
                    report(last)
            if code is not None:
                break
            time.sleep(POLL_S)
    finally:
        proc.stop(grace_s)
    if code != 0:
        raise ScriptFailed(_failure(launch, f"exited with code {code}", proc.stderr_tail()))
    if last is None:
        logged = ", ".join(sorted(k for k in seen if not k.startswith("_"))) or "nothing"
        raise ScriptFailed(
            _failure(launch, f"never logged {metric!r} (logged {logged})", proc.stderr_tail())
        )
    report({**last, DONE_KEY: 0})
    return count


def _result(record: dict[str, Any], count: int, started: float) -> dict[str, Any]:
    """A metric line as a trial result: the script's numbers, ``epoch`` the line's count."""
    out = {k: v for k, v in record.items() if not k.startswith("_")}
    out["step"] = record.get("_step", count)
    out["epoch"] = count
    out["train_s"] = round(time.monotonic() - started, 3)
    return out


def _failure(launch: Launch, what: str, tail: str) -> str:
    name = Path(_program(launch)).name
    return f"{name} {what}" + (f": {tail}" if tail else "")


def _program(launch: Launch) -> str:
    """The script's name in the argv (the first item ending in .py, else the first)."""
    for item in launch.argv:
        if item.endswith(".py"):
            return item
    return launch.argv[0] if launch.argv else "program"
