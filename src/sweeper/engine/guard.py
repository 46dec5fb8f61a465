"""What keeps a study's Ray to itself: a per-study token, loopback, a scratch folder of its own.

* **Token.** A one-machine Ray starts with ``RAY_AUTH_MODE=token`` and a fresh random
  ``RAY_AUTH_TOKEN`` (Ray 2.60's token authentication): its GCS, raylet and workers refuse
  any client without it. The token is in this process's environment only while ``ray.init``
  starts Ray's processes, which inherit it; then it leaves, so nothing the driver starts
  later (W&B's service, a script trial) gets it, and it is never written to a file (Ray
  writes ``~/.ray/auth_token`` only when it has to make a token itself).
* **Loopback.** Ray 2.60's ``ray.init`` turns a node address of 127.0.0.1 into the machine's
  network address (``services.resolve_ip_for_localhost``) unless clusters are off
  (``ray_constants.ENABLE_RAY_CLUSTER``, ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, as on macOS):
  then the node is 127.0.0.1, and the GCS, raylet, workers and agents listen on loopback.
* **Scratch.** Ray's temp folder (logs, sockets, spilled objects; 0.5-1 MB a run) is a short
  ``sweeper-<pid>-*`` folder of its own in the system's temp folder, removed at shutdown; a
  run finds those of killed drivers (their pid gone), ends the Ray processes still running
  there, and removes them. Unix socket paths are at most 107 bytes, so the folder stays
  short (a study folder's path would often be too long).
* **Clusters** (``--address``) bring their own token, the way Ray takes it
  (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``); one that answers a
  client without a token gets a warning line (:func:`open_cluster_warning`).

The Ray internals used here (``Config.initialize``, the token loader's cache, the cluster
switch, the GCS's gRPC stubs) are those of Ray 2.60; where one is missing the study runs
with Ray's own behaviour.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
TOKEN_VARS = (TOKEN_ENV, TOKEN_PATH_ENV)
CLUSTER_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
SCRATCH_PREFIX = "sweeper-"
# A socket path is at most 107 bytes; Ray adds /session_<date>_<time>_<us>_<pid> (~40) and
# /sockets/plasma_store (21), and the folder's own name is ~25.
_MAX_PARENT = 20
_SCRATCH_NAME = re.compile(rf"^{SCRATCH_PREFIX}(\d+)-")
_MODE_BEFORE: list[str | None] = []  # RAY_AUTH_MODE before this process's Ray set it


@contextlib.contextmanager
def local_ray_env() -> Iterator[None]:
    """The environment ``ray.init`` starts a one-machine Ray in: token mode with a fresh
    token, the node on loopback. On leaving, the token (and the switch) leave this
    process's environment; ``RAY_AUTH_MODE`` stays ``token`` until :func:`restore_mode`
    (at shutdown)."""
    saved = {k: os.environ.get(k) for k in (TOKEN_ENV, CLUSTER_ENV)}
    _MODE_BEFORE.append(os.environ.get(MODE_ENV))
    os.environ[MODE_ENV] = "token"
    os.environ[TOKEN_ENV] = secrets.token_hex(32)  # 256 bits, as Ray makes its own
    os.environ[CLUSTER_ENV] = "0"  # Ray's own processes read it as they import ray
    constants = _ray_constants()
    clusters = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    if clusters is not None:
        constants.ENABLE_RAY_CLUSTER = False
    refresh_auth()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if clusters is not None:
            constants.ENABLE_RAY_CLUSTER = clusters


def restore_mode() -> None:
    """``RAY_AUTH_MODE`` as it was before :func:`local_ray_env` (a later study may join a
    cluster that runs without tokens)."""
    if not _MODE_BEFORE:
        return
    before = _MODE_BEFORE[0]
    _MODE_BEFORE.clear()
    if before is None:
        os.environ.pop(MODE_ENV, None)
    else:
        os.environ[MODE_ENV] = before


def _ray_constants() -> Any:
    try:
        from ray._private import ray_constants
    except ImportError:
        return None
    return ray_constants


def refresh_auth() -> None:
    """Make this process's Ray read ``RAY_AUTH_MODE`` and the token again: both are cached
    at import and at the first connection, and each study has its own token. Never while
    this process is connected to a Ray: its next call would carry another token, be refused,
    and Ray's core worker would end the process."""
    try:
        import ray
        from ray._raylet import (  # type: ignore[attr-defined]  # compiled; its .pyi lists neither
            AuthenticationTokenLoader,
            Config,
        )
    except ImportError:  # another Ray: it reads them as it does
        return
    if ray.is_initialized():
        return
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def without_token(env: dict[str, str]) -> dict[str, str]:
    """``env`` minus the variables that hand over a Ray token."""
    return {k: v for k, v in env.items() if k not in TOKEN_VARS}


# -- clusters -------------------------------------------------------------------------------
def token_at_hand(env: dict[str, str] | None = None) -> bool:
    """Whether a Ray token is where Ray looks for one (its variables, its default file)."""
    env = dict(os.environ) if env is None else env
    default = Path.home() / ".ray" / "auth_token"
    return any(env.get(k) for k in TOKEN_VARS) or default.is_file()


def prepare_join() -> None:
    """Before joining a cluster: token mode when a token is at hand and ``RAY_AUTH_MODE`` is
    not set (Ray itself does so only for ``auto``)."""
    if MODE_ENV not in os.environ and token_at_hand():
        os.environ[MODE_ENV] = "token"
    refresh_auth()


def answers_without_token(gcs_address: str, timeout: float = 5.0) -> bool | None:
    """Whether the GCS at ``gcs_address`` answers a client that sends no token (None: it
    could not be asked)."""
    try:
        import grpc
        from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc
    except ImportError:
        return None
    with grpc.insecure_channel(gcs_address) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        try:
            stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=timeout)
        except grpc.RpcError as exc:
            return False if exc.code() == grpc.StatusCode.UNAUTHENTICATED else None
    return True


def refuses_tokenless(gcs_address: str) -> bool:
    return answers_without_token(gcs_address) is False


def open_cluster_warning(address: str) -> str:
    return (
        f"sweeper: warning: the Ray cluster at {address} runs without token authentication: "
        "anyone who can reach it can run code on it; start every node with "
        "RAY_AUTH_MODE=token and the same RAY_AUTH_TOKEN (README: On a Ray cluster)"
    )


def no_token_message(address: str) -> str:
    """The one line for a cluster that refused this driver's token, or its lack of one."""
    found = (
        "refused the token found here"
        if token_at_hand()
        else f"wants a token and none was found: set {TOKEN_ENV} (or {TOKEN_PATH_ENV})"
    )
    return (
        f"resources.address: the Ray cluster at {address} {found}; "
        "use the token its nodes were started with (`ray get-auth-token` on the head prints it)"
    )


# -- scratch --------------------------------------------------------------------------------
def make_scratch() -> Path:
    """A new scratch folder for Ray (after removing those of drivers that are gone)."""
    parent = scratch_parent()
    clean_stale(parent)
    return Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=parent))


def scratch_parent() -> Path:
    """``$RAY_TMPDIR``, else the system's temp folder, else /tmp: the first that is short
    enough for Ray's socket paths."""
    for candidate in (os.environ.get("RAY_TMPDIR"), tempfile.gettempdir()):
        if candidate and len(candidate) <= _MAX_PARENT and os.access(candidate, os.W_OK):
            return Path(candidate)
    return Path("/tmp")


def remove_scratch(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def clean_stale(parent: Path) -> list[Path]:
    """Remove the scratch folders in ``parent`` whose driver is gone, after ending the Ray
    processes still running there (a killed driver's orphans); the ones removed."""
    removed = []
    for entry in _entries(parent):
        match = _SCRATCH_NAME.match(entry.name)
        if not match or _alive(int(match.group(1))) or not _mine(entry):
            continue
        _end_processes_in(entry)
        remove_scratch(entry)
        removed.append(entry)
    return removed


def _entries(parent: Path) -> list[Path]:
    try:
        return [e for e in parent.iterdir() if e.name.startswith(SCRATCH_PREFIX) and e.is_dir()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _mine(path: Path) -> bool:
    try:
        return path.stat().st_uid == os.getuid()
    except OSError:
        return False


def _end_processes_in(folder: Path) -> None:
    """SIGKILL this user's processes whose command line names ``folder`` (Ray's processes
    are started with their session folder in their arguments); Linux only."""
    needle = str(folder).encode() + b"/"
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                named = needle in f.read()
            if named and os.stat(f"/proc/{pid}").st_uid == os.getuid():
                os.kill(pid, signal.SIGKILL)
        except OSError:
            continue


def _pids() -> list[int]:
    try:
        return [int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) != os.getpid()]
    except OSError:
        return []
