"""Every Service shape as an HTTPRoute backend: the waypoint's endpoint map (what a route's
backendRef dials) for each, from the same objects a cluster would hold. A headless Service,
with a selector or with EndpointSlices managed by hand, has no VIP for the kernel but is
dialled by the waypoint like any other; not-ready endpoints never serve, serving
terminating ones only when nothing is ready (KEP-1669); IPv6 slices beside IPv4 ones are
ignored; several slices of one Service are one set."""

from __future__ import annotations

from typing import Any

import pytest

from agent.model.convert import from_dict
from agent.model.core import EndpointSlice, Service
from l7proxy.endpoint_index import EndpointIndex

NS = "shapes"


def svc(name: str, *, headless: bool = False, selector: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    spec["clusterIP"] = "None" if headless else f"10.96.7.{sum(map(ord, name)) % 200 + 1}"
    if selector:
        spec["selector"] = {"app": name}
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}


def eps(service: str, name: str, *endpoints: tuple[str, dict[str, bool]],
        family: str = "IPv4") -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": NS,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": family,
            "endpoints": [{"addresses": [ip], "conditions": c} for ip, c in endpoints],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}


READY = {"ready": True}
NOT_READY = {"ready": False}
DRAINING = {"ready": False, "serving": True, "terminating": True}
V6 = ("fd00::7", READY)

# (shape, Service, its slices, the endpoints a route's backendRef dials)
SHAPES: list[tuple[str, dict[str, Any], list[dict[str, Any]], set[tuple[str, int]]]] = [
    ("ClusterIP with a selector", svc("a"),
     [eps("a", "a-1", ("10.1.0.1", READY))], {("10.1.0.1", 8080)}),
    ("ClusterIP without a selector, slices by hand", svc("b", selector=False),
     [eps("b", "b-manual", ("10.1.0.2", READY))], {("10.1.0.2", 8080)}),
    ("headless with a selector", svc("c", headless=True),
     [eps("c", "c-1", ("10.1.0.3", READY))], {("10.1.0.3", 8080)}),
    ("headless without a selector, slices by hand", svc("d", headless=True, selector=False),
     [eps("d", "d-manual", ("10.1.0.4", READY))], {("10.1.0.4", 8080)}),
    ("several slices for one Service", svc("e", headless=True, selector=False),
     [eps("e", "e-1", ("10.1.0.5", READY)), eps("e", "e-2", ("10.1.0.6", READY))],
     {("10.1.0.5", 8080), ("10.1.0.6", 8080)}),
    ("not-ready endpoints never serve", svc("f", headless=True),
     [eps("f", "f-1", ("10.1.0.7", READY), ("10.1.0.8", NOT_READY), ("10.1.0.9", DRAINING))],
     {("10.1.0.7", 8080)}),
    ("serving terminating ones when nothing is ready", svc("g", headless=True, selector=False),
     [eps("g", "g-1", ("10.1.0.10", NOT_READY), ("10.1.0.11", DRAINING))],
     {("10.1.0.11", 8080)}),
    ("IPv6 slices beside IPv4 ones are ignored", svc("h", headless=True, selector=False),
     [eps("h", "h-4", ("10.1.0.12", READY)), eps("h", "h-6", V6, family="IPv6")],
     {("10.1.0.12", 8080)}),
    ("IPv6 slices beside IPv4 ones, ClusterIP", svc("i", selector=False),
     [eps("i", "i-4", ("10.1.0.13", READY)), eps("i", "i-6", V6, family="IPv6")],
     {("10.1.0.13", 8080)}),
    ("no slices: no endpoints", svc("j", headless=True, selector=False), [], set()),
]


def model(obj: dict[str, Any]) -> Any:
    return from_dict(obj)


@pytest.mark.parametrize(("shape", "service", "slices", "dialled"), SHAPES,
                         ids=[s[0] for s in SHAPES])
def test_each_service_shape_is_dialled_by_the_waypoint(
    shape: str, service: dict[str, Any], slices: list[dict[str, Any]],
    dialled: set[tuple[str, int]],
) -> None:
    index = EndpointIndex()
    name = service["metadata"]["name"]
    index.put_service(model(service), (NS, name))
    for s in slices:
        index.put_slice(model(s), (NS, s["metadata"]["name"]))
    assert set(index.endpoints().get((NS, name, 80), ())) == dialled


def test_the_same_with_every_shape_at_once_and_from_a_relist() -> None:
    services: list[Service] = [model(s) for _, s, _, _ in SHAPES]
    slices: list[EndpointSlice] = [model(x) for _, _, xs, _ in SHAPES for x in xs]
    index = EndpointIndex()
    index.reset(services, slices)
    got = index.endpoints()
    for _, service, _, dialled in SHAPES:
        assert set(got.get((NS, service["metadata"]["name"], 80), ())) == dialled


def test_a_headless_service_follows_its_slices_and_goes_with_its_service() -> None:
    index = EndpointIndex()
    index.put_service(model(svc("k", headless=True, selector=False)), (NS, "k"))
    index.put_slice(model(eps("k", "k-1", ("10.1.0.20", READY))), (NS, "k-1"))
    assert index.endpoints()[(NS, "k", 80)] == (("10.1.0.20", 8080),)
    index.put_slice(model(eps("k", "k-1", ("10.1.0.21", READY))), (NS, "k-1"))
    assert index.endpoints()[(NS, "k", 80)] == (("10.1.0.21", 8080),)
    index.put_slice(None, (NS, "k-1"))
    assert index.endpoints()[(NS, "k", 80)] == ()
    index.put_service(None, (NS, "k"))
    assert (NS, "k", 80) not in index.endpoints()


def test_a_slice_moved_to_another_service_leaves_the_first() -> None:
    index = EndpointIndex()
    for name in ("m", "n"):
        index.put_service(model(svc(name, headless=True, selector=False)), (NS, name))
    index.put_slice(model(eps("m", "x-1", ("10.1.0.30", READY))), (NS, "x-1"))
    assert index.endpoints()[(NS, "m", 80)] == (("10.1.0.30", 8080),)
    index.put_slice(model(eps("n", "x-1", ("10.1.0.30", READY))), (NS, "x-1"))
    got = index.endpoints()
    assert got[(NS, "m", 80)] == () and got[(NS, "n", 80)] == (("10.1.0.30", 8080),)
