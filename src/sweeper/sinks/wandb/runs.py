"""One W&B run per trial, written from the driver (offline by default).

The Ray Tune callback in :mod:`sweeper.sinks.wandb.sink` turns trial events into calls on a
:class:`WandbTracker`. W&B is a record, never a dependency of the study: every failure
(wandb missing, no key, no network, a server error) prints one warning and the study goes
on, falling back from ``online`` to ``offline`` (upload later with ``sweeper sync``) and from
a broken ``offline`` to nothing. The first online failure switches the whole study to
offline (:mod:`sweeper.sinks.wandb.online` says when not to try at all): the run that failed
is opened offline from its start, and no later run waits on the server again.

A trial's run id is derived from the study name and the trial id, so a resumed trial
continues its run instead of starting a new one (offline, the continuation is a second
``offline-run-*`` folder with the same id, which ``wandb sync`` appends in order).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import shutil
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweeper.sinks.wandb.offline import last_step
from sweeper.sinks.wandb.online import (
    DEFAULT_INIT_TIMEOUT_S,
    PROBE_TIMEOUT_S,
    init_timeout,
    online_folders,
    unreachable,
    unsynced_offline_runs,
)

MODES = ("offline", "online", "disabled")
CACHE_ENV = "WANDB_CACHE_DIR"  # where W&B's service writes its debug logs
_RESERVED = re.compile(r"[^A-Za-z0-9_.-]")


def run_id(study: str, trial_id: str) -> str:
    """The W&B run id of a trial: the same on every start, so resuming continues the run."""
    name = _RESERVED.sub("-", study)
    if len(name) > 64:  # keep ids short; a digest keeps long names distinct
        name = f"{name[:55]}-{hashlib.sha1(study.encode()).hexdigest()[:8]}"
    return f"{name}-{_RESERVED.sub('-', trial_id)}"


def config_value(value: Any) -> Any:
    """A config value W&B's parallel coordinates can use: numbers stay, the rest is text
    (a list, mapping or null as JSON: ``[1, 2]``, ``{"a": 1}``, ``null``)."""
    from sweeper.spec.values import value_text

    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value_text(value)
    return value


def run_config(spec: Any, params: dict[str, Any]) -> dict[str, Any]:
    """A trial's W&B config: fixed settings, then every swept value as a top-level scalar.

    Args:
        spec: the study's :class:`~sweeper.spec.Spec`.
        params: the swept values of the trial (Ray's ``trial.config``).
    """
    from sweeper.trial.config import resolve_trial

    cfg = resolve_trial(spec, params)
    train = cfg.train.model_dump(exclude={"optimizer_args"})
    fixed: dict[str, Any] = {
        "study": spec.name,
        "model": spec.model.label if cfg.model == spec.model.ref else cfg.model,  # own: file:fn
        **{k: _plain(v) for k, v in cfg.model_args.items()},
        **train,
        **cfg.optimizer_kwargs,
        "dataset": spec.data.label,
        **{
            f"data_{k}": v
            for k, v in spec.data.model_dump(
                exclude={"name", "root", "path", "import_", "args"}
            ).items()
        },
        **{f"data_{k}": _plain(v) for k, v in spec.data.args.items()},  # emnist: data_split
        "metric": spec.metric.name,
        "goal": spec.metric.goal,
    }
    swept = {_key(k): config_value(v) for k, v in cfg.params.items()}
    return {**fixed, **swept}


def _key(name: str) -> str:
    # W&B reads dots in config keys as nesting; ``channels.1`` becomes ``channels_1``.
    return name.replace(".", "_")


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def numeric(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a metrics dict (what a history row and a summary hold)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[key] = value
    return out


@dataclass
class TrackerSettings:
    """Where and how a study's runs are recorded.

    Attributes:
        mode: ``offline`` (files under ``<root>/wandb``), ``online`` or ``disabled``.
        root: the folder that receives ``wandb/`` (the study folder).
        group: the W&B group (the study's name); each run's id derives from it.
    """

    mode: str
    root: Path
    group: str
    project: str = "sweeper"
    entity: str | None = None
    tags: list[str] = field(default_factory=list)


class WandbTracker:
    """Opens, fills and closes one W&B run per trial; never raises."""

    def __init__(self, settings: TrackerSettings) -> None:
        self.settings = settings
        self.mode = settings.mode if settings.mode in MODES else "offline"
        self.runs: dict[str, Any] = {}
        self._last: dict[str, int] = {}  # trial -> the last step its open run holds
        self._wandb: Any = None
        self._online_checked = False
        self._started = False  # a run was opened: close() waits for W&B to write it out
        self._warned: set[str] = set()
        if settings.mode not in MODES:
            self.warn(f"unknown W&B mode {settings.mode!r}; recording offline")

    @property
    def enabled(self) -> bool:
        return self.mode != "disabled"

    @property
    def wandb_dir(self) -> Path:
        return self.settings.root / "wandb"

    def warn(self, message: str) -> None:
        """One line on stderr, once per message: W&B trouble never stops a study."""
        if message not in self._warned:
            self._warned.add(message)
            print(f"sweeper: warning: {message}", file=sys.stderr)

    def prepare(self) -> None:
        """Import wandb and start its service now, so that the first run opens at once."""
        if not self.enabled or not self._import():
            return
        try:
            self._setup()
            self._started = True  # close() shuts the service down
        except Exception as exc:  # noqa: BLE001 - the first run tries again, and falls back
            self.warn(f"W&B did not start its service ({_oneline(exc)})")

    # -- trial events --------------------------------------------------------------------
    def start(
        self,
        trial_id: str,
        name: str,
        config: dict[str, Any],
        job_type: str,
        done: Sequence[tuple[int, dict[str, Any]]] = (),
    ) -> None:
        """Open (or, for a resumed trial, continue) the trial's run.

        Args:
            done: the epochs the study already holds for the trial, as ``(step, metrics)``
                (a resumed trial); those its earlier W&B records lack are logged first.
        """
        if not self.enabled or trial_id in self.runs or not self._import():
            return
        if self.mode == "online" and not self._online_checked:
            self._online_checked = True
            problem = self._online_problem()
            if problem:
                self._fall_back("online", problem)
        held = self._held(trial_id) if done else None
        for mode in (self.mode, "offline"):
            if self._open(trial_id, name, config, job_type, mode):
                break
            if mode != "online":
                return
        if held is not None:
            self._last[trial_id] = held
        for step, metrics in done:
            self.log(trial_id, step, metrics)

    def _open(
        self, trial_id: str, name: str, config: dict[str, Any], job_type: str, mode: str
    ) -> bool:
        """Open the run in ``mode``; a failure falls back (online) or disables W&B."""
        before = online_folders(self.wandb_dir) if mode == "online" else set()
        try:
            self.runs[trial_id] = self._init(trial_id, name, config, job_type, mode)
            self._started = True
            return True
        except Exception as exc:  # noqa: BLE001 - any W&B failure is a warning
            if mode != "online":
                self._disable(f"W&B could not start a run ({_oneline(exc)})")
                return False
            self._fall_back("online", _oneline(exc))
        # The failed run left a folder that holds nothing to upload: `wandb sync` must not
        # try it. W&B's service still holds the failed run's id for a moment, and an offline
        # run of the same id would be refused as "in use": restart the service (no run is
        # open after a failed first init; with runs open, the offline init tries its luck).
        for folder in online_folders(self.wandb_dir) - before:
            shutil.rmtree(folder, ignore_errors=True)
        if not self.runs:
            self._restart_service()
        return False

    def log(self, trial_id: str, step: int, metrics: dict[str, Any]) -> None:
        """One history row (an epoch) for the trial, at ``step``; a step the run already
        holds is skipped (W&B would drop it with a warning of its own)."""
        run = self.runs.get(trial_id)
        if run is None or int(step) <= self._last.get(trial_id, -1):
            return
        self._last[trial_id] = int(step)
        try:
            run.log(numeric(metrics), step=int(step))
        except Exception as exc:  # noqa: BLE001
            self.warn(f"W&B could not log trial {trial_id} ({_oneline(exc)})")

    def finish(self, trial_id: str, summary: dict[str, Any], exit_code: int = 0) -> None:
        """Write the trial's summary and close its run."""
        run = self.runs.pop(trial_id, None)
        self._last.pop(trial_id, None)
        if run is None:
            return
        try:
            run.summary.update(summary)
            run.finish(exit_code=exit_code)
        except Exception as exc:  # noqa: BLE001
            self.warn(f"W&B could not finish trial {trial_id} ({_oneline(exc)})")

    def close(self, summary: dict[str, Any] | None = None) -> None:
        """Close every run still open (an interrupted study; resuming continues them), then
        wait for W&B to write everything out, so the study's files are whole on return."""
        for trial_id in list(self.runs):
            self.finish(trial_id, summary or {"state": "INTERRUPTED"}, exit_code=1)
        if self._started:
            self._started = False
            try:
                self._wandb.teardown()
            except Exception as exc:  # noqa: BLE001
                self.warn(f"W&B did not shut down cleanly ({_oneline(exc)})")

    def forget(self, known: Iterable[str]) -> None:
        """Delete offline runs of trials Ray no longer knows (begun after its last snapshot).

        Ray resumes from its snapshot, so such a trial is suggested again under a new id;
        its old offline run would be a stray duplicate in the study's W&B group.
        """
        if not self.wandb_dir.is_dir():
            return
        keep = {run_id(self.settings.group, t) for t in known}
        prefix = run_id(self.settings.group, "")
        for folder in self.wandb_dir.glob("offline-run-*"):
            # the id is in the file's name (a folder made in the same second gets "-1")
            ids = {f.stem.removeprefix("run-") for f in folder.glob("run-*.wandb")}
            if ids and all(i.startswith(prefix) and i not in keep for i in ids):
                shutil.rmtree(folder, ignore_errors=True)

    # -- wandb ---------------------------------------------------------------------------
    def _import(self) -> bool:
        if self._wandb is None:
            # W&B reports its own errors to the W&B server from an exit hook: with the server
            # silent, a study whose online run failed waited ~20 s more at exit. The user's
            # own setting wins.
            os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
            try:
                import wandb
            except Exception as exc:  # noqa: BLE001 - a broken install is an import error too
                self._disable(f"W&B is unavailable ({_oneline(exc)}; `pip install wandb`)")
                return False
            self._wandb = wandb
        return True

    def _init(
        self, trial_id: str, name: str, config: dict[str, Any], job_type: str, mode: str
    ) -> Any:
        s = self.settings
        s.root.mkdir(parents=True, exist_ok=True)
        return self._wandb.init(
            project=s.project,
            entity=s.entity,
            dir=str(s.root),
            id=run_id(s.group, trial_id),
            name=name,
            group=s.group,
            job_type=job_type,
            tags=list(s.tags),
            config=config,
            mode=mode,
            reinit="create_new",  # one run per trial, several open at once
            resume="allow",  # the same id continues the trial's run
            settings=self._wandb.Settings(
                console="off",
                silent=True,
                save_code=False,
                disable_git=True,
                x_disable_meta=True,  # no host, user or command line in the record
                x_disable_stats=True,  # the driver's load says nothing about a trial
                x_disable_machine_info=True,
                x_save_requirements=False,
                init_timeout=self._init_timeout,
            ),
        )

    def _online_problem(self) -> str | None:
        """Why the study's runs cannot go online, found without W&B's login prompt and
        without waiting on the server: the environment, runs not yet uploaded, no key, no
        connection."""
        env_mode = os.environ.get("WANDB_MODE", "")
        if env_mode in ("offline", "dryrun", "disabled"):
            return f"WANDB_MODE={env_mode} in the environment"
        waiting = unsynced_offline_runs(self.wandb_dir)
        if waiting:
            return (
                f"the study holds {len(waiting)} offline runs not yet uploaded, which its "
                "trials continue; upload them first"
            )
        try:
            if not self._wandb.login(prompt=False, verify=False):
                return "no W&B API key: run `wandb login` or set WANDB_API_KEY"
            settings = self._setup().settings
            proxies = (settings.http_proxy, settings.https_proxy)
            return unreachable(settings.base_url, min(PROBE_TIMEOUT_S, self._init_timeout), proxies)
        except Exception as exc:  # noqa: BLE001
            return _oneline(exc)

    @property
    def _init_timeout(self) -> float:
        try:
            return init_timeout()
        except ValueError as exc:
            self.warn(f"{exc}; W&B waits {DEFAULT_INIT_TIMEOUT_S:g} s")
            return DEFAULT_INIT_TIMEOUT_S

    def _held(self, trial_id: str) -> int:
        """The last step the trial's earlier local W&B records hold (-1: none)."""
        try:
            step = last_step(self.wandb_dir, run_id(self.settings.group, trial_id))
        except Exception as exc:  # noqa: BLE001 - unreadable records: log everything again
            self.warn(f"W&B records of trial {trial_id} unreadable ({_oneline(exc)})")
            step = None
        return -1 if step is None else step

    def _setup(self) -> Any:
        # silent: W&B's "logged in as" line asks the server who the key belongs to, which
        # waits out the network (and then W&B's exit) when the server is unreachable
        with cache_in(self.wandb_dir):  # the service writes its debug logs there
            return self._wandb.setup(settings=self._wandb.Settings(silent=True))

    def _restart_service(self) -> None:
        try:
            self._wandb.teardown()
            self._setup()
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - the next init starts one
            self.warn(f"W&B did not restart its service ({_oneline(exc)})")

    def _fall_back(self, mode: str, why: str) -> None:
        if self.mode == mode:
            self.mode = "offline"
            self.warn(
                f"W&B {mode} failed ({why}); recording offline in {self.wandb_dir}, "
                f"upload later with `sweeper sync {self.settings.root}`"
            )

    def _disable(self, why: str) -> None:
        self.mode = "disabled"
        self.warn(f"{why}; the study goes on without W&B")


def _oneline(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@contextlib.contextmanager
def cache_in(wandb_dir: Path) -> Iterator[None]:
    """``WANDB_CACHE_DIR`` as ``<wandb_dir>/cache`` while W&B starts its service (which
    keeps its debug logs, ``core-debug-*.log``, there), unless the user set it; never left
    in the environment, so nothing else this process starts inherits a study's folder."""
    if os.environ.get(CACHE_ENV):
        yield
        return
    os.environ[CACHE_ENV] = str(wandb_dir / "cache")
    try:
        yield
    finally:
        os.environ.pop(CACHE_ENV, None)
