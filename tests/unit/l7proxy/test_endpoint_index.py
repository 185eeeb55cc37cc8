"""The waypoint's endpoint map kept per Service equals the full replan after any sequence of
Service and EndpointSlice changes (hypothesis), and the waypoint's feed replans only the
Service a change touches and recompiles only the parts whose kinds changed."""

from __future__ import annotations

import threading
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agent.datapath.service_state as service_state
from agent.datapath.services import ServiceKey, direct_backends, plan_services
from agent.kube.cache import Delta
from agent.kube.state import ClusterState
from agent.model.convert import ConversionError, from_dict
from agent.model.core import EndpointSlice, Service
from l7proxy.endpoint_index import EndpointIndex
from l7proxy.feed import KINDS, ClusterFeed
from tests.unit.datapath.test_planner import NAMES, NAMESPACES, endpoint_slices, services

Name = tuple[str, str]


def reference(svcs: dict[Name, Service], slices: dict[Name, EndpointSlice]) -> dict[Any, Any]:
    """The full replan; a port served over two protocols shows its lowest key (TCP)."""
    plan = plan_services(list(svcs.values()), list(slices.values()))
    chosen: dict[tuple[str, str, int], ServiceKey] = {}
    for key, entry in plan.entries.items():
        port = (entry.namespace, entry.name, key.port)
        if port not in chosen or (key.protocol, int(key.vip)) < (
            chosen[port].protocol, int(chosen[port].vip)
        ):
            chosen[port] = key
    full = {
        port: tuple((str(b.ip), b.port) for b in plan.entries[key].backends)
        for port, key in chosen.items()
    }
    # a headless Service has no entry in the plan; the waypoint dials its endpoints itself
    for (ns, name), svc in svcs.items():
        if svc.spec.headless:
            owned = [s for (sns, _), s in slices.items() if sns == ns and s.service_name == name]
            for port, backends in direct_backends(svc, owned):
                if port.protocol == "TCP":
                    full[(ns, name, port.port)] = tuple((str(b.ip), b.port) for b in backends)
    return full


def decode(obj: dict[str, Any], ns: str, name: str) -> Any:
    obj = {**obj, "metadata": {**obj["metadata"], "namespace": ns, "name": name}}
    try:
        return from_dict(obj)
    except ConversionError:
        return None  # an invalid object is no object, as in the waypoint's ModelCache


changes = st.lists(
    st.tuples(
        st.sampled_from(("Service", "EndpointSlice", "reset")),
        st.sampled_from(NAMESPACES),
        st.sampled_from((*NAMES, "x-1", "y-1")),
        st.one_of(st.none(), services(), endpoint_slices()),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes)
def test_the_index_equals_a_full_replan_after_any_changes(steps: list[Any]) -> None:
    index = EndpointIndex()
    svcs: dict[Name, Service] = {}
    slices: dict[Name, EndpointSlice] = {}
    for kind, ns, name, obj in steps:
        if kind == "reset":
            index.reset(list(svcs.values()), list(slices.values()))
        else:
            held = svcs if kind == "Service" else slices
            model = None
            if obj is not None and obj["kind"] == kind:
                model = decode(obj, ns, name)
            if model is None:
                held.pop((ns, name), None)  # type: ignore[arg-type]
            else:
                held[(ns, name)] = model
            if kind == "Service":
                index.put_service(model, (ns, name))
            else:
                index.put_slice(model, (ns, name))
        assert dict(index.endpoints()) == reference(svcs, slices)


def service(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"s{i}", "namespace": "default", "resourceVersion": str(i + 1)},
            "spec": {"clusterIP": f"10.96.1.{i + 1}", "ports": [{"port": 80, "targetPort": 8080}]}}


def endpoint_slice(i: int, count: int, version: int) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"s{i}-1", "namespace": "default",
                         "resourceVersion": str(version),
                         "labels": {"kubernetes.io/service-name": f"s{i}"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [f"10.244.{i}.{e + 1}"], "conditions": {"ready": True}}
                          for e in range(count)],
            "ports": [{"port": 8080}]}


@pytest.fixture
def feed() -> tuple[ClusterFeed, ClusterState]:
    with mock.patch("l7proxy.feed.ClusterSource") as source_class:
        source = source_class.return_value
        source.state, source.lock = ClusterState(KINDS), threading.Lock()
        made = ClusterFeed(None)  # type: ignore[arg-type]
    state = source.state
    for i in range(50):
        state.apply("Service", Delta("ADDED", ("default", f"s{i}"), service(i), i + 1))
        state.apply("EndpointSlice",
                    Delta("ADDED", ("default", f"s{i}-1"), endpoint_slice(i, 2, 100 + i), 100 + i))
    for kind in KINDS:
        state.mark_listed(kind, 200)
        made._on_change(kind, None)
    return made, state


def change(feed: ClusterFeed, state: ClusterState, kind: str, obj: dict[str, Any],
           deleted: bool = False) -> None:
    meta = obj["metadata"]
    delta = Delta("DELETED" if deleted else "MODIFIED", (meta["namespace"], meta["name"]), obj,
                  int(meta["resourceVersion"]))
    state.apply(kind, delta)
    feed._on_change(kind, delta)


def counting() -> tuple[Any, list[int]]:
    """Counts the Services planned: the planner hands each round's Services to
    ``many_service_entries`` in one call (their Maglev tables in one C call)."""
    calls = [0]
    real = service_state.many_service_entries

    def wrapper(requests: Any, *args: Any, **kwargs: Any) -> Any:
        requests = list(requests)
        calls[0] += len(requests)
        return real(requests, *args, **kwargs)

    return wrapper, calls


def test_an_endpoint_change_replans_its_service_alone(
    feed: tuple[ClusterFeed, ClusterState],
) -> None:
    cluster, state = feed
    tables, endpoints, *_ = cluster.snapshot()
    wrapper, calls = counting()
    with mock.patch.object(service_state, "many_service_entries", wrapper):
        change(cluster, state, "EndpointSlice", endpoint_slice(7, 3, 500))
        new_tables, new_endpoints, *_ = cluster.snapshot()
    assert calls[0] == 1  # Service s7 only, not all 50
    assert new_tables is tables  # no route kind changed: the tables are not recompiled
    assert new_endpoints._map[("default", "s7", 80)] == (  # type: ignore[attr-defined]
        ("10.244.7.1", 8080), ("10.244.7.2", 8080), ("10.244.7.3", 8080))
    assert new_endpoints._map[("default", "s8", 80)] == (  # type: ignore[attr-defined]
        ("10.244.8.1", 8080), ("10.244.8.2", 8080))


def test_deletions_and_service_changes_reach_the_map(
    feed: tuple[ClusterFeed, ClusterState],
) -> None:
    cluster, state = feed
    cluster.snapshot()
    change(cluster, state, "EndpointSlice", endpoint_slice(3, 2, 600), deleted=True)
    moved = service(4)
    moved["spec"]["ports"] = [{"port": 81, "targetPort": 8080}]
    moved["metadata"]["resourceVersion"] = "601"
    change(cluster, state, "Service", moved)
    _, endpoints, *_ = cluster.snapshot()
    got = endpoints._map  # type: ignore[attr-defined]
    assert got[("default", "s3", 80)] == ()
    assert ("default", "s4", 80) not in got
    assert got[("default", "s4", 81)] == (("10.244.4.1", 8080), ("10.244.4.2", 8080))
    change(cluster, state, "Service", moved, deleted=True)
    _, endpoints, *_ = cluster.snapshot()
    assert ("default", "s4", 81) not in endpoints._map  # type: ignore[attr-defined]


def test_a_relist_starts_the_index_over(feed: tuple[ClusterFeed, ClusterState]) -> None:
    cluster, state = feed
    cluster.snapshot()
    # Changes folded into a relist arrive as the state plus a listed notice, no deltas.
    state.objects.pop(("EndpointSlice", "default", "s9-1"))
    cluster._on_change("EndpointSlice", None)
    _, endpoints, *_ = cluster.snapshot()
    assert endpoints._map[("default", "s9", 80)] == ()  # type: ignore[attr-defined]
