"""``sweeper sync STUDY``: upload a study's offline W&B runs with ``wandb sync``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sweeper.errors import SweeperError


def offline_run_dirs(study_path: Path) -> list[Path]:
    """The study's offline run folders, oldest first (a resumed run's parts in order)."""
    folders = (study_path / "wandb").glob("offline-run-*")
    return sorted((f for f in folders if f.is_dir()), key=lambda f: f.name)


def sync_runs(folders: list[Path], *, entity: str | None = None, dry_run: bool = False) -> int:
    """Run ``wandb sync`` on ``folders`` (W&B appends a resumed run's parts in order).

    Raises:
        SweeperError: wandb is missing, or ``wandb sync`` failed (no key, no network).
    """
    cmd = [sys.executable, "-m", "wandb", "sync", "--yes"]
    if entity:
        cmd += ["--entity", entity]
    if dry_run:
        cmd.append("--dry-run")
    try:
        code = subprocess.run([*cmd, *map(str, folders)], check=False, env=_env(folders)).returncode
    except OSError as exc:
        raise SweeperError(f"cannot run wandb sync: {exc}") from None
    if code != 0:
        raise SweeperError(
            f"wandb sync failed (exit {code}); the message above says why: log in with "
            "`wandb login` (or set WANDB_API_KEY) and check the network, then run it again"
        )
    return code


def _env(folders: list[Path]) -> dict[str, str]:
    """``wandb sync``'s environment: its logs (``debug-cli.*.log``, the service's
    ``core-debug-*.log``) go to the study's ``wandb/`` folder, not /tmp and ~/.cache."""
    env = dict(os.environ)
    if folders:
        wandb_dir = folders[0].parent
        env["WANDB_DIR"] = str(wandb_dir.parent)
        env.setdefault("WANDB_CACHE_DIR", str(wandb_dir / "cache"))
    return env
