"""The agent compiles its tracer only after the first datapath sync (agent/daemon.py
TRACE_ORDER): start_tracing_after waits for the event, and the pause/resume signals that
arrive before the tracer exists are kept for it."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from typing import Any

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


def test_the_tracer_waits_for_the_first_sync(
    monkeypatch: pytest.MonkeyPatch, restore_signals: None
) -> None:
    loads: list[Any] = []
    monkeypatch.setattr(start, "start_tracing", lambda *args: loads.append(args) or "plan")
    synced, stop = threading.Event(), threading.Event()
    got: list[Any] = []
    thread = start.start_tracing_after(synced, "dp", "ingest", "node1", stop, got.append)  # type: ignore[arg-type]
    thread.join(0.7)  # past one of its 0.5 s waits
    assert thread.is_alive() and loads == []
    synced.set()
    thread.join(5)
    assert not thread.is_alive()
    assert got == ["plan"] and loads[0][:4] == ("dp", "ingest", "node1", stop)
    assert isinstance(loads[0][4], start.TraceSwitch)


def test_stopping_before_the_first_sync_never_loads_the_tracer(
    monkeypatch: pytest.MonkeyPatch, restore_signals: None
) -> None:
    loads: list[Any] = []
    monkeypatch.setattr(start, "start_tracing", lambda *args: loads.append(args))
    synced, stop = threading.Event(), threading.Event()
    thread = start.start_tracing_after(synced, "dp", "ingest", "n", stop, loads.append)  # type: ignore[arg-type]
    stop.set()
    thread.join(5)
    assert not thread.is_alive() and loads == []


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
