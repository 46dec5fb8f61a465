"""A short probe of one config on the GPU: what a trial of it needs in GPU memory.

It runs a few train steps of the config's model on random inputs of the config's batch
size and reads the peak memory torch allocated. The data a trial keeps on its GPU is
counted apart (:func:`data_bytes`), from the split sizes, without touching a GPU.

A probe must never break a study: :func:`try_probe` turns any failure (an exception, an
out-of-memory, a driver error) into a :class:`ProbeFailed` that names the cause, and the
placement falls back to a conservative share (``engine/placement.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PROBE_STEPS = 3


@dataclass(frozen=True)
class GpuProbe:
    """One GPU as the probe saw it, and the probed train step's peak memory."""

    name: str
    total_bytes: int
    peak_bytes: int


@dataclass(frozen=True)
class ProbeFailed:
    """The probe did not measure: ``reason`` is the cause in one line."""

    reason: str


def failure_reason(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 200 characters), for one log line."""
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def try_probe(spec: Any, params: dict[str, Any], info: Any) -> GpuProbe | ProbeFailed:
    """:func:`probe_gpu`, or a :class:`ProbeFailed` naming why it could not measure."""
    try:
        return probe_gpu(spec, params, info)
    except Exception as exc:  # noqa: BLE001 - a probe failure of any kind means: fall back
        return ProbeFailed(failure_reason(exc))


def data_bytes(splits: Any) -> int:
    """Bytes of one trial's resident data: float32 inputs, int64 labels (float32 masks)."""
    seg = splits.info.task == "segmentation"
    total = 0
    for x, y in (
        (splits.x_train, splits.y_train),
        (splits.x_val, splits.y_val),
        (splits.x_test, splits.y_test),
    ):
        total += int(x.size) * 4 + int(y.size) * (4 if seg else 8)
    return total


def probe_gpu(spec: Any, params: dict[str, Any], info: Any) -> GpuProbe:
    """Peak memory of ``PROBE_STEPS`` train steps of ``params`` on ``cuda:0``."""
    import torch

    from sweeper.models import get_model
    from sweeper.registry.optimizers import build_optimizer
    from sweeper.trial.config import resolve_trial
    from sweeper.trial.tasks import task_for

    cfg = resolve_trial(spec, params)
    device = init_cuda(0)
    torch.cuda.reset_peak_memory_stats(device)
    model = get_model(
        cfg.model, in_shape=info.in_shape, num_classes=info.num_classes, **cfg.model_args
    ).to(device)
    optimizer = build_optimizer(cfg.optimizer, model.parameters(), cfg.optimizer_kwargs)
    task = task_for(info.task, info.num_classes)
    # the probe's own generator: the process's default CUDA generator may belong to a graph
    g = torch.Generator(device).manual_seed(0)
    x = torch.randn(cfg.batch_size, *info.in_shape, device=device, generator=g)  # (B, C, H, W)
    if info.task == "segmentation":
        mask = torch.rand(cfg.batch_size, 1, *info.in_shape[1:], device=device, generator=g)
        y = (mask > 0.5).float()
    else:
        y = torch.randint(0, info.num_classes, (cfg.batch_size,), device=device, generator=g)
    for _ in range(PROBE_STEPS):
        loss = task.loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    torch.cuda.synchronize(device)
    props = torch.cuda.get_device_properties(device)
    return GpuProbe(
        props.name, int(props.total_memory), int(torch.cuda.max_memory_allocated(device))
    )


def init_cuda(index: int) -> Any:
    """``cuda:index`` with its CUDA context made: torch's memory statistics need one
    ("Invalid device argument" in a process where nothing touched CUDA yet)."""
    import torch

    torch.cuda.init()
    device = torch.device("cuda", index)
    torch.cuda.set_device(device)
    torch.empty(1, device=device)  # the context, and the caching allocator for this device
    return device
