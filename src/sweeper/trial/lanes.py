"""A hosted trial's lane: where its work runs inside a host, and the random state it draws.

Many trials share one process in a host (:mod:`sweeper.trial.host`), so what a process
trial owns alone must be kept per trial and swapped in around each piece of its work:

* **The global RNG.** Model initialisation and dropout draw from torch's global generators
  (``Run`` seeds them with ``torch.manual_seed``). A lane keeps its trial's CPU generator
  state and, on CUDA, its own state of the device's default generator, and swaps them in for
  the trial's work: a hosted trial draws exactly the numbers it would draw alone, whatever
  the other trials do in between. On CUDA this uses torch's graph-safe generator API
  (``clone_state``, ``graphsafe_get_state``, ``graphsafe_set_state``, torch >= 2.4): a graph
  captured while a lane's state is swapped in holds that state object and advances its
  offset on each replay, so replays draw from the trial's own stream too.
* **The stream (CUDA).** Each lane has its own ``torch.cuda.Stream``; everything its trial
  does (batch gathers, warm-up steps, capture, replays, evaluation, metric reads) runs
  with that stream current, so the kernels of different trials may overlap on the GPU.
  Reading a metric (``.item()``) waits for that stream only.
* **The graphs (CUDA).** :class:`LaneGraphs` is :class:`~sweeper.trial.step.CudaGraphs`
  on the lane's stream: warm-up and capture run there, ``graph.replay()`` launches on the
  current stream (the lane's), and a re-capture waits for the lane's stream, not the device.

On the CPU a lane has no stream and no graphs; only the CPU generator state is swapped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from sweeper.trial import step as fast


class LaneGraphs(fast.CudaGraphs):
    """CUDA graph capture on a lane's stream (warm-up, capture and replay all there).

    ``torch.cuda.graph`` itself synchronizes the device when a capture begins (it frees
    cached memory for the graph's pool); between captures only the lane's stream is waited
    for.
    """

    def __init__(self, stream: torch.cuda.Stream) -> None:  # no super(): the stream is given
        self.stream = stream

    def sync(self) -> None:
        self.stream.synchronize()


class Lane:
    """One hosted trial's stream and random state (see the module's docstring)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stream: Any = None
        self.cpu_state: torch.Tensor | None = None  # None: take the global state as it is
        self.cuda_generator: Any = None
        self.cuda_state: Any = None
        if device.type == "cuda":
            self.stream = torch.cuda.Stream(device=device)
            generator = torch.cuda.default_generators[_index(device)]
            if hasattr(generator, "graphsafe_set_state"):
                self.cuda_generator = generator
                self.cuda_state = generator.clone_state()  # the trial's own; seeded by it

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """The trial's random states swapped in and its stream current, for its work."""
        if self.cpu_state is not None:
            torch.set_rng_state(self.cpu_state)
        if self.cuda_generator is not None:
            self.cuda_generator.graphsafe_set_state(self.cuda_state)
        try:
            if self.stream is None:
                yield
            else:
                with torch.cuda.stream(self.stream):
                    yield
        finally:
            self.cpu_state = torch.get_rng_state()
            if self.cuda_generator is not None:
                # the current object: a failed capture's guard may have swapped in a copy
                self.cuda_state = self.cuda_generator.graphsafe_get_state()

    def graphs(self) -> LaneGraphs | None:
        """The capture backend for this lane's train steps (None on the CPU)."""
        return LaneGraphs(self.stream) if self.stream is not None else None

    def synchronize(self) -> None:
        """Wait until the lane's queued work is done (CUDA; nothing on the CPU)."""
        if self.stream is not None:
            self.stream.synchronize()


def _index(device: torch.device) -> int:
    return device.index if device.index is not None else torch.cuda.current_device()
