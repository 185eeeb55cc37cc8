"""DatapathController's seam for the event source, without a kernel (map writes stubbed):
per-object deltas and full resyncs program the same services, an invalid object counts as
absent and names itself, kinds the datapath does not read are ignored."""

from __future__ import annotations

import logging
from ipaddress import IPv4Address
from typing import Any

import pytest

from agent.datapath.controller import DatapathController, ObjectChange
from agent.flows.store import FlowRing
from bench.control.replan import NoMaps, stub_map_writes


def service(name: str, vip: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": "a", "name": name, "resourceVersion": "1"},
            "spec": {"clusterIP": vip, "ports": [{"name": "http", "port": 80}]}}


def endpoint_slice(owner: str, ip: str, version: str) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": "a", "name": f"{owner}-1", "resourceVersion": version,
                         "labels": {"kubernetes.io/service-name": owner}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}]}


def delta(obj: dict[str, Any], deleted: bool = False) -> ObjectChange:
    meta = obj["metadata"]
    return ObjectChange(obj["kind"], meta["namespace"], meta["name"], obj, None if deleted else obj)


@pytest.fixture
def controller() -> Any:
    writes: list[Any] = []
    with stub_map_writes(writes):
        agent = DatapathController("n1", NoMaps(), FlowRing(16))  # type: ignore[arg-type]
        agent.writes = writes  # type: ignore[attr-defined]
        yield agent
        agent.close_netlink()


def backends(agent: DatapathController) -> dict[str, list[str]]:
    entries = agent.planner.desired().services.entries
    return {e.name: [str(b) for b in e.backends] for e in entries.values()}


def test_deltas_and_resync_agree_and_write_only_what_changed(controller: Any) -> None:
    objects = [service("x", "10.96.0.1"), service("y", "10.96.0.2"),
               endpoint_slice("x", "10.244.1.2", "2"), endpoint_slice("y", "10.244.1.3", "3")]
    controller.apply_changes([delta(o) for o in objects])
    moved = endpoint_slice("x", "10.244.1.9", "4")
    controller.writes.clear()
    controller.apply_changes([delta(moved)])
    assert controller.writes == [(IPv4Address("10.96.0.1"), 80, 6)]  # one service's maps
    assert backends(controller) == {"x": ["10.244.1.9:8080"], "y": ["10.244.1.3:8080"]}
    controller.writes.clear()
    controller.resync([objects[0], objects[1], moved])  # y's slice gone
    assert backends(controller) == {"x": ["10.244.1.9:8080"], "y": []}
    assert controller.writes == [(IPv4Address("10.96.0.2"), 80, 6)]
    controller.apply_changes([delta(service("y", "10.96.0.2"), deleted=True)])
    assert backends(controller) == {"x": ["10.244.1.9:8080"]}


def test_an_invalid_object_is_absent_and_named(
    controller: Any, caplog: pytest.LogCaptureFixture
) -> None:
    controller.apply_changes([delta(service("x", "10.96.0.1")),
                              delta(endpoint_slice("x", "10.244.1.2", "2"))])
    broken = endpoint_slice("x", "10.244.1.2", "5")
    broken["endpoints"][0]["addresses"] = ["not-an-address"]
    with caplog.at_level(logging.ERROR, logger="tulle.model"):
        controller.apply_changes([delta(broken), delta({"apiVersion": "v1", "kind": "ConfigMap",
                                                        "metadata": {"namespace": "a",
                                                                     "name": "c"}})])
    assert backends(controller) == {"x": []}  # as a full replan drops an invalid object
    assert "EndpointSlice a/x-1" in caplog.text and "not-an-address" in caplog.text
