"""The fast train step: static batch buffers, and on CUDA the whole step as one CUDA graph.

:class:`TrainStep` owns static input/target buffers ``(B, ...)`` and static accumulators for
the epoch's statistics (``task.stats``: loss sum, correct count, n, ...). One step is
forward + loss (under autocast for bf16), backward, ``optimizer.step()`` and the in-place
addition of the batch's statistics; the metrics are read once per epoch.

On CUDA the step follows PyTorch's whole-network capture recipe (CUDA semantics notes,
"Whole-network capture"): :data:`WARMUP_STEPS` eager steps on a side stream (real batches,
real updates: they create the optimizer's lazy state, cuBLAS/cuDNN handles and cuDNN's
benchmark choices), then the next full batch is captured with ``torch.cuda.graph`` on that
stream (capture runs nothing) and replayed, as is every later full batch after a copy into
the static buffers. The last, smaller batch of an epoch is trained eagerly on the same
parameters and optimizer state. On the CPU (and wherever ``graphs`` is None) the same object
runs every step eagerly through the same buffers.

A learning-rate schedule sets ``param_group["lr"]`` (a float) once per epoch; a captured
graph holds the lr it was captured with as a kernel argument, so the step re-captures when
the lr changed (no warm-up needed then: the state exists). A tensor lr would avoid that, but
SGD's foreach step calls ``.item()`` on a tensor lr (not capturable), a tensor lr changes the
optimizer's checkpoint format and the CPU path's arithmetic; one capture per epoch is cheap.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

LOG = logging.getLogger(__name__)
WARMUP_STEPS = 3  # eager steps before capture (PyTorch's whole-network example uses 3)
CAPTURABLE_OPTIMIZERS = ("adam", "adamw")  # those with a ``capturable`` flag in torch.optim
Batch = tuple[torch.Tensor, torch.Tensor]


def uses_step(cfg: Any) -> bool:
    """Whether ``cfg`` trains through :class:`TrainStep` (else the plain eager loop).

    ``log_grad_mean`` reads gradient means to the host on every early step (a sync, not
    capturable), so such configs keep the plain loop.
    """
    return bool(cfg.compile) and not cfg.log_grad_mean


def wants_graph(cfg: Any, device: torch.device) -> bool:
    """Capture the step as a CUDA graph: the step path on a CUDA device."""
    return uses_step(cfg) and device.type == "cuda"


def configure_backends(device: torch.device) -> None:
    """cuDNN picks the fastest algorithms for the (static) shapes it sees."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def optimizer_options(cfg: Any, device: torch.device) -> dict[str, Any]:
    """Extra optimizer kwargs: ``capturable`` Adam/AdamW when the step is graphed."""
    if wants_graph(cfg, device) and cfg.optimizer in CAPTURABLE_OPTIMIZERS:
        return {"capturable": True}
    return {}


def match_capturable(optimizer: torch.optim.Optimizer, capturable: bool) -> None:
    """After ``load_state_dict``: the run's own ``capturable`` flag, ``step`` where it needs.

    A loaded checkpoint overwrites the param groups (its ``capturable`` came from the run
    that saved it, maybe on another device) and leaves a non-capturable ``step`` on the CPU;
    a captured step needs ``step`` on the parameter's device (float32, as Adam creates it).
    """
    for group in optimizer.param_groups:
        if "capturable" not in group:
            continue  # SGD has no step counter
        group["capturable"] = capturable
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            if torch.is_tensor(state.get("step")):
                device = p.device if capturable else torch.device("cpu")
                state["step"] = state["step"].to(device=device, dtype=torch.float32)


def channels_last_for(setting: bool | str, model: nn.Module, device: torch.device) -> bool:
    """``channels_last: auto`` means conv models on CUDA; true/false force it."""
    if setting != "auto":
        return bool(setting)
    convs = (nn.Conv2d, nn.ConvTranspose2d)
    return device.type == "cuda" and any(isinstance(m, convs) for m in model.modules())


def prepare_model(model: nn.Module, channels_last: bool) -> nn.Module:
    """The model in the memory format its inputs will have (4-D weights only)."""
    return model.to(memory_format=torch.channels_last) if channels_last else model


def to_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """An image batch ``(B, C, H, W)`` as channels-last when asked; other inputs as they are."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def autocast(precision: str, device_type: str) -> contextlib.AbstractContextManager:
    """bf16 autocast around forward + loss; no weight-cast cache (unsafe under capture)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=torch.bfloat16, cache_enabled=False)


def at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """bf16 logits (autocast) as float32 for the statistics; float32/64 as they are."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


class CudaGraphs:
    """How :class:`TrainStep` captures on CUDA: one side stream for warm-up and capture."""

    def __init__(self) -> None:
        self.stream = torch.cuda.Stream()

    @contextlib.contextmanager
    def side(self) -> Iterator[None]:
        """Eager steps on the capture stream, ordered after and before the current stream."""
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            yield
        torch.cuda.current_stream().wait_stream(self.stream)

    def sync(self) -> None:
        torch.cuda.synchronize()

    def capture(self, fn: Callable[[], None]) -> Callable[[], None]:
        """Record ``fn``'s CUDA work (without running it); returns the replay.

        A capture that fails leaves the device's default generator in capture mode (torch
        ends the generator's capture only when the graph's capture ends cleanly), and every
        later draw on the device raises "Offset increment outside graph capture": the
        generator's state from before the capture is put back (:class:`GeneratorGuard`).
        """
        graph = torch.cuda.CUDAGraph()
        outer = torch.cuda.current_stream()
        guard = GeneratorGuard(outer.device)
        try:
            with torch.cuda.graph(graph, stream=self.stream):
                fn()
        except BaseException:
            guard.restore()
            raise
        finally:
            torch.cuda.set_stream(outer)  # also when capture failed before its context began
        return graph.replay


class GeneratorGuard:
    """The default CUDA generator's state of ``device``, to put back after a failed capture.

    ``clone_state`` copies seed and offset into a state that is not capturing, and
    ``graphsafe_set_state`` swaps it in (torch's graph-safe generator API, torch >= 2.4);
    a graph that captured the old state keeps it. Without that API nothing is saved.
    """

    def __init__(self, device: torch.device) -> None:
        index = device.index if device.index is not None else torch.cuda.current_device()
        self.generator = torch.cuda.default_generators[index]
        clone = getattr(self.generator, "clone_state", None)
        self.saved = clone() if clone is not None else None

    def restore(self) -> None:
        if self.saved is not None:
            self.generator.graphsafe_set_state(self.saved)


class TrainStep:
    """One training step over static buffers; captured as a CUDA graph when ``graphs`` is set.

    Args:
        model, optimizer: trained in place; the optimizer's lazy state is created by the
            first (eager) steps.
        task: ``loss(logits, y)`` and ``stats(logits, y) -> {name: tensor}`` (summed).
        batch_size: the full batch ``B``; other sizes (the epoch's tail) run eagerly.
        graphs: a capture backend (:class:`CudaGraphs`), or None to stay eager.
        precision: ``fp32`` or ``bf16`` (autocast around forward + loss).
        channels_last: image inputs in channels-last memory format.
        name: what the fallback's log line calls the step's owner (a hosted trial's id).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        task: Any,
        batch_size: int,
        *,
        graphs: Any = None,
        precision: str = "fp32",
        channels_last: bool = False,
        name: str = "",
    ) -> None:
        self.name = name
        self.model, self.optimizer, self.task = model, optimizer, task
        self.batch_size = batch_size
        self.graphs = graphs
        self.precision, self.channels_last = precision, channels_last
        self.device_type = next(model.parameters()).device.type
        self.sums: dict[str, torch.Tensor] = {}  # static accumulators, () or (C,)
        self.static: Batch | None = None  # (B, ...) input and target buffers
        self.warm = 0  # eager full-batch steps taken so far
        self.captures = 0
        self._replay: Callable[[], None] | None = None
        self._lrs: tuple[float, ...] = ()  # the lrs the graph was captured with

    @property
    def graphed(self) -> bool:
        """Whether full batches currently replay a captured graph."""
        return self._replay is not None

    def epoch(self, batches: Iterable[Batch]) -> dict[str, torch.Tensor]:
        """Train on every batch; the epoch's summed statistics (still on the device)."""
        for value in self.sums.values():
            value.zero_()
        for x, y in batches:
            self(x, y)
        return {k: v.clone() for k, v in self.sums.items()}

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One step on ``x`` ``(b, ...)``, ``y`` ``(b, ...)``; b < B trains eagerly."""
        if len(x) != self.batch_size:
            self._eager(to_format(x, self.channels_last), y)
            return
        sx, sy = self._buffers(x, y)
        sx.copy_(x)
        sy.copy_(y)
        if self._replay is not None and self._lrs != self._current_lrs():
            self._capture()  # the schedule changed the lr the graph holds
        elif self._replay is None and self.graphs is not None and self.warm >= WARMUP_STEPS:
            self._capture()
        if self._replay is not None:
            self._replay()
            return
        self._eager(sx, sy)
        self.warm += 1

    def _buffers(self, x: torch.Tensor, y: torch.Tensor) -> Batch:
        if self.static is None:
            fmt = torch.channels_last if self.channels_last and x.dim() == 4 else None
            sx = torch.empty_like(x, memory_format=fmt or torch.contiguous_format)
            self.static = (sx, torch.empty_like(y, memory_format=torch.contiguous_format))
        return self.static

    def _current_lrs(self) -> tuple[float, ...]:
        return tuple(float(g["lr"]) for g in self.optimizer.param_groups)

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Forward, loss, backward, update, statistics: device work only (no host sync)."""
        with autocast(self.precision, self.device_type):
            logits = self.model(x)  # (B, classes) or (B, 1, H, W)
            loss = self.task.loss(logits, y)  # ()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        for key, value in self.task.stats(at_least_fp32(logits.detach()), y).items():
            if key not in self.sums:
                self.sums[key] = torch.zeros_like(value)
            self.sums[key].add_(value)

    def _eager(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if self.graphs is None:
            self._step(x, y)
            return
        with self.graphs.side(), warnings.catch_warnings():
            # capturable Adam warns once when it steps uncaptured: expected for warm-up/tail
            warnings.filterwarnings("ignore", message=".*capturable=True.*")
            self._step(x, y)

    def _capture(self) -> None:
        """(Re-)capture the step on the static buffers; on failure, eager for good."""
        assert self.static is not None  # staged before the first capture
        sx, sy = self.static
        self.graphs.sync()  # the old graph's replays are done before it goes
        self._replay = None
        # grads allocated by the captured backward come from the graph's private pool
        self.optimizer.zero_grad(set_to_none=True)
        try:
            self._replay = self.graphs.capture(lambda: self._step(sx, sy))
        except Exception as exc:  # noqa: BLE001 - any capture failure means: train eagerly
            self._fall_back(exc)
            return
        self._lrs = self._current_lrs()
        self.captures += 1

    def _fall_back(self, exc: Exception) -> None:
        self.graphs, self._replay = None, None
        self.optimizer.zero_grad(set_to_none=True)  # drop grads the failed capture made
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        LOG.warning(
            "%strain step not captured as a CUDA graph (%s: %s); training eagerly",
            f"{self.name}: " if self.name else "",
            type(exc).__name__,
            reason,
        )


def make_step(
    cfg: Any, model: nn.Module, optimizer: Any, task: Any, channels_last: bool
) -> TrainStep:
    """The step a run trains with: graphed on CUDA (``compile: true``), else eager."""
    device = next(model.parameters()).device
    graphs = CudaGraphs() if wants_graph(cfg, device) else None
    return TrainStep(
        model,
        optimizer,
        task,
        cfg.batch_size,
        graphs=graphs,
        precision=cfg.precision,
        channels_last=channels_last,
    )
