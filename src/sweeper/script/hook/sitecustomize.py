"""sweeper's hook in a script trial's interpreter (loaded as ``sitecustomize``).

sweeper puts this folder first on the trial's ``PYTHONPATH``; Python imports
``sitecustomize`` at start-up, so this runs before the script. It does two things, only
when ``SWEEPER_METRICS_FILE`` is set, and then loads any other ``sitecustomize`` on the
path (the one it shadows) as before:

* When the script imports wandb, ``wandb.sdk.wandb_run.Run.log`` is wrapped: after W&B
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
import math
import os
import signal
import sys
import threading
import time

TESTED_WANDB = "0.31."
_TARGET = "wandb.sdk.wandb_run"
_HERE = os.path.dirname(os.path.abspath(__file__))


def _numbers(data: object) -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if isinstance(key, str) and math.isfinite(value):
                out[key] = value
    return out


class _Writer:
    """Appends one JSON line per call to the metrics file (opened on the first call)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.file = None

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
    run_cls = getattr(module, "Run", None)
    original = getattr(run_cls, "log", None)
    if not version.startswith(TESTED_WANDB) or not callable(original):
        raise ImportError(
            f"sweeper: the wandb.log hook is tested with wandb {TESTED_WANDB}x; this script "
            f"imports wandb {version} ({'has' if callable(original) else 'no'} Run.log). "
            f"Install wandb=={TESTED_WANDB}* for the trial's interpreter ({sys.executable})"
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
    """Patches ``wandb.sdk.wandb_run`` right after it is executed, once."""

    def __init__(self, writer: _Writer) -> None:
        self.writer = writer

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001, ANN201
        if name != _TARGET:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader, writer = spec.loader, self.writer
        exec_module = loader.exec_module

        def patched(module):  # noqa: ANN001, ANN202
            exec_module(module)
            _wrap_log(module, writer)

        loader.exec_module = patched  # type: ignore[method-assign]
        return spec


def _watch(pid: int, grace: float) -> None:
    """Stop this process group once ``pid`` (the worker that started it) is gone."""
    while True:
        time.sleep(0.5)
        try:
            os.kill(pid, 0)
            continue
        except PermissionError:
            continue
        except ProcessLookupError:
            pass
        group = os.getpgid(0)
        os.killpg(group, signal.SIGTERM)
        time.sleep(grace)
        os.killpg(group, signal.SIGKILL)


def _install() -> None:
    path = os.environ.get("SWEEPER_METRICS_FILE")
    if not path:
        return
    writer = _Writer(path)
    if _TARGET in sys.modules:
        _wrap_log(sys.modules[_TARGET], writer)
    else:
        sys.meta_path.insert(0, _Finder(writer))
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
