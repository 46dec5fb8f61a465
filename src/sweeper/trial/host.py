"""A host: many trials trained in one process at once, over one copy of the data.

The core of issue 24's GPU host, free of Ray: a Ray actor (one per GPU) wraps a
:class:`Host`, and each Tune trial becomes a light client that hands its config to a host
and reports the epochs the host finishes for it. The host keeps the study's data on its
device once (:class:`~sweeper.trial.loop.DeviceData`), and trains every trial it holds in
rounds: each round, every running trial takes one step (round robin, in the order they
joined). On CUDA each trial's step runs on its own stream as a captured CUDA graph
(:mod:`sweeper.trial.lanes`), so the GPU overlaps the trials' kernels; on the CPU the same
code runs eagerly (static buffers, no graphs, no streams). Metrics stay on the device and
are read once per epoch per trial. A trial's results equal the same config trained alone
by ``train_trial`` (same seed): it keeps its own runs, generators and random state.

Life of a trial::

    host = Host(splits, device="auto")
    host.add("t1", cfg)                        # joins; starts at the next round
    for event in host.run():                   # or: events = host.step(), one round
        event.trial_id, event.metrics          # one per finished epoch per trial
        event.state                            # its checkpoint (train.checkpoint), CPU
        event.done, event.error                # last epoch / diverged / failed
    host.pause("t1"); host.state("t1")         # hold at the next epoch boundary; checkpoint
    host.resume("t1"); host.remove("t1")       # go on; leave now (an epoch under way is lost)
    host.add("t1", cfg, restore=state)         # continue from a checkpoint (a fresh host too)
    host.add("t2", cfg, hold=True)             # pauses after each epoch until resume("t2")

A trial whose code raises (building its model, a step, an evaluation) fails alone: one
event with ``error`` set, one log line, and the others go on. A finished or failed trial
leaves the host after its last event. The host is single-threaded: a Ray actor calls it
from one thread (a loop that steps and hands out events between calls).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from sweeper.data import Splits
from sweeper.trial import host_fusion
from sweeper.trial import step as fast
from sweeper.trial.config import TrialConfig
from sweeper.trial.hosted import HostedTrial
from sweeper.trial.lanes import Lane
from sweeper.trial.loop import DeviceData, resolve_device
from sweeper.trial.tasks import task_for

LOG = logging.getLogger(__name__)

RUNNING, PAUSING, PAUSED = "running", "pausing", "paused"


@dataclass
class Event:
    """What a host hands back for a trial.

    Attributes:
        trial_id: the trial it is about.
        metrics: a finished epoch's metrics, as ``train_trial`` reports them; None when
            the trial failed, or had nothing left to train (its checkpoint was of its last
            epoch, or of a divergence: ``done`` set, ``error`` None).
        state: the checkpoint after that epoch (``{"epoch", "runs"}``, CPU tensors) when
            the config checkpoints (``train.checkpoint``), else None.
        done: the trial left the host: its last epoch, a divergence, or a failure.
        error: why it failed (one line), or None.
    """

    trial_id: str
    metrics: dict[str, Any] | None
    state: dict[str, Any] | None = None
    done: bool = False
    error: str | None = None


class Host:
    """Many trials in one process, stepped in turn over one copy of the data.

    Args:
        splits: the study's data (every hosted trial trains on it).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        num_threads: CPU threads for torch, or None to leave torch's setting.
        fuse: train trials of one architecture and batch size as one stacked step
            (``trial/host_fusion.py``); off by default.
    """

    def __init__(
        self,
        splits: Splits,
        device: str = "auto",
        num_threads: int | None = None,
        fuse: bool = False,
    ):
        if num_threads:
            torch.set_num_threads(max(1, int(num_threads)))
        self.device = resolve_device(device)
        fast.configure_backends(self.device)
        self.data = DeviceData(splits, self.device)
        self.task = task_for(self.data.info.task, self.data.info.num_classes)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # the data are in place before any lane reads
        self._trials: dict[str, HostedTrial] = {}
        self._modes: dict[str, str] = {}
        self._pending: list[Event] = []  # failures at join, handed out by the next step()
        self._holds: set[str] = set()  # trials that pause after each epoch
        self.fuse = bool(fuse)
        self._keys: dict[str, tuple | None] = {}  # each trial's fusion key (None: alone)

    # -- joining and leaving -----------------------------------------------------------------
    def add(
        self,
        trial_id: str,
        cfg: TrialConfig,
        restore: dict[str, Any] | None = None,
        new_config: bool = False,
        hold: bool = False,
    ) -> bool:
        """Take a trial (from scratch, or from ``restore``); it steps from the next round.

        ``new_config``: ``restore`` is another config's state (a PBT copy); this config's
        optimizer hyperparameters hold. ``hold``: pause the trial after each epoch, until
        :meth:`resume` (a client that wants its scheduler's word before the next epoch).

        Returns:
            Whether it joined; a trial whose set-up raised did not, and its failure comes
            as an event from the next :meth:`step`.
        """
        if trial_id in self._trials:
            raise ValueError(f"trial {trial_id!r} is already hosted")
        try:
            trial = HostedTrial(
                trial_id, cfg, self.data, self.task, Lane(self.device), restore, new_config
            )
        except Exception as exc:  # noqa: BLE001 - the trial fails, the host goes on
            self._pending.append(self._failure(trial_id, exc))
            return False
        if trial.finished:  # a checkpoint of its last epoch (or a divergence): nothing to do
            self._pending.append(Event(trial_id, None, done=True))
            return False
        self._trials[trial_id] = trial
        self._modes[trial_id] = RUNNING
        if self.fuse:
            try:
                self._keys[trial_id] = host_fusion.fusion_key(trial)
            except Exception as exc:  # noqa: BLE001 - it trains unfused
                LOG.warning("trial %s trains unfused: %s: %s", trial_id, type(exc).__name__, exc)
                self._keys[trial_id] = None
        if hold:
            self._holds.add(trial_id)
        return True

    def remove(self, trial_id: str) -> None:
        """Drop a trial now (stopped by its scheduler, say); an epoch under way is lost."""
        self._get(trial_id)
        self._drop(trial_id)

    def pause(self, trial_id: str) -> None:
        """Hold a trial at its next epoch boundary (at once if it is at one)."""
        trial = self._get(trial_id)
        self._modes[trial_id] = PAUSED if trial.at_boundary else PAUSING

    def resume(self, trial_id: str) -> None:
        """Let a paused (or pausing) trial step again."""
        self._get(trial_id)
        self._modes[trial_id] = RUNNING

    def state(self, trial_id: str) -> dict[str, Any]:
        """A trial's checkpoint at its epoch boundary (pause it first to get one between
        the epoch events, which carry one anyway when the config checkpoints)."""
        return self._get(trial_id).state()

    # -- what it holds -----------------------------------------------------------------------
    def trials(self) -> dict[str, str]:
        """Each hosted trial's mode: ``running``, ``pausing`` or ``paused``."""
        return dict(self._modes)

    def epoch(self, trial_id: str) -> int:
        """The epochs a hosted trial has finished."""
        return self._get(trial_id).epoch

    @property
    def busy(self) -> bool:
        """Whether a step would do anything: a trial to step, or an event to hand out."""
        return bool(self._pending) or any(m != PAUSED for m in self._modes.values())

    # -- training ----------------------------------------------------------------------------
    def step(self) -> list[Event]:
        """One round: every running trial takes one step. The events of the round."""
        events, self._pending = self._pending, []
        active = [t for t, m in self._modes.items() if m != PAUSED]
        fused: set[str] = set()
        if self.fuse:
            for group in host_fusion.plan([self._trials[t] for t in active], self._keys):
                fused.update(self._advance_group(group, events))
        for trial_id in [t for t in active if t not in fused]:
            event = self._advance(self._trials[trial_id])
            if event is not None:
                events.append(event)
        return events

    def run(self) -> Iterator[Event]:
        """Rounds until no trial is left to step; each event as it comes."""
        while self.busy:
            yield from self.step()

    def _advance_group(self, group: list[HostedTrial], events: list[Event]) -> list[str]:
        """One epoch of a fused group (``trial/host_fusion.py``); its members' events go
        to ``events``. The ids it trained: none when the stacked epoch raised (logged; its
        members then train unfused from this round on)."""
        ids = [t.trial_id for t in group]
        try:
            finishes = host_fusion.train_group(group, self.data, self.task)
        except Exception as exc:  # noqa: BLE001 - they train unfused instead
            LOG.warning(
                "fused trials %s train apart: %s: %s", ", ".join(ids), type(exc).__name__, exc
            )
            self._keys.update(dict.fromkeys(ids))
            return []
        for trial, finish in finishes:
            event = self._epoch_event(trial, finish)
            if event is not None:
                events.append(event)
        return ids

    def _advance(self, trial: HostedTrial) -> Event | None:
        if self._keys.get(trial.trial_id) is None:
            return self._epoch_event(trial, trial.advance)
        # a trial that could fuse but has no partner this round trains its whole epoch, so
        # trials of one key stay at epoch boundaries together and fuse from the next round
        return self._epoch_event(trial, lambda: _whole_epoch(trial))

    def _epoch_event(self, trial: HostedTrial, advance) -> Event | None:
        """``advance()`` (one step; an epoch's metrics or None), then the epoch's event."""
        trial_id = trial.trial_id
        try:
            metrics = advance()
            if metrics is None:
                return None
            state = trial.state() if trial.cfg.checkpoint else None
        except Exception as exc:  # noqa: BLE001 - this trial fails, the others go on
            self._drop(trial_id)
            return self._failure(trial_id, exc)
        if trial.finished:
            self._drop(trial_id)
        elif self._modes[trial_id] == PAUSING or trial_id in self._holds:
            self._modes[trial_id] = PAUSED
        return Event(trial_id, metrics, state, done=trial.finished)

    def _failure(self, trial_id: str, exc: Exception) -> Event:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        error = f"{type(exc).__name__}: {first}"
        LOG.warning("hosted trial %s failed: %s", trial_id, error)
        return Event(trial_id, None, done=True, error=error)

    def _get(self, trial_id: str) -> HostedTrial:
        try:
            return self._trials[trial_id]
        except KeyError:
            known = ", ".join(self._trials) or "none"
            raise KeyError(f"no hosted trial {trial_id!r} (hosted: {known})") from None

    def _drop(self, trial_id: str) -> None:
        trial = self._trials.pop(trial_id)
        self._modes.pop(trial_id)
        self._holds.discard(trial_id)
        self._keys.pop(trial_id, None)
        with contextlib.suppress(RuntimeError):  # a failed trial's stream may hold the error
            trial.lane.synchronize()  # its queued work is done before its memory goes


def _whole_epoch(trial: HostedTrial) -> dict[str, Any]:
    """The rest of ``trial``'s epoch, step after step; its metrics."""
    while (metrics := trial.advance()) is None:
        pass
    return metrics
