"""A short probe of one config on the GPU: what a trial of it needs in GPU memory.

It runs a few train steps of the config's model on random inputs of the config's batch
size and reads the peak memory torch allocated. The data a trial keeps on its GPU is
counted apart (:func:`data_bytes`), from the split sizes, without touching a GPU.
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
    from sweeper.optimizers import build_optimizer
    from sweeper.trial.config import resolve_trial
    from sweeper.trial.tasks import task_for

    cfg = resolve_trial(spec, params)
    device = torch.device("cuda", 0)
    torch.cuda.reset_peak_memory_stats(device)
    model = get_model(
        cfg.model, in_shape=info.in_shape, num_classes=info.num_classes, **cfg.model_args
    ).to(device)
    optimizer = build_optimizer(cfg.optimizer, model.parameters(), cfg.optimizer_kwargs)
    task = task_for(info.task, info.num_classes)
    x = torch.randn(cfg.batch_size, *info.in_shape, device=device)  # (B, C, H, W) or (B, F)
    if info.task == "segmentation":
        y = (torch.rand(cfg.batch_size, 1, *info.in_shape[1:], device=device) > 0.5).float()
    else:
        y = torch.randint(0, info.num_classes, (cfg.batch_size,), device=device)
    for _ in range(PROBE_STEPS):
        loss = task.loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    torch.cuda.synchronize(device)
    props = torch.cuda.get_device_properties(device)
    return GpuProbe(props.name, int(props.total_memory), int(torch.cuda.max_memory_allocated()))
