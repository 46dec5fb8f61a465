"""What one script trial is started with: its argv, environment and files (pure).

The environment is the one W&B's sweep agent gives a run (``Agent._command_run`` in
wandb 0.31's ``wandb_agent.py``), so ``wandb.init()`` in the script, unchanged, joins the
trial: ``WANDB_SWEEP_ID`` (the study's name), ``WANDB_RUN_ID`` (the trial's run id, the
scheme of sweeper's own W&B runs, stable across restarts), and ``WANDB_SWEEP_PARAM_PATH``
naming ``<WANDB_DIR>/wandb/sweep-<sweep id>/config-<run id>.yaml``, the file W&B's agent
writes and ``wandb.init`` reads into ``wandb.config``. ``WANDB_DIR`` is the study folder, so
offline runs land in ``<study>/wandb/offline-run-*`` where ``sweeper sync`` finds them.
``WANDB_RESUME=allow`` with the same id lets a restarted trial continue its run.
``SWEEPER_DATA_DIR`` is the study's data root made absolute (a relative one given to
``sweeper run`` would point elsewhere from the trial's folder).
``WANDB_CACHE_DIR`` (unless set) is ``<study>/wandb/cache``: W&B's own debug logs stay in
the study. The script gets no Ray token (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``): it
trains, as under W&B's agent, and has no business with the study's Ray.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweeper.script.command import build_command, uses_json_file

METRICS_FILE = "metrics.jsonl"  # one JSON object per wandb.log call (the hook writes it)
STDOUT_FILE = "stdout.log"
STDERR_FILE = "stderr.log"
HOOK_DIR = Path(__file__).resolve().parent / "hook"  # holds the hook's sitecustomize.py
# Read by the hook (hook/sitecustomize.py) in the script's interpreter.
ENV_METRICS = "SWEEPER_METRICS_FILE"
ENV_WATCH_PID = "SWEEPER_WATCH_PID"
ENV_GRACE = "SWEEPER_STOP_GRACE_S"
ENV_DATA_DIR = "SWEEPER_DATA_DIR"  # the study's data root, absolute, for the script to read
RAY_TOKEN_VARS = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")  # as engine/guard.py (no Ray here)


@dataclass(frozen=True)
class Launch:
    """A script trial's process: run ``argv`` in ``cwd`` with ``env``; ``files`` first."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    metrics: Path
    stdout: Path
    stderr: Path
    files: dict[Path, str] = field(default_factory=dict)


def param_file_text(config: Mapping[str, Any]) -> str:
    """The sweep-param file W&B's agent writes (``config_util.save_config_file_from_dict``)."""
    import yaml

    text = "wandb_version: 1"
    if config:
        body = {k: {"value": v} for k, v in config.items()}
        text += "\n\n" + yaml.dump(
            body, Dumper=yaml.SafeDumper, default_flow_style=False, allow_unicode=True,
            sort_keys=False,
        )  # fmt: skip
    return text


def wandb_env(spec: Any, study_dir: Path, run_id: str, param_path: Path) -> dict[str, str]:
    """The W&B variables of a trial's process (see the module's notes)."""
    w = spec.wandb
    env = {
        "WANDB_SWEEP_ID": spec.name,
        "WANDB_RUN_ID": run_id,
        "WANDB_SWEEP_PARAM_PATH": str(param_path),
        "WANDB_DIR": str(study_dir),
        "WANDB_PROJECT": w.project,
        "WANDB_MODE": w.mode,
        "WANDB_RESUME": "allow",
        "WANDB_RUN_GROUP": spec.name,
    }
    if w.entity:
        env["WANDB_ENTITY"] = w.entity
    if w.tags:
        env["WANDB_TAGS"] = ",".join(w.tags)
    return env


def plan_launch(
    spec: Any,
    config: Mapping[str, Any],
    *,
    study_dir: Path,
    trial_dir: Path,
    run_id: str,
    base_env: Mapping[str, str],
    watch_pid: int,
    grace_s: float,
) -> Launch:
    """Everything a script trial is started with.

    Args:
        spec: the study's spec (``program`` absolute, as the plan made it).
        config: the trial's parameters, nested (top-level name -> value).
        base_env: the environment the process inherits (the Ray worker's).
        watch_pid: the process whose death the hook takes as "stop" (the Ray worker).
    """
    sweep_dir = study_dir / "wandb" / f"sweep-{spec.name}"
    param_path = sweep_dir / f"config-{run_id}.yaml"
    json_path = sweep_dir / f"config-{run_id}.json"
    drop = {"WANDB_SERVICE", *RAY_TOKEN_VARS}  # W&B's agent drops the first
    env = {k: v for k, v in base_env.items() if k not in drop}
    env.update(wandb_env(spec, study_dir, run_id, param_path))
    env.setdefault("WANDB_CACHE_DIR", str(study_dir / "wandb" / "cache"))
    env["PYTHONPATH"] = _prepend(str(HOOK_DIR), env.get("PYTHONPATH"))
    env[ENV_METRICS] = str(trial_dir / METRICS_FILE)
    env[ENV_WATCH_PID] = str(watch_pid)
    env[ENV_GRACE] = f"{grace_s:g}"
    if spec.data.root:  # absolute (the plan resolved it): the script runs in its trial's folder
        env[ENV_DATA_DIR] = spec.data.root
    argv = build_command(
        spec.command,
        program=spec.program or "",  # no program: the command names what it runs
        config=config,
        interpreter=sys.executable,
        args_json_file=str(json_path),
        getenv=base_env.get,
    )
    files = {param_path: param_file_text(config)}
    if uses_json_file(spec.command):
        files[json_path] = json.dumps(dict(config))
    return Launch(
        argv=argv,
        cwd=trial_dir,
        env=env,
        metrics=trial_dir / METRICS_FILE,
        stdout=trial_dir / STDOUT_FILE,
        stderr=trial_dir / STDERR_FILE,
        files=files,
    )


def _prepend(path: str, current: str | None) -> str:
    return path if not current else f"{path}:{current}"
