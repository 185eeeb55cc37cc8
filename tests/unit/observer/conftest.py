"""In-process observer servers on unix sockets in tmp_path and 127.0.0.1 ephemeral ports."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.flows.store import FlowRing
from agent.observer.client import ObserverClient
from agent.observer.convert import Event, FlowsQuery
from agent.observer.server import ObserverServer

NodeFactory = Callable[..., ObserverServer]


@pytest.fixture
def start_node(tmp_path: Path) -> Iterator[NodeFactory]:
    started: list[ObserverServer] = []

    def start(name: str, ring: FlowRing | None = None, *, tcp: bool = False) -> ObserverServer:
        server = ObserverServer(
            ring if ring is not None else FlowRing(1000), name,
            tcp_address="127.0.0.1:0" if tcp else None,
            unix_socket=tmp_path / f"{name}.sock",
        )
        started.append(server.start())
        return server

    yield start
    for s in started:
        s.stop(grace=0)


class Follower:
    """Reads a follow stream on a thread; `until(n)` waits for n events."""

    def __init__(self, client: ObserverClient, query: FlowsQuery) -> None:
        self.client = client
        self.events: list[Event] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(query,), daemon=True)
        self._thread.start()

    def _run(self, query: FlowsQuery) -> None:
        try:
            for ev in self.client.get_flows(query):
                self.events.append(ev)
        except BaseException as e:  # noqa: BLE001 (reported to the test)
            self.error = e

    def until(self, n: int, timeout: float = 5.0, kind: type | None = None) -> list[Event]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [e for e in self.events if kind is None or isinstance(e, kind)]
            if len(got) >= n:
                return got
            time.sleep(0.01)
        raise AssertionError(f"only {len(self.events)} events after {timeout}s: {self.events}")

    def stop(self) -> None:
        self.client.close()
        self._thread.join(5)
