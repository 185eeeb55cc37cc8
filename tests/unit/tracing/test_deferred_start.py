"""The agent compiles its tracer on its BCC thread (agent/bcc_thread.py order; the order
itself: tests/unit/kube/test_agent_bcc_thread.py): the pause/resume signals that arrive
before the tracer exists are kept for it."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from agent.tracing import start


@pytest.fixture
def restore_signals() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGUSR2)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


class Feed:
    want_attached = True


def test_a_pause_signal_before_the_tracer_exists_is_applied_to_it(
    restore_signals: None,
) -> None:
    switch = start.TraceSwitch().install()
    signal.raise_signal(signal.SIGUSR1)
    feed = Feed()
    switch.attach(feed)
    assert feed.want_attached is False
    signal.raise_signal(signal.SIGUSR2)
    assert feed.want_attached is True
