"""A Gateway's ``spec.infrastructure`` (GEP-1762): read, written back, and refused by field
with upstream's CRD limits and CEL messages."""

from __future__ import annotations

from typing import Any

import pytest

from agent.model.convert import to_dict
from agent.model.gateway import (
    Gateway,
    GatewayClass,
    LocalParametersReference,
    ParametersReference,
)
from tests.unit.model.helpers import edit, error_of, round_trip

GATEWAY: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "Gateway",
    "metadata": {"name": "edge", "namespace": "infra"},
    "spec": {
        "gatewayClassName": "tulle",
        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
        "infrastructure": {
            "labels": {"key2": "value2", "example.com/team": ""},
            "annotations": {"key1": "value1", "example.com/note": "a long note " * 10},
            "parametersRef": {"group": "example.com", "kind": "GatewayConfig", "name": "big"},
        },
    },
}
GW = "Gateway infra/edge: spec.infrastructure"
LABEL_KEY = ("Label keys must be in the form of an optional DNS subdomain prefix followed by a "
             "required name segment of up to 63 characters.")
ANNOTATION_KEY = LABEL_KEY.replace("Label", "Annotation")


def test_infrastructure_is_read_and_written_back() -> None:
    gateway = round_trip(GATEWAY)
    assert isinstance(gateway, Gateway) and gateway.spec.infrastructure is not None
    infra = gateway.spec.infrastructure
    assert dict(infra.labels) == {"key2": "value2", "example.com/team": ""}
    assert infra.annotations["key1"] == "value1"
    assert infra.parameters_ref == LocalParametersReference("example.com", "GatewayConfig", "big")
    assert to_dict(gateway)["spec"]["infrastructure"] == GATEWAY["spec"]["infrastructure"]


def test_a_gateway_without_infrastructure_has_none() -> None:
    bare = edit(GATEWAY, "spec", {k: v for k, v in GATEWAY["spec"].items()
                                  if k != "infrastructure"})
    gateway = round_trip(bare)
    assert isinstance(gateway, Gateway) and gateway.spec.infrastructure is None


def _labels(n: int) -> dict[str, str]:
    return {f"k{i}": "v" for i in range(n)}


REFUSED = [
    ("labels", {"-bad": "v"}, f"{GW}.labels[-bad]: {LABEL_KEY}"),
    ("labels", {"Example.com/a": "v"}, f"{GW}.labels[Example.com/a]: {LABEL_KEY}"),
    ("labels", {"a/b/c": "v"}, f"{GW}.labels[a/b/c]: {LABEL_KEY}"),
    ("labels", {"x" * 64: "v"}, f"{GW}.labels[{'x' * 64}]: {LABEL_KEY}"),
    ("labels", {"a." * 126 + "b/c": "v"},
     f"{GW}.labels[{'a.' * 126}b/c]: If specified, the label key's prefix must be a DNS "
     "subdomain not longer than 253 characters in total."),
    ("annotations", {"bad key": "v"}, f"{GW}.annotations[bad key]: {ANNOTATION_KEY}"),
    ("labels", {"a": "not a value"},
     f'{GW}.labels[a]: invalid value "not a value": a label value must be empty or at most 63 '
     "alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"),
    ("annotations", {"a": "x" * 4097},
     f"{GW}.annotations[a]: may not be longer than 4096 characters"),
    ("labels", _labels(9), f"{GW}.labels: Too many: 9: must have at most 8 items"),
    ("annotations", _labels(17), f"{GW}.annotations: Too many: 17: must have at most 16 items"),
    ("parametersRef", {"kind": "GatewayConfig", "name": "big"},
     f"{GW}.parametersRef.group: required"),
    ("parametersRef", {"group": "", "kind": "GatewayConfig", "name": ""},
     f"{GW}.parametersRef.name: must be 1 to 253 characters"),
]


@pytest.mark.parametrize(("field", "value", "message"), REFUSED, ids=[m for *_, m in REFUSED])
def test_keys_values_and_sizes_upstream_refuses_are_refused(
    field: str, value: Any, message: str
) -> None:
    assert error_of(edit(GATEWAY, f"spec.infrastructure.{field}", value)) == message


def test_the_limits_themselves_are_accepted() -> None:
    at_limit = edit(GATEWAY, "spec.infrastructure", {"labels": _labels(8),
                                                     "annotations": _labels(16)})
    at_limit = edit(at_limit, "spec.infrastructure.labels.k0", "x" * 63)
    gateway = round_trip(edit(at_limit, "spec.infrastructure.annotations.k0", "x" * 4096))
    assert isinstance(gateway, Gateway) and gateway.spec.infrastructure is not None
    assert len(gateway.spec.infrastructure.labels) == 8


GATEWAY_CLASS: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "GatewayClass",
    "metadata": {"name": "tulle"},
    "spec": {
        "controllerName": "tulle.dev/gateway-controller",
        "parametersRef": {"group": "", "kind": "ConfigMap", "name": "cfg", "namespace": "infra"},
    },
}
GC = "GatewayClass tulle: spec.parametersRef"


def test_a_gateway_class_parameters_ref_is_read_and_written_back() -> None:
    gateway_class = round_trip(GATEWAY_CLASS)
    assert isinstance(gateway_class, GatewayClass)
    assert gateway_class.spec.parameters_ref == ParametersReference(
        "", "ConfigMap", "cfg", "infra")
    cluster_scoped = {"group": "example.com", "kind": "TulleConfig", "name": "c"}
    again = round_trip(edit(GATEWAY_CLASS, "spec.parametersRef", cluster_scoped))
    assert isinstance(again, GatewayClass)
    assert again.spec.parameters_ref == ParametersReference("example.com", "TulleConfig", "c")
    assert to_dict(again)["spec"]["parametersRef"] == cluster_scoped


CLASS_REFUSED = [
    ({"kind": "ConfigMap", "name": "cfg"}, f"{GC}.group: required"),
    ({"group": "", "name": "cfg"}, f"{GC}.kind: required"),
    ({"group": "", "kind": "ConfigMap", "name": ""}, f"{GC}.name: must be 1 to 253 characters"),
    ({"group": "", "kind": "ConfigMap", "name": "cfg", "namespace": "Not_A_Namespace"},
     f"{GC}.namespace"),
]


@pytest.mark.parametrize(("value", "message"), CLASS_REFUSED, ids=[m for _, m in CLASS_REFUSED])
def test_a_malformed_gateway_class_parameters_ref_is_refused_by_field(
    value: dict[str, str], message: str
) -> None:
    assert error_of(edit(GATEWAY_CLASS, "spec.parametersRef", value)).startswith(message)
