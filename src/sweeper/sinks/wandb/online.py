"""Whether a study's W&B runs can go online, found out before a run waits on the server.

wandb 0.31 waits up to ``init_timeout`` seconds in ``wandb.init`` for the server, and its
service retries a refused connection as patiently as an unanswered one (both end in
``CommError: ... context deadline exceeded``). So the tracker asks here first: a server
that refuses the connection, or a name that does not resolve, is known at once, and only a
server that accepts and stays silent costs one init timeout; after the first failure the
whole study records offline. A study that already holds offline runs not yet uploaded keeps
recording offline: a resumed trial's run must continue where its first part is.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

# W&B's own variable (``wandb.env.INIT_TIMEOUT``); sweeper passes its value to wandb.init.
INIT_TIMEOUT_ENV = "WANDB_INIT_TIMEOUT"
# W&B's default is 90 s; a study waits this long at most, once, before it records offline.
DEFAULT_INIT_TIMEOUT_S = 30.0
PROBE_TIMEOUT_S = 5.0
_PROXY_ENV = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def init_timeout() -> float:
    """Seconds ``wandb.init`` may wait for the server: ``$WANDB_INIT_TIMEOUT``, else 30.

    Raises:
        ValueError: the variable is set but is not a positive number of seconds.
    """
    raw = os.environ.get(INIT_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_INIT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise ValueError(f"{INIT_TIMEOUT_ENV} must be a number of seconds > 0, got {raw!r}")
    return value


def unreachable(base_url: str, timeout: float, proxies: tuple[str | None, ...] = ()) -> str | None:
    """Why no TCP connection to the W&B server at ``base_url`` can be made, or None.

    Only the connection is tried (nothing is sent). Behind a proxy the server's own address
    says nothing, so with one configured (``proxies`` or the usual variables) this says None.
    """
    if any(proxies) or any(os.environ.get(name) for name in _PROXY_ENV):
        return None
    url = urlsplit(base_url)
    if not url.hostname:
        return None
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return None
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
        return f"cannot connect to {url.hostname}:{port}: {why}"


def unsynced_offline_runs(wandb_dir: Path) -> list[Path]:
    """The offline run files under ``wandb_dir`` that ``wandb sync`` has not uploaded yet
    (it marks an uploaded ``run-ID.wandb`` with a ``run-ID.wandb.synced`` beside it)."""
    files = Path(wandb_dir).glob("offline-run-*/run-*.wandb")
    return sorted(f for f in files if not f.with_name(f.name + ".synced").exists())


def online_folders(wandb_dir: Path) -> set[Path]:
    """The online run folders under ``wandb_dir`` (``run-<time>-<id>``)."""
    return {f for f in Path(wandb_dir).glob("run-*") if f.is_dir()}
