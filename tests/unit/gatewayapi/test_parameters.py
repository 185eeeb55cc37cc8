"""``parametersRef`` (gatewayapi/parameters.py). Gateway API v1.6.1, GatewayClassSpec and
GatewayInfrastructure: a referent that cannot be found or is of an unsupported kind SHOULD
leave the GatewayClass / Gateway with Accepted False, reason InvalidParameters. Tulle
supports no parameters kind, so any reference is one; the Gateway is then not served."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agent.model.convert import from_dict
from agent.model.gateway import Gateway, GatewayClass
from agent.model.resource import Resource
from gatewayapi import CONTROLLER_NAME, RouteCompiler, Selection, compute_status
from gatewayapi.analysis import analyze
from gatewayapi.l4routes import served_l4_listeners
from gatewayapi.status import StatusReport
from gatewayapi.types import NoRoute
from tests.unit.gatewayapi.helpers import (
    GW,
    INFRA,
    T0,
    gw_ref,
    inputs,
    listener,
    route,
    select,
)

NOW = datetime(2024, 6, 1, tzinfo=UTC)
ALL = {"namespaces": {"from": "All"}}
CONFIG_MAP = {"group": "", "kind": "ConfigMap", "name": "cfg"}


def tulle_class(name: str = "tulle", parameters: dict[str, str] | None = None) -> GatewayClass:
    spec: dict[str, Any] = {"controllerName": CONTROLLER_NAME}
    if parameters is not None:
        spec["parametersRef"] = parameters
    obj = from_dict({"apiVersion": GW, "kind": "GatewayClass",
                     "metadata": {"name": name, "generation": 1}, "spec": spec})
    assert isinstance(obj, GatewayClass)
    return obj


def gateway_with(parameters: dict[str, str] | None, name: str = "gw",
                 class_name: str = "tulle") -> Gateway:
    spec: dict[str, Any] = {
        "gatewayClassName": class_name,
        "listeners": [listener("http", 80, allowed=ALL), listener("pg", 5432, "TCP", allowed=ALL)],
    }
    if parameters is not None:
        spec["infrastructure"] = {"parametersRef": parameters}
    obj = from_dict({"apiVersion": GW, "kind": "Gateway",
                     "metadata": {"name": name, "namespace": INFRA,
                                  "generation": 1},
                     "spec": spec})
    assert isinstance(obj, Gateway)
    return obj


def tcp_route(gw: str = "gw") -> Resource:
    return from_dict({
        "apiVersion": GW, "kind": "TCPRoute",
        "metadata": {"name": "t", "namespace": "default", "creationTimestamp": T0},
        "spec": {"parentRefs": [gw_ref(gw, sectionName="pg")],
                 "rules": [{"backendRefs": [{"name": "web", "port": 8080}]}]},
    })


def _conditions(status: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in status["conditions"]}


def _status(*objects: Resource) -> StatusReport:
    return compute_status(inputs(*objects), NOW)


@pytest.mark.parametrize("ref", [
    {"group": "", "kind": "ConfigMap", "name": "cfg", "namespace": "infra"},  # core kind
    {"group": "example.com", "kind": "TulleConfig", "name": "c"},  # unknown group and kind
    {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw", "namespace": INFRA},
], ids=["configmap", "unknown-kind", "not-a-parameters-kind"])
def test_a_class_with_any_parameters_ref_is_not_accepted(ref: dict[str, str]) -> None:
    report = _status(tulle_class(parameters=ref), gateway_with(None))
    status, reason, message = _conditions(report.gateway_classes["tulle"])["Accepted"]
    assert (status, reason) == ("False", "InvalidParameters")
    assert ref["kind"] in message and ref["name"] in message and "Tulle reads no" in message


def test_a_class_without_parameters_is_accepted() -> None:
    report = _status(tulle_class(), gateway_with(None))
    assert _conditions(report.gateway_classes["tulle"])["Accepted"][:2] == ("True", "Accepted")
    assert _conditions(report.gateways[f"{INFRA}/gw"])["Accepted"][:2] == ("True", "Accepted")


def test_a_gateway_with_infrastructure_parameters_is_refused_and_not_served() -> None:
    objects = (tulle_class(), gateway_with(CONFIG_MAP), route(parents=[gw_ref()]), tcp_route())
    report = _status(*objects)
    gw = report.gateways[f"{INFRA}/gw"]
    conditions = _conditions(gw)
    status, reason, message = conditions["Accepted"]
    assert (status, reason) == ("False", "InvalidParameters")
    assert f"ConfigMap {INFRA}/cfg" in message
    assert conditions["Programmed"][:2] == ("False", "Invalid")
    for entry in gw["listeners"]:  # nothing is served, and no route counts as attached
        programmed = next(c for c in entry["conditions"] if c["type"] == "Programmed")
        assert programmed["status"] == "False" and entry["attachedRoutes"] == 0
    # The class itself stays Accepted: only the Gateway named the parameters.
    assert _conditions(report.gateway_classes["tulle"])["Accepted"][0] == "True"
    for routes in (report.routes, report.tcp_routes):
        (parent,) = next(iter(routes.values()))["parents"]
        accepted = next(c for c in parent["conditions"] if c["type"] == "Accepted")
        assert (accepted["status"], accepted["reason"]) == ("False", "NoMatchingParent")
        assert "is not accepted: infrastructure.parametersRef" in accepted["message"]
    # The waypoint's tables and the kernel's TCP listeners agree with the status.
    tables = RouteCompiler().compile(inputs(*objects))
    assert tables.listeners == () and not tables.gateways
    assert isinstance(select(tables), NoRoute)
    assert served_l4_listeners(analyze(inputs(*objects)).l4_routes) == []


def test_a_gateway_of_a_class_with_invalid_parameters_is_refused_with_the_class_named() -> None:
    objects = (tulle_class(parameters=CONFIG_MAP), gateway_with(None), route())
    report = _status(*objects)
    status, reason, message = _conditions(report.gateways[f"{INFRA}/gw"])["Accepted"]
    assert (status, reason) == ("False", "InvalidParameters")
    assert message.startswith("GatewayClass tulle: ")
    assert not RouteCompiler().compile(inputs(*objects)).gateways


def test_other_gateways_and_classes_are_unaffected() -> None:
    good_class, bad_class = tulle_class("tulle"), tulle_class("odd", CONFIG_MAP)
    objects = (good_class, bad_class, gateway_with(None), gateway_with(None, "other", "odd"),
               gateway_with(CONFIG_MAP, "third"), route(parents=[gw_ref()]))
    report = _status(*objects)
    assert _conditions(report.gateways[f"{INFRA}/gw"])["Accepted"][0] == "True"
    assert _conditions(report.gateways[f"{INFRA}/other"])["Accepted"][1] == "InvalidParameters"
    assert _conditions(report.gateways[f"{INFRA}/third"])["Accepted"][1] == "InvalidParameters"
    served = {(p.namespace, p.name) for p in RouteCompiler().compile(inputs(*objects)).gateways}
    assert served == {(INFRA, "gw")}
    assert isinstance(select(RouteCompiler().compile(inputs(*objects))), Selection)


def test_a_gateway_of_another_controller_is_left_alone() -> None:
    foreign = from_dict({"apiVersion": GW, "kind": "GatewayClass", "metadata": {"name": "x"},
                         "spec": {"controllerName": "example.com/other",
                                  "parametersRef": CONFIG_MAP}})
    report = _status(tulle_class(), foreign, gateway_with(CONFIG_MAP, "theirs", "x"))
    assert "x" not in report.gateway_classes and f"{INFRA}/theirs" not in report.gateways


def test_removing_the_reference_accepts_the_gateway_again() -> None:
    refused = _status(tulle_class(), gateway_with(CONFIG_MAP))
    assert _conditions(refused.gateways[f"{INFRA}/gw"])["Accepted"][0] == "False"
    accepted = _status(tulle_class(), gateway_with(None))
    assert _conditions(accepted.gateways[f"{INFRA}/gw"])["Accepted"][:2] == ("True", "Accepted")
