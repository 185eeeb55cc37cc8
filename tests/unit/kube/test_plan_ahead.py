"""A first sync's Services planned from the list pages as they arrive (Agent.handle_page,
DatapathController.preplan), against the lab's API server with pages of two objects: the
first sync then plans no Service again, and programs what a whole-list plan programs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from ipaddress import IPv4Address
from typing import Any

import pytest

from agent.datapath.controller import DatapathController
from agent.flows.store import FlowRing
from agent.kube import informer as informer_module
from agent.kube.backoff import Backoff
from agent.kube.source import connect
from agent.node_agent import Agent
from bench.control.replan import NoMaps, stub_map_writes
from tests.unit.kube.conftest import Lab, account_kubeconfig
from tests.unit.kube.test_node_agent import wait_for

SERVICES = 7


def service(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"s{i}", "namespace": "default"},
            "spec": {"clusterIP": f"10.96.0.{i + 1}", "ports": [{"name": "http", "port": 80}]}}


def endpoint_slice(i: int) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"s{i}-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": f"s{i}"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": [f"10.244.1.{i + 2}"], "conditions": {"ready": True}}]}


class PlannedAhead(DatapathController):
    """Records what was planned ahead, and how many Services each resync planned."""

    def __init__(self) -> None:
        super().__init__("node1", NoMaps(), FlowRing(16))  # type: ignore[arg-type]
        self.ahead: list[int] = []
        self.handed = threading.Event()
        self.resynced: list[Any] = []

    def preplan(self, objects: Any) -> int:
        planned = super().preplan(objects)
        self.ahead.append(planned)
        self.handed.set()
        return planned

    def resync(self, objects: Any) -> None:
        left = len(self.planner.services._dirty)  # noqa: SLF001 - what the resync must plan
        super().resync(objects)
        self.resynced.append((left, list(objects)))


class PagedAgent(Agent):
    """Each list page waits until the sync loop handed it to the datapath, so that every
    page is planned ahead (without it, a fast server's pages may all be in before the
    loop looks, and the first sync plans them: correct, but nothing to check here)."""

    def handle_page(self, kind: str, items: list[Any]) -> None:
        datapath = self.datapath
        assert isinstance(datapath, PlannedAhead)
        datapath.handed.clear()
        super().handle_page(kind, items)
        if kind in ("Service", "EndpointSlice"):
            assert datapath.handed.wait(5.0), "a page was not handed to the datapath"


@pytest.fixture
def synced(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Agent, PlannedAhead]]:
    monkeypatch.setattr(informer_module, "LIST_PAGE", 2)
    lab.store.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
    for i in range(SERVICES):
        lab.store.apply(service(i))
        lab.store.apply(endpoint_slice(i))
    writes: list[Any] = []
    with stub_map_writes(writes):
        agent = PagedAgent("node1", connect(account_kubeconfig(lab, "tulle-agent")),
                           backoff=Backoff(0.02, 0.2), plan_ahead=True)
        datapath = agent.datapath = PlannedAhead()
        datapath.writes = writes  # type: ignore[attr-defined]
        syncer = threading.Thread(target=agent.sync_forever, daemon=True)
        syncer.start()
        agent.source.start()
        try:
            wait_for(agent.first_synced.is_set, "the first sync")
            yield agent, datapath
        finally:
            agent.stop.set()
            agent.source.stop()
            syncer.join(timeout=5)
            datapath.close_netlink()


def test_the_first_sync_plans_ahead_from_the_pages(synced: tuple[Agent, PlannedAhead]) -> None:
    agent, datapath = synced
    # Each Service planned once, as soon as both it and its slice were in; none by the sync.
    assert sum(datapath.ahead) == SERVICES
    assert len(datapath.ahead) >= 4  # pages of two: planned page by page, not at the end
    (left, objects), = datapath.resynced
    assert left == 0
    # The maps hold what planning the whole list at once gives.
    whole = DatapathController("node1", NoMaps(), FlowRing(16))  # type: ignore[arg-type]
    whole.planner.reset(whole.models.decode_all(objects))
    assert datapath.planner.desired() == whole.planner.desired()
    entries = datapath.planner.desired().services.entries
    assert {e.name: [str(b) for b in e.backends] for e in entries.values()} == {
        f"s{i}": [f"10.244.1.{i + 2}:8080"] for i in range(SERVICES)}
    written = datapath.writes  # type: ignore[attr-defined]
    assert sorted(written) == [(IPv4Address(f"10.96.0.{i + 1}"), 80, 6) for i in range(SERVICES)]
    # After the first sync, pages are no longer collected (a relist is a resync's job).
    Agent.handle_page(agent, "Service", [object()])
    assert agent.ahead == []


def test_without_plan_ahead_no_page_is_collected(lab: Lab) -> None:
    agent = Agent("node1", connect(account_kubeconfig(lab, "tulle-agent")))
    assert all(i._on_page is None for i in agent.source.informers)  # noqa: SLF001
