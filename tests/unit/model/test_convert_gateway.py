"""Converter tests for GatewayClass, Gateway and ReferenceGrant."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agent.model.convert import from_dict, to_dict
from agent.model.gateway import (
    GATEWAY_GROUP,
    FromNamespaces,
    Gateway,
    GatewayClass,
    ListenerProtocol,
    ReferenceGrant,
    RouteGroupKind,
    SecretObjectReference,
    TLSMode,
)
from agent.model.meta import ConditionStatus
from tests.unit.model.helpers import DELETE, edit, error_of, round_trip

GATEWAY_CLASS: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "GatewayClass",
    "metadata": {"name": "tulle"},
    "spec": {"controllerName": "tulle.dev/gateway-controller", "description": "Tulle waypoints"},
    "status": {
        "conditions": [
            {
                "type": "Accepted",
                "status": "True",
                "reason": "Accepted",
                "message": "",
                "lastTransitionTime": "2024-05-01T00:00:00Z",
                "observedGeneration": 1,
            }
        ]
    },
}

GATEWAY: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "Gateway",
    "metadata": {"name": "edge", "namespace": "infra"},
    "spec": {
        "gatewayClassName": "tulle",
        "listeners": [
            {"name": "http", "port": 80, "protocol": "HTTP"},
            {
                "name": "https",
                "port": 443,
                "protocol": "HTTPS",
                "hostname": "*.example.com",
                "tls": {"certificateRefs": [{"name": "gw-cert"}]},
                "allowedRoutes": {
                    "namespaces": {
                        "from": "Selector",
                        "selector": {"matchLabels": {"expose": "true"}},
                    },
                    "kinds": [{"kind": "HTTPRoute"}],
                },
            },
            {
                "name": "tls",
                "port": 8443,
                "protocol": "TLS",
                "tls": {"mode": "Passthrough"},
                "allowedRoutes": {"namespaces": {"from": "All"}},
            },
            {"name": "tcp", "port": 5432, "protocol": "TCP"},
        ],
        "addresses": [{"value": "10.0.0.10"}, {"type": "Hostname", "value": "gw.example.com"}],
    },
    "status": {
        "addresses": [{"type": "IPAddress", "value": "10.0.0.10"}],
        "conditions": [{"type": "Programmed", "status": "False", "reason": "Pending"}],
        "listeners": [
            {
                "name": "http",
                "attachedRoutes": 0,
                "supportedKinds": [{"group": GATEWAY_GROUP, "kind": "HTTPRoute"}],
                "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted"}],
            }
        ],
    },
}

REFERENCE_GRANT: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1beta1",
    "kind": "ReferenceGrant",
    "metadata": {"name": "allow-routes", "namespace": "shop"},
    "spec": {
        "from": [{"group": GATEWAY_GROUP, "kind": "HTTPRoute", "namespace": "infra"}],
        "to": [{"group": "", "kind": "Service"}, {"group": "", "kind": "Secret", "name": "c"}],
    },
}


def test_gateway_class_round_trips_with_status() -> None:
    gc = round_trip(GATEWAY_CLASS)
    assert isinstance(gc, GatewayClass)
    assert gc.metadata.namespace == ""
    assert gc.spec.controller_name == "tulle.dev/gateway-controller"
    assert gc.status is not None
    accepted = gc.status.conditions[0]
    assert accepted.status is ConditionStatus.TRUE
    assert accepted.observed_generation == 1
    assert accepted.last_transition_time == datetime(2024, 5, 1, tzinfo=UTC)


def test_v1beta1_is_accepted_and_written_as_v1() -> None:
    gc = from_dict(edit(GATEWAY_CLASS, "apiVersion", "gateway.networking.k8s.io/v1beta1"))
    assert gc == from_dict(GATEWAY_CLASS)
    assert to_dict(gc)["apiVersion"] == "gateway.networking.k8s.io/v1"


def test_gateway_reads_listeners_with_defaults() -> None:
    gw = round_trip(GATEWAY)
    assert isinstance(gw, Gateway)
    http, https, tls, tcp = gw.spec.listeners
    assert (http.protocol, http.tls, http.hostname) == (ListenerProtocol.HTTP, None, None)
    assert http.allowed_routes.namespaces.from_ is FromNamespaces.SAME
    assert http.allowed_routes.kinds == ()
    assert https.tls is not None
    assert https.tls.mode is TLSMode.TERMINATE
    assert https.tls.certificate_refs == (SecretObjectReference(name="gw-cert"),)
    assert (
        https.tls.certificate_refs[0].group == "" and https.tls.certificate_refs[0].kind == "Secret"
    )
    assert https.allowed_routes.namespaces.from_ is FromNamespaces.SELECTOR
    assert https.allowed_routes.namespaces.selector is not None
    assert https.allowed_routes.kinds == (RouteGroupKind(kind="HTTPRoute", group=GATEWAY_GROUP),)
    assert tls.tls is not None and tls.tls.mode is TLSMode.PASSTHROUGH
    assert tls.allowed_routes.namespaces.from_ is FromNamespaces.ALL
    assert tcp.protocol is ListenerProtocol.TCP
    assert [(a.type, a.value) for a in gw.spec.addresses] == [
        ("IPAddress", "10.0.0.10"),
        ("Hostname", "gw.example.com"),
    ]
    assert gw.status is not None
    assert gw.status.listeners[0].attached_routes == 0
    written = to_dict(gw)
    assert written["status"]["listeners"][0]["attachedRoutes"] == 0
    assert written["spec"]["listeners"][0]["allowedRoutes"] == {"namespaces": {"from": "Same"}}


def test_reference_grant_keeps_core_group_as_empty_string() -> None:
    grant = round_trip(REFERENCE_GRANT)
    assert isinstance(grant, ReferenceGrant)
    assert grant.spec.from_[0].namespace == "infra"
    service, secret = grant.spec.to
    assert (service.group, service.kind, service.name) == ("", "Service", None)
    assert secret.name == "c"
    written = to_dict(grant)
    assert written["apiVersion"] == "gateway.networking.k8s.io/v1beta1"
    assert written["spec"]["to"][0] == {"group": "", "kind": "Service"}


GW = "Gateway infra/edge"
GC = "GatewayClass tulle"
RG = "ReferenceGrant shop/allow-routes"

ERRORS = [
    (edit(GATEWAY_CLASS, "spec.controllerName", DELETE), f"{GC}: spec.controllerName: required"),
    (
        edit(GATEWAY_CLASS, "spec.controllerName", "tulle"),
        f'{GC}: spec.controllerName: invalid value "tulle": must be a domain-prefixed path, '
        "such as example.net/gateway",
    ),
    (
        edit(GATEWAY_CLASS, "status.conditions[0].status", "true"),
        f'{GC}: status.conditions[0].status: unsupported value "true" '
        "(supported: True, False, Unknown)",
    ),
    (
        edit(GATEWAY_CLASS, "apiVersion", "gateway.networking.k8s.io/v1alpha1"),
        f'{GC}: apiVersion: unsupported apiVersion "gateway.networking.k8s.io/v1alpha1" for '
        "kind GatewayClass (supported: gateway.networking.k8s.io/v1, "
        "gateway.networking.k8s.io/v1beta1)",
    ),
    (edit(GATEWAY, "spec.listeners", []), f"{GW}: spec.listeners: must have at least 1 item"),
    (edit(GATEWAY, "spec.gatewayClassName", DELETE), f"{GW}: spec.gatewayClassName: required"),
    (
        edit(GATEWAY, "spec.listeners[3].name", "http"),
        f'{GW}: spec.listeners[3].name: duplicate value "http"',
    ),
    (
        edit(GATEWAY, "spec.listeners[3]", {"name": "http2", "port": 80, "protocol": "HTTP"}),
        f"{GW}: spec.listeners[3]: port, protocol and hostname duplicate listeners[0]",
    ),
    (
        edit(GATEWAY, "spec.listeners[0].protocol", "GRPC"),
        f'{GW}: spec.listeners[0].protocol: unsupported value "GRPC" '
        "(supported: HTTP, HTTPS, TLS, TCP, UDP)",
    ),
    (
        edit(GATEWAY, "spec.listeners[0].port", 0),
        f"{GW}: spec.listeners[0].port: must be between 1 and 65535, got 0",
    ),
    (
        edit(GATEWAY, "spec.listeners[0].tls", {"mode": "Passthrough"}),
        f"{GW}: spec.listeners[0].tls: must not be specified for protocol HTTP",
    ),
    (
        edit(GATEWAY, "spec.listeners[1].tls", DELETE),
        f"{GW}: spec.listeners[1].tls: required for protocol HTTPS",
    ),
    (
        edit(GATEWAY, "spec.listeners[1].tls.mode", "Passthrough"),
        f"{GW}: spec.listeners[1].tls.mode: must be Terminate for protocol HTTPS",
    ),
    (
        edit(GATEWAY, "spec.listeners[1].tls.certificateRefs", []),
        f"{GW}: spec.listeners[1].tls.certificateRefs: at least one is required when mode is "
        "Terminate",
    ),
    (
        edit(GATEWAY, "spec.listeners[3].hostname", "db.example.com"),
        f"{GW}: spec.listeners[3].hostname: must not be specified for protocol TCP",
    ),
    (
        edit(GATEWAY, "spec.listeners[1].hostname", "foo.*.example.com"),
        f'{GW}: spec.listeners[1].hostname: invalid value "foo.*.example.com": must be a '
        "lowercase RFC 1123 hostname, optionally prefixed by '*.'",
    ),
    (
        edit(GATEWAY, "spec.listeners[1].hostname", "10.0.0.1"),
        f'{GW}: spec.listeners[1].hostname: invalid value "10.0.0.1": must be a hostname, '
        "not an IP address",
    ),
    (
        edit(GATEWAY, "spec.listeners[1].allowedRoutes.namespaces.selector", DELETE),
        f"{GW}: spec.listeners[1].allowedRoutes.namespaces.selector: required when from is "
        "Selector",
    ),
    (
        edit(GATEWAY, "spec.listeners[1].allowedRoutes.kinds[0].kind", DELETE),
        f"{GW}: spec.listeners[1].allowedRoutes.kinds[0].kind: required",
    ),
    (
        edit(GATEWAY, "spec.addresses[0].value", "10.0.0"),
        f'{GW}: spec.addresses[0].value: invalid value "10.0.0": must be a valid IP address',
    ),
    (
        edit(GATEWAY, "spec.addresses[1].type", "Dns"),
        f'{GW}: spec.addresses[1].type: unsupported value "Dns" (supported: IPAddress, '
        "Hostname, NamedAddress, or a domain-prefixed type)",
    ),
    (
        edit(GATEWAY, "status.listeners[0].attachedRoutes", DELETE),
        f"{GW}: status.listeners[0].attachedRoutes: required",
    ),
    (
        edit(GATEWAY, "status.conditions[0].type", "not a type"),
        f'{GW}: status.conditions[0].type: invalid value "not a type": must be a condition '
        "type such as 'Accepted'",
    ),
    (
        edit(REFERENCE_GRANT, "spec.from[0].group", DELETE),
        f"{RG}: spec.from[0].group: required",
    ),
    (edit(REFERENCE_GRANT, "spec.to", []), f"{RG}: spec.to: must have at least 1 item"),
    (
        edit(REFERENCE_GRANT, "spec.from[0].namespace", "Infra"),
        f'{RG}: spec.from[0].namespace: invalid value "Infra": must be a lowercase RFC 1123 '
        "label (lowercase alphanumerics or '-', starting and ending with an alphanumeric)",
    ),
]


@pytest.mark.parametrize(("doc", "message"), ERRORS, ids=[m for _, m in ERRORS])
def test_invalid_objects_name_object_and_field(doc: dict[str, Any], message: str) -> None:
    assert error_of(doc) == message


def test_a_spec_address_without_a_value_asks_for_any_of_its_type() -> None:
    """GatewaySpecAddress.value is optional (GatewayAddressEmpty); status addresses still
    need one, and a value given is still checked."""
    obj = edit(GATEWAY, "spec.addresses", [{"type": "IPAddress"},
                                           {"type": "IPAddress", "value": ""},
                                           {"value": "10.0.0.10"}])
    gw = from_dict(obj)
    assert [(a.type, a.value) for a in gw.spec.addresses] == [
        ("IPAddress", ""), ("IPAddress", ""), ("IPAddress", "10.0.0.10")]
    assert error_of(edit(obj, "status.addresses", [{"type": "IPAddress"}])).endswith(
        "status.addresses[0].value: required")
