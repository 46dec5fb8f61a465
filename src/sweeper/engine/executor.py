"""Which executor runs a study's trials, and how hosts are laid out (pure: no Ray here).

``resources.executor``:

- ``process``: each trial is a Ray actor of its own that imports torch, loads its copy of
  the data and trains (``engine/trainable.py``); on a GPU each holds a share of it.
- ``host``: one long-lived host per GPU (or per few CPU cores) holds the data once and
  trains many trials at the same time (``trial/host.py`` in the Ray actor of
  ``engine/hosts.py``); each Tune trial is a light client (``engine/hosted_trainable.py``)
  that imports no torch and asks for no GPU.
- ``auto`` (the default): the host where it applies and pays: on GPUs, for registered
  models and own ``nn.Module`` builders under any scheduler (PBT/PB2 included: a hosted
  trial's epochs go back to Ray as checkpoints the host writes); the process elsewhere (a
  ``program`` is always a process). On the CPU ``auto`` stays with the process until the
  CPU benchmark (``benchmarks/sweep_throughput.py --ways bare,sweeper-host,...``) shows
  the host faster.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from sweeper.errors import SpecError

AUTO_ON_CPU = False  # see the module's docstring
CPUS_PER_HOST = 4  # on the CPU, one host per this many cores (at least one host)
CLIENT_CPUS = 0.5  # all of a study's clients together; the hosts get the rest
# On the CPU a host steps its trials on its own threads one at a time: two keep it busy (one
# steps while the other's client takes its epoch), and each more costs a client process
# (a Ray worker importing Ray Tune, about 1.2 CPU-s: benchmarks/cpu_by_process.py).
TRIALS_PER_CPU_HOST = 2
SHARE_DIGITS = 4


@dataclass(frozen=True)
class HostLayout:
    """How many hosts, what each holds, and how many trials each runs at once.

    Attributes:
        hosts: host processes (one per GPU; on the CPU one per ``CPUS_PER_HOST`` cores).
        host_cpus: CPUs each host holds (torch's threads there).
        host_gpus: GPUs each host holds (1 on GPUs, 0 on the CPU).
        per_host: trials one host trains at the same time.
        client_cpus: each trial's client (a Ray actor that only waits and reports).
        device: ``cuda`` or ``cpu``.
    """

    hosts: int
    host_cpus: float
    host_gpus: float
    per_host: int
    client_cpus: float
    device: str

    @property
    def at_once(self) -> int:
        return self.hosts * self.per_host

    def describe(self, bound: str | None = None) -> str:
        """``N hosts (...), K trials at a time``; ``bound``: what chose the trials a GPU
        host holds (the probe's memory, the cap, the fallback after a failed probe; the
        placement's ``bound``, said for GPU hosts only)."""
        where = "GPU" if self.host_gpus else f"{self.host_cpus:g} CPUs"
        chose = f"; set by {bound}" if bound and self.device == "cuda" else ""
        return (
            f"{self.hosts} host{'s' if self.hosts > 1 else ''} ({where} each, "
            f"{self.per_host} trials at a time each{chose}), {self.at_once} trials at a time"
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "at_once": self.at_once}


def choose_executor(spec: Any, placement: Any, source: str = "") -> str:
    """``host`` or ``process`` for this spec on this placement; a one-line error when
    ``executor: host`` is asked for where it cannot run."""
    asked = spec.resources.executor
    if asked == "process":
        return "process"
    why_not = _why_not_host(spec)
    if why_not is not None:
        if asked == "host":
            raise SpecError(
                source, "resources.executor", f"host {why_not}; expected auto or process"
            )
        return "process"
    if asked == "host":
        return "host"
    return "host" if placement.device == "cuda" or AUTO_ON_CPU else "process"


def _why_not_host(spec: Any) -> str | None:
    if spec.model is None:
        return "runs registered models and own nn.Module builders; a program runs as processes"
    return None


def host_layout(spec: Any, placement: Any, num_cpus: float, n_trials: int) -> HostLayout:
    """The hosts for a study the placement put on ``placement.device``."""
    res = spec.resources
    if placement.device == "cuda":
        hosts = max(1, int(placement.n_gpus))
        per_host = placement.trials_per_host or placement.trials_per_gpu or res.max_trials_per_gpu
        host_cpus, host_gpus = float(min(res.cpus, max(1.0, num_cpus / hosts - CLIENT_CPUS))), 1.0
    else:
        hosts = max(1, math.floor(num_cpus / CPUS_PER_HOST))
        host_cpus = max(0.5, (num_cpus - CLIENT_CPUS) / hosts)
        per_host = TRIALS_PER_CPU_HOST
        host_gpus = 0.0
    per_host = max(1, min(per_host, math.ceil(n_trials / hosts)))
    if res.max_concurrent is not None:
        per_host = max(1, min(per_host, math.ceil(res.max_concurrent / hosts)))
    client = max(10**-SHARE_DIGITS, CLIENT_CPUS / (hosts * per_host))
    return HostLayout(
        hosts=hosts,
        host_cpus=round(host_cpus, SHARE_DIGITS),
        host_gpus=host_gpus,
        per_host=per_host,
        client_cpus=math.floor(client * 10**SHARE_DIGITS) / 10**SHARE_DIGITS,
        device=placement.device,
    )
