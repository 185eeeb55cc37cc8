"""Health-check node ports (agent/healthcheck): which ports a node answers, with what
(kube-proxy's service health server: 200 with the local endpoint count, 503 without one),
and the listeners over real loopback sockets opening and closing with the table."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from agent.healthcheck.server import HealthCheckServer
from agent.healthcheck.table import HealthCheck, answer, plan_health_checks
from agent.model.convert import from_dict
from agent.model.core import EndpointSlice, Service


def service(name: str, type_: str = "LoadBalancer", policy: str | None = "Local",
            hc: int | None = 31000) -> Service:
    spec: dict[str, Any] = {"type": type_, "clusterIP": "10.96.0.50",
                            "ports": [{"port": 80, "nodePort": 30080}]}
    if policy:
        spec["externalTrafficPolicy"] = policy
    if hc is not None:
        spec["healthCheckNodePort"] = hc
    svc = from_dict({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": name, "namespace": "shop"}, "spec": spec})
    assert isinstance(svc, Service)
    return svc


def slice_(service_name: str, *endpoints: tuple[str, str, bool]) -> EndpointSlice:
    obj = from_dict({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{service_name}-x", "namespace": "shop",
                     "labels": {"kubernetes.io/service-name": service_name}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "nodeName": node, "conditions": {"ready": ready}}
                      for ip, node, ready in endpoints],
        "ports": [{"port": 8080}],
    })
    assert isinstance(obj, EndpointSlice)
    return obj


def test_only_loadbalancer_local_services_get_a_port_counting_ready_local_endpoints() -> None:
    services = [
        service("web"),
        service("cluster", policy="Cluster", hc=None),
        service("np", type_="NodePort", hc=None),
    ]
    slices = [
        slice_("web", ("10.244.1.5", "node1", True), ("10.244.1.6", "node1", False),
               ("10.244.2.5", "node2", True)),
        slice_("web", ("10.244.1.5", "node1", True)),  # the same pod in a second slice
        slice_("cluster", ("10.244.1.9", "node1", True)),
    ]
    assert plan_health_checks(services, slices, "node1") == {
        31000: HealthCheck("shop", "web", 1)
    }
    assert plan_health_checks(services, slices, "node3") == {
        31000: HealthCheck("shop", "web", 0)
    }


def test_the_answer_has_kube_proxys_shape() -> None:
    ok = answer(HealthCheck("shop", "web", 2))
    assert ok.status == 200
    assert dict(ok.headers) == {
        "Content-Type": "application/json",
        "X-Content-Type-Options": "nosniff",
        "X-Load-Balancing-Endpoint-Weight": "2",
    }
    assert json.loads(ok.body) == {"service": {"namespace": "shop", "name": "web"},
                                   "localEndpoints": 2, "serviceProxyHealthy": True}
    assert answer(HealthCheck("shop", "web", 0)).status == 503
    assert answer(HealthCheck("shop", "web", 2), proxy_healthy=False).status == 503
    assert answer(None).status == 503


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server() -> Iterator[HealthCheckServer]:
    srv = HealthCheckServer("127.0.0.1")
    yield srv
    srv.close()


def get(port: int, path: str = "/") -> tuple[int, dict[str, Any], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read()), resp.getheader("Content-Type") or ""
    finally:
        conn.close()


def test_listeners_follow_the_table(server: HealthCheckServer) -> None:
    a, b = free_port(), free_port()
    server.update({a: HealthCheck("shop", "web", 1), b: HealthCheck("shop", "db", 0)})
    status, body, ctype = get(a, "/healthz")
    assert (status, body["localEndpoints"], ctype) == (200, 1, "application/json")
    assert get(b)[0] == 503
    server.update({a: HealthCheck("shop", "web", 0)})  # a count changes; b's Service is gone
    assert get(a)[0] == 503
    assert server.ports == {a}
    with pytest.raises(ConnectionRefusedError):
        get(b)


def test_a_port_held_by_another_process_is_skipped_and_the_rest_serve(
    server: HealthCheckServer,
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        other = free_port()
        server.update({taken: HealthCheck("shop", "x", 1), other: HealthCheck("shop", "y", 1)})
        assert server.ports == {other}
        assert get(other)[0] == 200
