"""sweeper's hook in a script trial's interpreter (loaded as ``sitecustomize``).

sweeper puts this folder first on the trial's ``PYTHONPATH``; Python imports
``sitecustomize`` at start-up, so this runs before the script. It does two things, only
when ``SWEEPER_METRICS_FILE`` is set, and then loads any other ``sitecustomize`` on the
path (the one it shadows) as before:

* When the script imports wandb, ``wandb.sdk.wandb_run.Run.log`` (and ``NoopRun.log``,
  the run of ``WANDB_MODE=disabled``) is wrapped: after W&B
  has taken a ``log`` call, its numbers (and the run's ``step``) are appended as one JSON
  line to ``$SWEEPER_METRICS_FILE``, which the trial reads as the script goes. ``Run.log``
  is wandb's public method (``wandb.log`` is the current run's ``log``); the wrapper is
  tested with wandb 0.31 (:data:`TESTED_WANDB`), and another version stops the script at
  ``import wandb`` with a message saying so.
* A daemon thread watches ``$SWEEPER_WATCH_PID`` (the Ray worker that started the
  script): if that process dies, nothing would ever stop the script, so it stops its own
  process group (SIGTERM, then SIGKILL after ``$SWEEPER_STOP_GRACE_S``).

Standard library only: it runs in every process the trial starts.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import signal
import sys
import threading
import time
from typing import IO

TESTED_WANDB = "0.31."
# The run classes whose ``log`` is wrapped, by module: W&B's run, and the one that
# ``wandb.init`` returns in ``WANDB_MODE=disabled`` (it overrides ``log``).
_TARGETS = {"wandb.sdk.wandb_run": "Run", "wandb.sdk.lib.noop_run": "NoopRun"}
_HERE = os.path.dirname(os.path.abspath(__file__))


def _numbers(data: object, prefix: str = "") -> dict[str, float]:
    """The numbers of a logged dict; a nested dict's as ``outer.inner`` (W&B's own name).

    NaN and infinities are kept (a diverged run says so); images, tables, text are not.
    """
    out: dict[str, float] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            if not isinstance(key, str):
                continue
            if isinstance(value, dict):
                out.update(_numbers(value, f"{prefix}{key}."))
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                out[prefix + key] = value
    return out


class _Writer:
    """Appends one JSON line per call to the metrics file (opened on the first call)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.file: IO[str] | None = None

    def write(self, record: dict) -> None:
        line = json.dumps(record) + "\n"
        with self.lock:
            if self.file is None:
                self.file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
            self.file.write(line)
            self.file.flush()


def _wrap_log(module: object, writer: _Writer) -> None:
    wandb = sys.modules.get("wandb")
    version = str(getattr(wandb, "__version__", "?"))
    name = _TARGETS[getattr(module, "__name__", "")]
    run_cls = getattr(module, name, None)
    original = getattr(run_cls, "log", None)
    if not version.startswith(TESTED_WANDB) or not callable(original):
        raise ImportError(
            f"sweeper: the wandb.log hook is tested with wandb {TESTED_WANDB}x; this script "
            f"imports wandb {version} ({'with' if callable(original) else 'without'} "
            f"{name}.log). Install wandb=={TESTED_WANDB}* in the trial's interpreter "
            f"({sys.executable})"
        )

    def log(self, data, step=None, commit=None, *args, **kwargs):  # noqa: ANN001, ANN202
        try:  # the step this row goes to (Run.step counts the rows already committed)
            at = int(step if step is not None else self.step)
        except Exception:  # noqa: BLE001 - a step W&B does not expose: the line has none
            at = None
        result = original(self, data, step, commit, *args, **kwargs)
        record = _numbers(data)
        if record:
            if at is not None:
                record["_step"] = at
            writer.write(record)
        return result

    log.__wrapped__ = original  # type: ignore[attr-defined]
    log.__doc__ = original.__doc__
    run_cls.log = log  # type: ignore[union-attr]


class _Finder(importlib.abc.MetaPathFinder):
    """Patches each module of :data:`_TARGETS` right after it is executed, once."""

    def __init__(self, writer: _Writer, names: set[str]) -> None:
        self.writer = writer
        self.names = names

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001, ANN201
        if name not in self.names:
            return None
        self.names.discard(name)
        if not self.names:
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader, writer = spec.loader, self.writer
        exec_module = loader.exec_module

        def patched(module):  # noqa: ANN001, ANN202
            exec_module(module)
            _wrap_log(module, writer)

        loader.exec_module = patched  # type: ignore[method-assign]
        return spec


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie, not yet reaped by its parent, has too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            stat = f.read()
    except OSError:
        return False  # no /proc (not Linux): the signal said it is there
    return stat[stat.rfind(")") + 2 :].startswith("Z")


def _watch(pid: int, grace: float) -> None:
    """Stop this process group once ``pid`` (the worker that started it) is gone."""
    while not _gone(pid):
        time.sleep(0.5)
    group = os.getpgid(0)
    os.killpg(group, signal.SIGTERM)
    time.sleep(grace)
    os.killpg(group, signal.SIGKILL)


def _install() -> None:
    path = os.environ.get("SWEEPER_METRICS_FILE")
    if not path:
        return
    writer = _Writer(path)
    for name in [n for n in _TARGETS if n in sys.modules]:
        _wrap_log(sys.modules[name], writer)
    pending = {n for n in _TARGETS if n not in sys.modules}
    if pending:
        sys.meta_path.insert(0, _Finder(writer, pending))
    pid = os.environ.get("SWEEPER_WATCH_PID", "")
    if pid.isdigit():
        grace = float(os.environ.get("SWEEPER_STOP_GRACE_S") or 5)
        args = (int(pid), grace)
        threading.Thread(target=_watch, args=args, name="sweeper-watch", daemon=True).start()


def _chain() -> None:
    """Run the ``sitecustomize`` this one shadows, if there is one further on the path."""
    rest = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


_install()
_chain()
