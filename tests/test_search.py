"""The search loop's Ctrl-C discipline: storage writes finish before the interrupt is raised."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from advisor.tuning.search import deferred_interrupt


def test_ctrl_c_is_held_until_the_block_ends() -> None:
    before = signal.getsignal(signal.SIGINT)
    finished = []
    with pytest.raises(KeyboardInterrupt), deferred_interrupt():
        os.kill(os.getpid(), signal.SIGINT)
        finished.append("the write after the signal")  # still runs: the signal was held
    assert finished == ["the write after the signal"]
    assert signal.getsignal(signal.SIGINT) is before  # the previous handler is back


def test_no_signal_no_interrupt_and_errors_pass_through() -> None:
    before = signal.getsignal(signal.SIGINT)
    with deferred_interrupt():
        pass
    with pytest.raises(ValueError, match="boom"), deferred_interrupt():
        raise ValueError("boom")
    assert signal.getsignal(signal.SIGINT) is before


def test_outside_the_main_thread_it_does_nothing() -> None:
    # signal handlers can only be set in the main thread: the block must still run
    seen: list[object] = []

    def body() -> None:
        try:
            with deferred_interrupt():
                seen.append("ran")
        except BaseException as exc:  # pragma: no cover - a failure is reported below
            seen.append(exc)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == ["ran"]
