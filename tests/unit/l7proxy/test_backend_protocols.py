"""GEP-1911 backend protocols from Service ports: ``appProtocol: kubernetes.io/h2c`` makes the
waypoint speak HTTP/2 with prior knowledge to that port (the conformance case
HTTPRouteBackendProtocolH2C); other ports of the same Service, WebSocket's
``kubernetes.io/ws`` and unknown values stay HTTP/1.1."""

from __future__ import annotations

from typing import Any

from agent.model.convert import from_dict
from l7proxy.feed import backend_protocols


def svc(name: str, ports: list[dict[str, Any]], ns: str = "infra") -> Any:
    return from_dict({"apiVersion": "v1", "kind": "Service",
                      "metadata": {"name": name, "namespace": ns},
                      "spec": {"selector": {"app": name}, "ports": ports}})


def test_only_h2c_ports_are_named_by_service_port() -> None:
    services = [
        svc("be", [{"name": "http", "port": 8080, "targetPort": 3000},
                   {"name": "h2c", "port": 8081, "targetPort": 3001,
                    "appProtocol": "kubernetes.io/h2c"},
                   {"name": "ws", "port": 8082, "targetPort": 3000,
                    "appProtocol": "kubernetes.io/ws"}]),
        svc("other", [{"name": "x", "port": 80, "appProtocol": "h2c"}], ns="else"),
    ]
    assert backend_protocols(services) == {("infra", "be", 8081): "h2c"}


def test_no_services_no_protocols() -> None:
    assert backend_protocols([]) == {}
