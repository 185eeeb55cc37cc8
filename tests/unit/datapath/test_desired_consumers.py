"""GAMMA consumer routes in the desired datapath (issue 9 item 3): a Service port with only
consumer routes is redirected for pods in the routes' namespaces only; producer routes
redirect every client."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from agent.datapath.desired import desired_datapath, l7_keys, view_of
from agent.datapath.services import ServiceKey
from agent.model.convert import from_dict
from agent.model.resource import Resource
from gatewayapi import RouteCompiler

VIP = "10.96.0.20"
KEY_HTTP, KEY_RAW = ServiceKey(IPv4Address(VIP), 80, 6), ServiceKey(IPv4Address(VIP), 9000, 6)


def _objs(*docs: dict[str, Any]) -> list[Resource]:
    return [from_dict(d) for d in docs]


def ns(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def pod(namespace: str, name: str, ip: str, node: str = "n1") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": f"{namespace}-{name}",
                         "labels": {"app": name}},
            "spec": {"nodeName": node, "containers": [{"name": "c"}]},
            "status": {"podIP": ip, "phase": "Running"}}


SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "y"},
           "spec": {"clusterIP": VIP, "selector": {"app": "api"},
                    "ports": [{"name": "http", "port": 80}, {"name": "raw", "port": 9000}]}}


def route(namespace: str, port: int | None = 80) -> dict[str, Any]:
    parent: dict[str, Any] = {"group": "", "kind": "Service", "name": "api", "namespace": "y"}
    if port is not None:
        parent["port"] = port
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": f"r-{namespace}", "namespace": namespace},
            "spec": {"parentRefs": [parent], "rules": [{"backendRefs": [
                {"name": "api", "namespace": "y", "port": 80}]}]}}


BASE = [ns("x"), ns("y"), ns("z"), SERVICE, pod("x", "cx", "10.244.1.2"),
        pod("z", "cz", "10.244.1.3"), pod("x", "far", "10.244.2.2", node="n2")]


def test_consumer_only_port_is_redirected_for_its_namespace_only() -> None:
    view = view_of(_objs(*BASE, route("x")))
    needs = l7_keys(view, RouteCompiler())
    assert needs.every == frozenset()
    assert dict(needs.consumers) == {KEY_HTTP: frozenset({"x"})}
    desired = desired_datapath(view, "n1", l7=needs)
    assert desired.l7 == frozenset() and desired.l7_some == {KEY_HTTP}
    # Local pods of namespace x only; z's pod and n2's pod are not this node's business.
    assert desired.l7_clients == {(KEY_HTTP, IPv4Address("10.244.1.2"))}


def test_a_portless_consumer_route_claims_every_port_for_its_namespace_only() -> None:
    needs = l7_keys(view_of(_objs(*BASE, route("x", port=None))), RouteCompiler())
    assert needs.every == frozenset()
    assert set(needs.consumers) == {KEY_HTTP, KEY_RAW}


def test_producer_routes_redirect_everyone() -> None:
    needs = l7_keys(view_of(_objs(*BASE, route("x"), route("y"))), RouteCompiler())
    assert needs.every == {KEY_HTTP} and not needs.consumers


def test_route_to_an_ipv6_service_needs_no_waypoint_and_plans_the_rest() -> None:
    """Found by the planner's property test: a route whose Service has an IPv6 ClusterIP made
    l7_keys raise, so every datapath sync failed; now that Service is left out (plan_services
    notes that IPv6 is not load-balanced) and the IPv4 Service keeps its L7 flag."""
    v6 = {**SERVICE, "metadata": {"name": "v6", "namespace": "y"},
          "spec": {**SERVICE["spec"], "clusterIP": "fd00::10", "ipFamilies": ["IPv6"]}}
    v6_route = route("y")
    v6_route["metadata"]["name"] = "r-v6"
    v6_route["spec"]["parentRefs"][0]["name"] = "v6"
    view = view_of(_objs(*BASE, v6, v6_route, route("y")))
    needs = l7_keys(view, RouteCompiler())
    assert needs.every == frozenset({KEY_HTTP})
    assert any("fd00::10 is IPv6" in e for e in desired_datapath(view, "n1", l7=needs).errors)
