"""The controller's delta seam on real maps: after a sequence of per-object changes, the maps
hold exactly what a full replan says (every service's flags, affinity and Maglev table read
back as backend addresses, no leaked backend generation, the ipcache), and a restarted agent
that adopts them and resyncs keeps them."""

from __future__ import annotations

from typing import Any

import pytest

from agent.datapath import maps
from agent.datapath.controller import DatapathController, ObjectChange
from agent.datapath.desired import DesiredDatapath, desired_datapath, l7_keys, view_of
from agent.flows.store import FlowRing
from agent.model.convert import from_dict
from gatewayapi import RouteCompiler
from tests.bpf.test_datapath import Runner

pytestmark = pytest.mark.bpf


def service(ns: str, name: str, vip: str, affinity: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"clusterIP": vip, "ports": [{"name": "http", "port": 80}]}
    if affinity:
        spec["sessionAffinity"] = "ClientIP"
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": ns, "name": name, "resourceVersion": "1"}, "spec": spec}


def endpoint_slice(ns: str, name: str, owner: str, *ips: str, version: str = "1") -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": ns, "name": name, "resourceVersion": version,
                         "labels": {"kubernetes.io/service-name": owner}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]}


def pod(name: str, ip: str, app: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": "a", "name": name, "uid": name, "resourceVersion": "1",
                         "labels": {"app": app}},
            "spec": {"nodeName": "n2", "containers": [{"name": "c"}]},
            "status": {"podIP": ip, "phase": "Running"}}


def change(obj: dict[str, Any] | None, kind: str = "", ns: str = "", name: str = "") -> ObjectChange:
    if obj is None:
        return ObjectChange(kind, ns, name, None, None)
    meta = obj["metadata"]
    return ObjectChange(obj["kind"], meta.get("namespace", ""), meta["name"], None, obj)


def read_services(r: Runner) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """(vip, port, proto) -> (flags, affinity, backend per Maglev slot); and no stray backends."""
    backends = {(k.svc.vip, k.svc.port, k.svc.proto, k.index):
                (maps.from_be32(v.addr), maps.from_be16(v.port))
                for k, v in r.dp.table("lb_backends_v1").items()}
    maglev = r.dp.table("lb_maglev_v1")
    found, used = {}, 0
    for key, svc in r.dp.table("lb_services_v1").items():
        ident = (maps.from_be32(key.vip), maps.from_be16(key.port), key.proto)
        slots: tuple[Any, ...] = ()
        if svc.backend_count:
            leaf = maglev[key]
            slots = tuple(backends[(key.vip, key.port, key.proto, leaf.slots[i])]
                          for i in range(len(leaf.slots)))
            used += svc.backend_count
        found[ident] = (svc.flags, svc.affinity_timeout, slots)
    assert used == len(backends), "backends of an old generation were left behind"
    return found


def expected_services(desired: DesiredDatapath) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    return {
        (k.vip, k.port, k.protocol): (
            0, e.affinity_timeout, tuple((b.ip, b.port) for b in (e.backends[i] for i in e.table))
        )
        for k, e in desired.services.entries.items()
    }


def full(objects: dict[tuple[str, str, str], dict[str, Any]]) -> DesiredDatapath:
    view = view_of(from_dict(o) for o in objects.values())
    return desired_datapath(view, "n1", None, l7_keys(view, RouteCompiler()))


def test_deltas_leave_the_maps_a_full_replan_would(dp: Runner) -> None:
    agent = DatapathController("n1", dp.dp, FlowRing(64))  # type: ignore[arg-type]
    objects: dict[tuple[str, str, str], dict[str, Any]] = {}
    steps: list[ObjectChange] = [
        change(service("a", "x", "10.96.0.1")),
        change(service("a", "y", "10.96.0.2", affinity=True)),
        change(service("b", "x", "10.96.0.1")),  # contests a/x's address: a/x keeps it
        change(endpoint_slice("a", "x1", "x", "10.244.2.2", "10.244.2.3")),
        change(endpoint_slice("b", "x1", "x", "10.244.2.9")),
        change(endpoint_slice("a", "y1", "y", "10.244.2.4")),
        change(pod("p1", "10.244.2.2", "web")),
        change(endpoint_slice("a", "x1", "x", "10.244.2.3", version="2")),  # one backend gone
        change(None, "Service", "a", "x"),  # b/x takes the address over
        change(endpoint_slice("a", "y1", "y", "10.244.2.4", "10.244.2.5", version="2")),
        change(None, "EndpointSlice", "a", "y1"),
        change(None, "Pod", "a", "p1"),
        change(None, "Service", "a", "y"),  # its address is served no more
        change(service("a", "z", "10.96.0.3")),
    ]
    try:
        for step in steps:
            key = (step.kind, step.namespace, step.name)
            if step.new is None:
                objects.pop(key, None)
            else:
                objects[key] = dict(step.new)
            agent.apply_changes([step])
            desired = full(objects)
            assert read_services(dp) == expected_services(desired)
            assert maps.read_ipcache(dp.dp) == dict(desired.ipcache)
        assert agent.errors == ()  # b/x's conflict note is gone with a/x
        # A restarted agent adopts the pinned maps and resyncs to the same contents.
        restarted = DatapathController("n1", dp.dp, FlowRing(64))  # type: ignore[arg-type]
        try:
            restarted.resync(list(objects.values()))
            assert read_services(dp) == expected_services(full(objects))
        finally:
            restarted.close_netlink()
    finally:
        agent.close_netlink()
