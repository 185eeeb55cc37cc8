"""The agent's observer API starts after its first sync (agent/daemon.py `run`: its gRPC import
would share the GIL with the first sync's lists and plan), then serves; and it starts anyway
when no first sync comes. The real ``run`` against the lab's API server, with the BCC load and
the map writes stubbed and the first sync held back until the test lets it go."""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import bcc_thread, daemon
from agent.datapath.controller import DatapathController
from bench.control.replan import NoMaps, stub_map_writes
from tests.unit.kube.conftest import Lab, account_kubeconfig, free_port
from tests.unit.kube.test_agent_bcc_thread import restore_signals as restore_signals
from tests.unit.kube.test_node_agent import wait_for


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def health(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """The datapath "loads" at once (no BCC, no maps); its first resync waits for the event."""
    release = threading.Event()
    resync = DatapathController.resync

    def held_resync(self: DatapathController, objects: Any) -> None:
        release.wait(30)
        resync(self, objects)

    monkeypatch.setattr(bcc_thread, "load_datapath", lambda *a, **k: NoMaps())
    monkeypatch.setattr(DatapathController, "resync", held_resync)
    monkeypatch.setattr(DatapathController, "run_events", lambda self, stop: None)
    with stub_map_writes([]):
        yield release
        release.set()
        wait_for(lambda: not any(t.name == "sync" for t in threading.enumerate()),
                 "the agent's sync thread to end")


def run_agent(lab: Lab, tmp_path: Path, drive: Callable[[int, Path], None]) -> None:
    """``daemon.run`` on this (the main) thread, ``drive`` beside it; SIGTERM ends it."""
    port, health_file = free_port(), tmp_path / "health.json"
    config = daemon.AgentConfig(
        node="node1", kubeconfig=str(account_kubeconfig(lab, "tulle-agent")),
        health_file=str(health_file), pin_dir=str(tmp_path / "pins"),
        observer_port=port, metrics_address=None, trace=False,
    )
    failed: list[BaseException] = []

    def driver() -> None:
        try:
            drive(port, health_file)
        except BaseException as err:  # reported on the test's thread
            failed.append(err)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # the agent's handler: stop

    thread = threading.Thread(target=driver, daemon=True)
    thread.start()
    assert daemon.run(config) == 0
    thread.join(10)
    if failed:
        raise failed[0]


def test_the_observer_serves_once_the_first_sync_is_done(
    lab: Lab, tmp_path: Path, held: threading.Event, restore_signals: None
) -> None:
    from agent.observer.client import ObserverClient

    seen: dict[str, Any] = {}

    def drive(port: int, health_file: Path) -> None:
        wait_for(lambda: health(health_file).get("datapath", {}).get("loaded_s") is not None,
                 "the datapath loaded")
        wait_for(lambda: health(health_file).get("objects", 0) > 0, "the lists")
        seen["before"] = listening(port)  # loaded and listed; the first sync held back
        held.set()
        wait_for(lambda: listening(port), "the observer API", 10.0)
        seen["synced"] = health(health_file)["datapath"]["first_sync_s"]
        client = ObserverClient(f"127.0.0.1:{port}")
        try:
            seen["status"] = client.server_status()
        finally:
            client.close()

    run_agent(lab, tmp_path, drive)
    assert gc.isenabled()  # the startup GC pause ends with the agent, first sync or not
    assert seen["before"] is False
    assert seen["synced"] is not None  # reported at once, by the time it serves
    assert seen["status"].max_flows > 0


def test_the_observer_starts_without_a_first_sync_in_the_end(
    lab: Lab, tmp_path: Path, held: threading.Event, restore_signals: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(daemon, "OBSERVER_AFTER_SYNC_MAX", 0.5)

    def drive(port: int, health_file: Path) -> None:
        wait_for(lambda: listening(port), "the observer API", 10.0)
        assert health(health_file)["datapath"]["first_sync_s"] is None

    run_agent(lab, tmp_path, drive)
    assert gc.isenabled()  # the startup GC pause ends with the agent, first sync or not
