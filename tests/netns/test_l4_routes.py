"""TCPRoute and UDPRoute in a live lab, served in the kernel: a pod reaches a Gateway's TCP
and UDP listeners at the Gateway's pool address and lands on the routes' backends in
proportion to their weights (within a binomial bound over a bounded number of flows); a
port without a listener is not served; a route from another namespace that the listener's
allowedRoutes do not admit is refused in status and not served (the attacker's test); the
listeners' flows name the Gateway as their service and the route in ``tulle.route``."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from . import clients
from .conftest import Lab
from .test_datapath import PY, apply, deployment, namespace, pods_of, ready_slices, run_py, service
from .test_datapath import wait_for as wait

pytestmark = [pytest.mark.root, pytest.mark.netns]
NS, INTRUDER = "l4", "l4-intruder"
GW = "gateway.networking.k8s.io/v1"
TCP_FLOWS, UDP_FLOWS = 300, 120


def _route(kind: str, ns: str, name: str, section: str, refs: list[tuple[str, int, int]]
           ) -> dict[str, Any]:
    return {"apiVersion": GW, "kind": kind, "metadata": {"name": name, "namespace": ns},
            "spec": {"parentRefs": [{"name": "edge", "namespace": NS, "sectionName": section}],
                     "rules": [{"backendRefs": [{"name": n, "namespace": ns, "port": p,
                                                 "weight": w} for n, p, w in refs]}]}}


def _udp(ns: str, name: str) -> list[dict[str, Any]]:
    return [deployment(ns, name, 1, command=[PY, "-c", clients.UDP_SERVER],
                       ports=[{"name": "dns", "containerPort": 5353, "protocol": "UDP"}]),
            service(ns, name, port=53, target="dns", protocol="UDP")]


def _conditions(route: dict[str, Any]) -> dict[str, tuple[str, str]]:
    parents = (route.get("status") or {}).get("parents") or []
    if not parents:
        return {}
    return {c["type"]: (c["status"], c["reason"]) for c in parents[0]["conditions"]}


@pytest.fixture(scope="module")
def edge(lab: Lab) -> dict[str, Any]:
    gateway = {"apiVersion": GW, "kind": "Gateway", "metadata": {"name": "edge", "namespace": NS},
               "spec": {"gatewayClassName": "tulle", "listeners": [
                   {"name": "tcp", "port": 9000, "protocol": "TCP"},
                   {"name": "udp", "port": 9053, "protocol": "UDP"},
                   {"name": "locked", "port": 9100, "protocol": "TCP"},  # Same namespace only
               ]}}
    apply(lab, namespace(NS), namespace(INTRUDER),
          deployment(NS, "a", 1, node="node2"), service(NS, "a"),
          deployment(NS, "b", 1, node="node1"), service(NS, "b"),
          *_udp(NS, "ua"), *_udp(NS, "ub"),
          deployment(NS, "client", 1, node="node1"),
          deployment(INTRUDER, "x", 1), service(INTRUDER, "x"),
          gateway,
          _route("TCPRoute", NS, "split", "tcp", [("a", 80, 3), ("b", 80, 1)]),
          _route("UDPRoute", NS, "dns", "udp", [("ua", 53, 1), ("ub", 53, 1)]),
          _route("TCPRoute", INTRUDER, "grab", "locked", [("x", 80, 1)]))
    lab.wait_pods_ready(NS, 5, timeout=120)
    lab.wait_pods_ready(INTRUDER, 1, timeout=60)
    for svc in ("a", "b", "ua", "ub"):
        wait(lambda s=svc: ready_slices(lab, NS, s, 1), what=f"{svc} endpoints")
    wait(lambda: ready_slices(lab, INTRUDER, "x", 1), what="x endpoints")
    address = wait(lambda: (lab.get("gateways", NS)[0].get("status") or {}).get("addresses"),
                   timeout=30, what="the Gateway's address")[0]["value"]
    client = pods_of(lab, NS, "client")[0]["metadata"]["name"]

    def served() -> bool:
        r = run_py(lab, NS, client, clients.HTTP_SPREAD, address, 9000, 1)
        return r["failed"] == 0

    wait(served, timeout=30, what="the TCP listener served")
    return {"address": address, "client": client}


def _binomial(counts: dict[str, int], shares: dict[str, float], flows: int) -> None:
    assert sum(counts.values()) == flows, counts
    for pod, share in shares.items():
        sd = math.sqrt(flows * share * (1 - share))
        assert abs(counts.get(pod, 0) - flows * share) <= 5 * sd, (pod, counts, shares)


def _pod(lab: Lab, app: str) -> str:
    return str(pods_of(lab, NS, app)[0]["metadata"]["name"])


def test_routes_and_listeners_report_their_status(lab: Lab, edge: dict[str, Any]) -> None:
    routes = {r["metadata"]["name"]: r for r in lab.get("tcproutes", NS)}
    assert _conditions(routes["split"]) == {"Accepted": ("True", "Accepted"),
                                            "ResolvedRefs": ("True", "ResolvedRefs")}
    (dns,) = lab.get("udproutes", NS)
    assert _conditions(dns)["Accepted"] == ("True", "Accepted")
    listeners = {ls["name"]: ls for ls in lab.get("gateways", NS)[0]["status"]["listeners"]}
    assert listeners["tcp"]["attachedRoutes"] == 1
    assert listeners["udp"]["supportedKinds"] == [{"group": "gateway.networking.k8s.io",
                                                   "kind": "UDPRoute"}]
    assert listeners["locked"]["attachedRoutes"] == 0


def test_a_pod_reaches_the_tcp_listener_with_weights(lab: Lab, edge: dict[str, Any]) -> None:
    result = run_py(lab, NS, edge["client"], clients.HTTP_SPREAD, edge["address"], 9000,
                    TCP_FLOWS)
    assert result["failed"] == 0, result
    # Weights 3:1; each Service has one endpoint (its share within 1/1021 of exact).
    _binomial(result["pods"], {_pod(lab, "a"): 0.75, _pod(lab, "b"): 0.25}, TCP_FLOWS)


def test_a_pod_reaches_the_udp_listener_with_weights(lab: Lab, edge: dict[str, Any]) -> None:
    result = run_py(lab, NS, edge["client"], clients.UDP_ASK, edge["address"], 9053, UDP_FLOWS)
    assert result["failed"] == 0, result
    _binomial(result["pods"], {_pod(lab, "ua"): 0.5, _pod(lab, "ub"): 0.5}, UDP_FLOWS)


def test_a_port_without_a_listener_is_not_served(lab: Lab, edge: dict[str, Any]) -> None:
    result = run_py(lab, NS, edge["client"], clients.HTTP_SPREAD, edge["address"], 9200, 2)
    assert result["failed"] == 2 and not result["pods"], result


def test_a_route_from_another_namespace_is_refused_and_not_served(
    lab: Lab, edge: dict[str, Any]
) -> None:
    (grab,) = lab.get("tcproutes", INTRUDER)
    assert _conditions(grab)["Accepted"] == ("False", "NotAllowedByListeners")
    intruder = pods_of(lab, INTRUDER, "x")[0]["metadata"]["name"]
    result = run_py(lab, NS, edge["client"], clients.HTTP_SPREAD, edge["address"], 9100, 2)
    assert intruder not in result["pods"] and result["failed"] == 2, result


def test_flows_through_the_listeners_name_the_gateway_and_their_route(
    lab: Lab, edge: dict[str, Any]
) -> None:
    """Hubble's destination_service is the Gateway; Tulle's tulle.route the TCPRoute or
    UDPRoute serving the listener, on every flow of those connections that names it."""
    run_py(lab, NS, edge["client"], clients.HTTP_SPREAD, edge["address"], 9000, 3)
    run_py(lab, NS, edge["client"], clients.UDP_ASK, edge["address"], 9053, 3)

    def routes_by_protocol() -> dict[str, set[str]] | None:
        out = lab.tulle("observe", "--last", "5000", "-o", "json").stdout
        seen: dict[str, set[str]] = {}
        for line in out.splitlines():
            if not line.strip():
                continue
            flow = json.loads(line)["flow"]
            if flow.get("destination_service") != {"name": "edge", "namespace": NS}:
                continue
            protocol = next(iter(flow.get("l4") or {"?": None}))
            seen.setdefault(protocol, set()).add((flow.get("tulle") or {}).get("route", ""))
        return seen if {"TCP", "UDP"} <= set(seen) else None

    seen = wait(routes_by_protocol, timeout=30, what="flows to the Gateway's listeners")
    assert seen["TCP"] == {f"{NS}/split"} and seen["UDP"] == {f"{NS}/dns"}, seen
