"""SIGTERM as Ctrl-C, and a stop that is remembered when its KeyboardInterrupt is lost."""

from __future__ import annotations

import os
import signal

import pytest

from sweeper.signals import raise_if_stopped, sigterm_as_sigint


def _lost(sig: int) -> None:
    """Deliver ``sig`` and drop its KeyboardInterrupt, as Python does when the handler runs
    inside a destructor ("Exception ignored in ...")."""
    try:
        os.kill(os.getpid(), sig)  # the handler runs before the next bytecode
    except KeyboardInterrupt:
        return
    pytest.fail(f"signal {sig} raised no KeyboardInterrupt")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_lost_stop_is_raised_again_before_ray_tune_runs(sig: int) -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with sigterm_as_sigint():
        raise_if_stopped()  # nothing yet
        _lost(sig)
        with pytest.raises(KeyboardInterrupt):
            raise_if_stopped()
    raise_if_stopped()  # forgotten once the outermost block ends
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_nested_block_keeps_the_stop_for_the_outer_one() -> None:
    with sigterm_as_sigint():
        with sigterm_as_sigint():
            _lost(signal.SIGTERM)
        with pytest.raises(KeyboardInterrupt):
            raise_if_stopped()
    raise_if_stopped()


def test_sigterm_stops_even_when_sigint_is_ignored() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with sigterm_as_sigint():
            _lost(signal.SIGTERM)
            with pytest.raises(KeyboardInterrupt):
                raise_if_stopped()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
