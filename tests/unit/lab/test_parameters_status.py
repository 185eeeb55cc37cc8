"""The lab's Gateway controller writes InvalidParameters (gatewayapi/parameters.py) on a
GatewayClass and a Gateway that name a parametersRef, and only on those (and the class's Gateways)."""

from __future__ import annotations

from typing import Any

from gatewayapi.types import CONTROLLER_NAME
from lab.controllers.gateways import GatewayController

GW_API = "gateway.networking.k8s.io/v1"
CLASS: dict[str, Any] = {
    "apiVersion": GW_API, "kind": "GatewayClass", "metadata": {"name": "tulle", "generation": 1},
    "spec": {"controllerName": CONTROLLER_NAME},
}
GATEWAY: dict[str, Any] = {
    "apiVersion": GW_API, "kind": "Gateway",
    "metadata": {"name": "edge", "namespace": "web", "generation": 1},
    "spec": {"gatewayClassName": "tulle",
             "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
}


class _Writer:
    def __init__(self) -> None:
        self.writes: dict[tuple[str, str, str], dict[str, Any]] = {}

    def update_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]
                      ) -> dict[str, Any]:
        self.writes[(kind, namespace, name)] = status
        return {}


def _accepted(status: dict[str, Any]) -> tuple[str, str]:
    c = next(c for c in status["conditions"] if c["type"] == "Accepted")
    return c["status"], c["reason"]


def test_the_controller_writes_invalid_parameters_on_the_class_and_its_gateways() -> None:
    writer = _Writer()
    with_params = {**CLASS, "spec": {**CLASS["spec"], "parametersRef": {
        "group": "", "kind": "ConfigMap", "name": "cfg", "namespace": "web"}}}
    GatewayController(writer).reconcile([with_params, GATEWAY], [])
    assert _accepted(writer.writes[("GatewayClass", "", "tulle")]) == (
        "False", "InvalidParameters")
    assert _accepted(writer.writes[("Gateway", "web", "edge")]) == ("False", "InvalidParameters")


def test_a_gateways_own_parameters_ref_refuses_only_that_gateway() -> None:
    writer = _Writer()
    spec = {**GATEWAY["spec"], "infrastructure": {
        "parametersRef": {"group": "example.com", "kind": "EdgeConfig", "name": "big"}}}
    other = {**GATEWAY, "metadata": {**GATEWAY["metadata"], "name": "plain"}}
    GatewayController(writer).reconcile([CLASS, {**GATEWAY, "spec": spec}, other], [])
    assert _accepted(writer.writes[("GatewayClass", "", "tulle")]) == ("True", "Accepted")
    assert _accepted(writer.writes[("Gateway", "web", "edge")]) == ("False", "InvalidParameters")
    assert _accepted(writer.writes[("Gateway", "web", "plain")]) == ("True", "Accepted")
