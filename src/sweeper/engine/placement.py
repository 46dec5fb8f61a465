"""Where trials run: ``resources.gpus`` (``auto`` by default) resolved against the machine.

With ``auto``, where GPUs are seen, a short probe of the first config (its train step at
the largest swept batch size, on one GPU) measures its peak memory; each trial then gets
``1/k`` of a GPU, ``k`` the trials that fit in a GPU's memory, in the CPU cores per GPU and
under ``resources.max_trials_per_gpu``, and never more than the study's trials need. A
probe that fails (an exception, an out-of-memory, a driver error) never stops the study:
one warning line names the cause and each trial gets ``1/max_trials_per_gpu`` of a GPU
(``bound: fallback``). A number is used as it is. Without a GPU (or with ``gpus: 0``) trials run on the CPU and
never touch CUDA. :func:`place` is pure; :func:`place_on_ray` (a run) and
:func:`place_here` (``sweeper check``) gather what it needs.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from sweeper.errors import SpecError
from sweeper.trial.probe import ProbeFailed

# A CUDA context with torch's kernels loaded, per trial process (~0.5 GiB on recent GPUs).
CONTEXT_BYTES = 768 * 2**20
MEMORY_FRACTION = 0.9  # of a GPU's memory that trials may plan to use
HEADROOM = 2.0  # the probed step's peak times this: other configs may be larger
SHARE_DIGITS = 4  # Ray's resolution for fractional resources
# The probe's Ray task: one whole GPU, no CPU slot, a fresh worker that exits after.
PROBE_TASK: dict[str, Any] = {"num_gpus": 1, "num_cpus": 0, "max_calls": 1}


@dataclass(frozen=True)
class Placement:
    """Each trial's resources and what bounded them.

    Attributes:
        device: ``cpu`` or ``cuda``.
        cpus: CPUs per trial; ``gpus``: GPUs per trial (0 on the CPU).
        at_once: trials that run at the same time.
        n_gpus: GPUs seen; ``gpu_name`` and ``gpu_bytes`` of the first.
        trials_per_gpu: trials sharing one GPU (None on the CPU).
        trial_bytes: planned GPU memory per trial (probe; None without one).
        bound: what chose ``trials_per_gpu`` (memory, cpus, cap, trials, spec, fallback).
        probe_error: why the probe failed (``bound`` is then ``fallback``).
        trials_per_host: trials one GPU host holds at once (one CUDA context and one copy
            of the data for all of them; the probe's step memory each, under the cap).
    """

    device: str
    cpus: float
    gpus: float
    at_once: int
    n_gpus: int = 0
    gpu_name: str | None = None
    gpu_bytes: int | None = None
    trials_per_gpu: int | None = None
    trial_bytes: int | None = None
    bound: str | None = None
    probe_error: str | None = None
    trials_per_host: int | None = None

    @property
    def warning(self) -> str | None:
        """One line when the probe failed and the share is the fallback's, else None."""
        if self.probe_error is None:
            return None
        return (
            f"warning: the GPU probe failed ({self.probe_error}); each trial gets "
            f"1/{self.trials_per_gpu} of a GPU (resources.max_trials_per_gpu)"
        )

    def describe(self) -> str:
        each = f"{self.cpus:g} CPU each"
        if self.device == "cpu":
            seen = "" if self.n_gpus else ", no GPU seen"
            return f"cpu: {self.at_once} trials at a time ({each}{seen})"
        gpu = f"{self.n_gpus} x {self.gpu_name or 'GPU'}"
        if self.gpu_bytes:
            gpu += f" ({self.gpu_bytes / 2**30:.0f} GiB)"
        need = f"; ~{self.trial_bytes / 2**30:.1f} GiB per trial" if self.trial_bytes else ""
        return (
            f"cuda: {gpu}, {self.trials_per_gpu} trials per GPU ({self.gpus:g} GPU, {each}"
            f"{need}; set by {self.bound}), {self.at_once} at a time"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def trials_per_gpu(
    *,
    gpu_bytes: int,
    trial_bytes: int,
    cpus_per_gpu: float,
    cpus: float,
    cap: int,
    trials: int,
) -> tuple[int, str]:
    """Trials that share one GPU, and which limit chose it (at least 1)."""
    limits = {
        "memory": math.floor(gpu_bytes * MEMORY_FRACTION / max(trial_bytes, 1)),
        "cpus": math.floor(cpus_per_gpu / cpus + 1e-9),
        "cap": cap,
        "trials": trials,
    }
    bound = min(limits, key=lambda k: limits[k])
    return max(1, limits[bound]), bound


def share(k: int) -> float:
    """1/k of a GPU, rounded down to Ray's resolution (k shares never exceed one GPU)."""
    scale = 10**SHARE_DIGITS
    return math.floor(scale / k) / scale


def at_once(spec: Any, num_cpus: float, num_gpus: float, gpus: float) -> int:
    """Trials that fit at once: the CPUs (and GPUs) divided by each trial's share."""
    res = spec.resources
    if res.cpus > num_cpus:
        raise SpecError(
            "", "resources.cpus", f"a trial asks for {res.cpus} CPUs but Ray has {num_cpus:g}"
        )
    fits = math.floor(num_cpus / res.cpus + 1e-9)
    if gpus > 0:
        if num_gpus < gpus:
            raise SpecError(
                "", "resources.gpus", f"a trial asks for {gpus:g} GPUs, but {num_gpus:g} are seen"
            )
        fits = min(fits, math.floor(num_gpus / gpus + 1e-9))
    if res.max_concurrent is not None:
        fits = min(fits, res.max_concurrent)
    return max(1, fits)


def fills_the_cpus(spec: Any, n_trials: int, num_cpus: float) -> bool:
    """Whether ``n_trials`` trials of ``spec`` can run on all ``num_cpus`` CPUs at once
    (the CPU bound only; GPUs, where there are any, may hold fewer): then a worker started
    per CPU as Ray starts takes a trial each (``engine/session.py``)."""
    try:
        return min(n_trials, at_once(spec, num_cpus, 0, 0)) >= num_cpus
    except SpecError:  # a trial asks for more CPUs than there are: placement says so
        return False


def wants_gpu(spec: Any) -> bool:
    """Whether this spec would use a GPU where there is one (``auto`` or a share > 0)."""
    gpus = spec.resources.gpus
    if spec.train.device == "cpu":
        if gpus != "auto" and gpus > 0:
            raise SpecError(
                "",
                "resources.gpus",
                f"{gpus:g} reserves a GPU for trials that train on the CPU "
                "(train.device: cpu); expected gpus: 0 or auto",
            )
        return False
    return gpus == "auto" or gpus > 0


def place(
    spec: Any,
    n_trials: int,
    num_cpus: float,
    num_gpus: float,
    probe: Any = None,
    data_bytes: int = 0,
) -> Placement:
    """Each trial's share of the machine (pure: the probe's figures come in)."""
    res = spec.resources
    gpus = res.gpus if wants_gpu(spec) else 0
    if gpus == "auto":  # a script trial (program) gets a whole GPU: there is no probe
        gpus = 0 if num_gpus < 1 else (1 if spec.model is None else None)
    if gpus == 0:
        if spec.train.device == "cuda":
            raise SpecError(
                "",
                "train.device",
                f"cuda needs a GPU share, but resources.gpus is {res.gpus} and "
                f"{num_gpus:g} GPUs are seen; expected a GPU or device auto",
            )
        return Placement("cpu", res.cpus, 0.0, at_once(spec, num_cpus, 0, 0), int(num_gpus))
    n_gpus = int(num_gpus)
    if isinstance(probe, ProbeFailed):
        return _fallback(spec, num_cpus, num_gpus, probe.reason)
    name, total = (probe.name, probe.total_bytes) if probe else (None, None)
    if gpus is not None:  # the spec's own number
        k = max(1, math.floor(1 / gpus + 1e-9)) if gpus < 1 else None
        return Placement(
            "cuda", res.cpus, float(gpus), at_once(spec, num_cpus, num_gpus, gpus),
            n_gpus, name, total, k, None, "spec",
        )  # fmt: skip
    if probe is None:
        raise SpecError("", "resources.gpus", "auto needs a probe of the GPU; none was made")
    need = CONTEXT_BYTES + data_bytes + int(HEADROOM * probe.peak_bytes)
    k, bound = trials_per_gpu(
        gpu_bytes=probe.total_bytes,
        trial_bytes=need,
        cpus_per_gpu=num_cpus / n_gpus,
        cpus=res.cpus,
        cap=res.max_trials_per_gpu,
        trials=math.ceil(n_trials / n_gpus),
    )
    g = share(k)
    hosted = math.floor(
        (probe.total_bytes * MEMORY_FRACTION - CONTEXT_BYTES - data_bytes)
        / max(HEADROOM * probe.peak_bytes, 1)
    )
    per_host = max(1, min(hosted, res.max_trials_per_gpu, math.ceil(n_trials / n_gpus)))
    return Placement(
        "cuda", res.cpus, g, at_once(spec, num_cpus, num_gpus, g), n_gpus, name, total, k, need,
        bound, trials_per_host=per_host,
    )  # fmt: skip


def _fallback(spec: Any, num_cpus: float, num_gpus: float, reason: str) -> Placement:
    """The conservative share when the probe could not measure: ``1/max_trials_per_gpu``."""
    k = spec.resources.max_trials_per_gpu
    g = share(k)
    return Placement(
        "cuda", spec.resources.cpus, g, at_once(spec, num_cpus, num_gpus, g), int(num_gpus),
        trials_per_gpu=k, bound="fallback", probe_error=reason,
    )  # fmt: skip


def probe_params(spec: Any) -> dict[str, Any]:
    """The config the probe trains: the first of the space, at the largest batch size."""
    from sweeper.search.space import extremes

    params = {}
    for name, p in spec.parameters.items():
        values = extremes(p)
        params[name] = max(values) if name == "batch_size" else values[0]
    return params


@contextlib.contextmanager
def _named(source: str) -> Iterator[None]:
    """Re-raise a placement's :class:`SpecError` naming the sweep file it came from."""
    try:
        yield
    except SpecError as exc:
        if exc.source:
            raise
        raise SpecError(source, exc.key, exc.message) from None


def place_on_ray(spec: Any, n_trials: int, data: Any, source: str) -> Placement:
    """Placement on the running Ray cluster; the probe runs as a one-GPU Ray task."""
    with _named(source):
        return _place_on_ray(spec, n_trials, data)


def place_here(spec: Any, n_trials: int, load_data: Any, source: str) -> Placement:
    """Placement on this machine without Ray (``sweeper check``); probes in process."""
    with _named(source):
        return _place_here(spec, n_trials, load_data)


def _place_on_ray(spec: Any, n_trials: int, data: Any) -> Placement:
    import ray

    from sweeper.trial.probe import data_bytes

    cluster = ray.cluster_resources()
    num_cpus, num_gpus = float(cluster.get("CPU", 1)), float(cluster.get("GPU", 0))
    probe = None
    if spec.model is None:  # a script trial: no data, no model to probe
        return place(spec, n_trials, num_cpus, num_gpus)
    if spec.resources.gpus == "auto" and num_gpus >= 1 and wants_gpu(spec):
        probe = _probe_on_ray(spec, data.info)
    return place(spec, n_trials, num_cpus, num_gpus, probe, data_bytes(data))


def _probe_on_ray(spec: Any, info: Any) -> Any:
    """The probe as a one-GPU Ray task in a fresh worker (it exits after); a task or worker
    that fails is a :class:`ProbeFailed` too."""
    import ray

    from sweeper.trial.probe import failure_reason, try_probe

    task = ray.remote(**PROBE_TASK)(try_probe)
    try:
        return ray.get(task.remote(spec, probe_params(spec), info))
    except Exception as exc:  # noqa: BLE001 - a dead worker, a driver error: fall back
        return ProbeFailed(failure_reason(exc))


def _place_here(spec: Any, n_trials: int, load_data: Any) -> Placement:
    num_cpus = float(spec.resources.num_cpus or os.cpu_count() or 1)
    num_gpus = 0.0
    probe, nbytes = None, 0
    if wants_gpu(spec):
        import torch

        num_gpus = float(torch.cuda.device_count())  # NVML: no CUDA context
        if spec.resources.gpus == "auto" and num_gpus >= 1 and spec.model is not None:
            from sweeper.trial.probe import data_bytes, try_probe

            data = load_data()
            probe = try_probe(spec, probe_params(spec), data.info)
            nbytes = data_bytes(data)
    return place(spec, n_trials, num_cpus, num_gpus, probe, nbytes)
