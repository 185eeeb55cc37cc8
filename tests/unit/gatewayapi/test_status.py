"""Status conditions of HTTPRoutes, Gateways (with listeners) and GatewayClasses.

Spec: RouteConditionType/RouteConditionReason (Accepted, ResolvedRefs, PartiallyInvalid),
RouteParentStatus, GatewayConditionType (Accepted, Programmed), ListenerConditionType
(Accepted, Programmed, ResolvedRefs, Conflicted) and ListenerStatus.attachedRoutes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agent.model.convert import from_dict
from agent.model.resource import Resource
from gatewayapi import CONTROLLER_NAME, StatusReport, compute_status
from tests.unit.gatewayapi.helpers import (
    INFRA,
    backend,
    gateway,
    gateway_class,
    grant,
    gw_ref,
    inputs,
    listener,
    route,
    service,
    svc_ref,
    tls_secret,
)

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
LATER = datetime(2024, 6, 2, 12, 0, tzinfo=UTC)
ALL = {"namespaces": {"from": "All"}}


def _status(*objects: Resource, now: datetime = NOW) -> StatusReport:
    return compute_status(inputs(*objects), now)


def _conditions(entry: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in entry["conditions"]}


def _parent(report: StatusReport, key: str = "default/r", index: int = 0) -> dict[str, Any]:
    return report.routes[key]["parents"][index]


def _redirect_and_rewrite_rule() -> dict[str, Any]:
    """A rule whose rule-level URLRewrite cannot run with its backend's redirect."""
    return {
        "filters": [{"type": "URLRewrite", "urlRewrite": {"hostname": "a.example.com"}}],
        "backendRefs": [
            backend(
                "web", filters=[{"type": "RequestRedirect", "requestRedirect": {"scheme": "https"}}]
            )
        ],
    }


OK = {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}

# (objects besides the default world, expected conditions of route default/r's first parent)
ROUTE_CASES: list[tuple[str, tuple[Resource, ...], dict[str, tuple[str, str]]]] = [
    ("accepted", (route("r"),), OK),
    (
        "no listener by that name",
        (route("r", parents=[gw_ref(sectionName="nope")]),),
        {**OK, "Accepted": ("False", "NoMatchingParent")},
    ),
    (
        "no listener on that port",
        (route("r", parents=[gw_ref(port=8080)]),),
        {**OK, "Accepted": ("False", "NoMatchingParent")},
    ),
    (
        "namespace not allowed",
        (gateway(listeners=[listener()]), route("r")),
        {**OK, "Accepted": ("False", "NotAllowedByListeners")},
    ),
    (
        "kind not allowed",
        (
            gateway(listeners=[listener(allowed={**ALL, "kinds": [{"kind": "GRPCRoute"}]})]),
            route("r"),
        ),
        {**OK, "Accepted": ("False", "NotAllowedByListeners")},
    ),
    (
        "no hostname intersection",
        (
            gateway(listeners=[listener(hostname="foo.example.com", allowed=ALL)]),
            route("r", hostnames=("bar.example.com",)),
        ),
        {**OK, "Accepted": ("False", "NoMatchingListenerHostname")},
    ),
    (
        "missing Service parent",
        (route("r", parents=[svc_ref("nope")]),),
        {**OK, "Accepted": ("False", "NoMatchingParent")},
    ),
    (
        "Service parent",
        (route("r", parents=[svc_ref("web")]),),
        OK,
    ),
    (
        "every rule dropped",
        (route("r", rules=[_redirect_and_rewrite_rule()]),),
        {**OK, "Accepted": ("False", "IncompatibleFilters")},
    ),
    (
        "one rule of two dropped",
        (route("r", rules=[_redirect_and_rewrite_rule(), {"backendRefs": [backend("web")]}]),),
        {**OK, "PartiallyInvalid": ("True", "UnsupportedValue")},
    ),
    (
        "backtracking-prone regex is accepted: RE2 matches it in linear time",
        (
            route(
                "r",
                rules=[
                    {
                        "matches": [{"path": {"type": "RegularExpression", "value": "/(a+)+"}}],
                        "backendRefs": [backend("web")],
                    }
                ],
            ),
        ),
        OK,
    ),
    (
        "missing backend",
        (route("r", rules=[{"backendRefs": [backend("nope")]}]),),
        {**OK, "ResolvedRefs": ("False", "BackendNotFound")},
    ),
    (
        "backend port missing",
        (route("r", rules=[{"backendRefs": [backend("web", port=1)]}]),),
        {**OK, "ResolvedRefs": ("False", "BackendNotFound")},
    ),
    (
        "ExternalName backend: implementation-specific, Tulle refuses it",
        (
            from_dict(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": "ext", "namespace": "default"},
                    "spec": {"type": "ExternalName", "externalName": "api.example.com",
                             "ports": [{"port": 8080, "name": "p8080"}]},
                }
            ),
            route("r", rules=[{"backendRefs": [backend("ext")]}]),
        ),
        {**OK, "ResolvedRefs": ("False", "UnsupportedValue")},
    ),
    (
        "cross-namespace backend without grant",
        (
            service("api", namespace="other"),
            route("r", rules=[{"backendRefs": [backend("api", namespace="other")]}]),
        ),
        {**OK, "ResolvedRefs": ("False", "RefNotPermitted")},
    ),
    (
        "cross-namespace backend with grant",
        (
            service("api", namespace="other"),
            grant("other", "default"),
            route("r", rules=[{"backendRefs": [backend("api", namespace="other")]}]),
        ),
        OK,
    ),
    (
        "unsupported backend kind",
        (
            route(
                "r",
                rules=[{"backendRefs": [{"name": "x", "kind": "Bucket", "group": "example.com"}]}],
            ),
        ),
        {**OK, "ResolvedRefs": ("False", "InvalidKind")},
    ),
    (
        "extension filter",
        (
            route(
                "r",
                rules=[
                    {
                        "filters": [
                            {
                                "type": "ExtensionRef",
                                "extensionRef": {"group": "x.io", "kind": "K", "name": "n"},
                            }
                        ],
                        "backendRefs": [backend("web")],
                    }
                ],
            ),
        ),
        {**OK, "ResolvedRefs": ("False", "InvalidKind")},
    ),
    (
        "missing mirror backend",
        (
            route(
                "r",
                rules=[
                    {
                        "filters": [
                            {
                                "type": "RequestMirror",
                                "requestMirror": {"backendRef": {"name": "gone", "port": 80}},
                            }
                        ],
                        "backendRefs": [backend("web")],
                    }
                ],
            ),
        ),
        {**OK, "ResolvedRefs": ("False", "BackendNotFound")},
    ),
]


@pytest.mark.parametrize(
    ("case", "objects", "expected"), ROUTE_CASES, ids=[c[0] for c in ROUTE_CASES]
)
def test_route_conditions(
    case: str, objects: tuple[Resource, ...], expected: dict[str, tuple[str, str]]
) -> None:
    parent = _parent(_status(*objects))
    assert _conditions(parent) == expected
    assert parent["controllerName"] == CONTROLLER_NAME
    assert all(c["observedGeneration"] == 1 for c in parent["conditions"])
    assert all(c["lastTransitionTime"] == "2024-06-01T12:00:00Z" for c in parent["conditions"])


def test_partially_invalid_message_names_the_dropped_rule() -> None:
    report = _status(
        route("r", rules=[{"backendRefs": [backend("web")]}, _redirect_and_rewrite_rule()])
    )
    partial = next(c for c in _parent(report)["conditions"] if c["type"] == "PartiallyInvalid")
    assert partial["message"].startswith("Dropped Rule(s) 1: ")


def test_route_parents_without_tulle_are_not_reported() -> None:
    # RouteParentStatus: an implementation only populates status for parents it is
    # responsible for; a missing Gateway or another controller's Gateway is not ours.
    report = _status(
        gateway_class(),
        gateway_class("other", controller="example.com/other"),
        gateway("theirs", class_name="other"),
        gateway(),
        route(
            "r",
            parents=[
                gw_ref("theirs"),
                gw_ref("missing"),
                gw_ref(),
                {"name": "m", "kind": "Mesh", "group": "x.io"},
            ],
        ),
    )
    parents = report.routes["default/r"]["parents"]
    assert [p["parentRef"] for p in parents] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw", "namespace": INFRA}
    ]


def test_transition_times_are_kept_and_foreign_parents_preserved() -> None:
    first = _status(route("r"))
    foreign = {
        "parentRef": {"name": "x", "namespace": "y"},
        "controllerName": "example.com/other",
        "conditions": [
            {
                "type": "Accepted",
                "status": "True",
                "reason": "Accepted",
                "message": "",
                "lastTransitionTime": "2023-01-01T00:00:00Z",
            }
        ],
    }
    written = {"parents": [*first.routes["default/r"]["parents"], foreign]}
    again = _status(route("r", status=written), now=LATER)
    assert again.routes["default/r"] == {
        "parents": [
            first.routes["default/r"]["parents"][0],
            {
                **foreign,
                "parentRef": {
                    "group": "gateway.networking.k8s.io",
                    "kind": "Gateway",
                    "name": "x",
                    "namespace": "y",
                },
            },
        ]
    }
    # A changed status gets a new transition time.
    broken = _status(
        route("r", rules=[{"backendRefs": [backend("nope")]}], status=written), now=LATER
    )
    times = {c["type"]: c["lastTransitionTime"] for c in _parent(broken)["conditions"]}
    assert times == {"Accepted": "2024-06-01T12:00:00Z", "ResolvedRefs": "2024-06-02T12:00:00Z"}


# --- Gateways and listeners ---------------------------------------------------------------

LISTENER_OK = {
    "Accepted": ("True", "Accepted"),
    "Programmed": ("True", "Programmed"),
    "ResolvedRefs": ("True", "ResolvedRefs"),
    "Conflicted": ("False", "NoConflicts"),
}
NOT_PROGRAMMED = {"Programmed": ("False", "Invalid")}


def _https(cert: dict[str, Any], name: str = "https") -> dict[str, Any]:
    return listener(name, 443, "HTTPS", allowed=ALL, tls={"certificateRefs": [cert]})


LISTENER_CASES: list[
    tuple[str, dict[str, Any], tuple[Resource, ...], dict[str, tuple[str, str]]]
] = [
    ("http", listener(allowed=ALL), (), LISTENER_OK),
    ("tcp", listener("tcp", 9000, "TCP", allowed=ALL), (), LISTENER_OK),
    ("udp", listener("udp", 9000, "UDP", allowed=ALL), (), LISTENER_OK),
    (
        "tls",
        {**listener("tls", 9000, "TLS", allowed=ALL), "tls": {"mode": "Passthrough"}},
        (),
        LISTENER_OK,
    ),
    (
        "route kinds",
        listener(allowed={**ALL, "kinds": [{"kind": "HTTPRoute"}, {"kind": "TCPRoute"}]}),
        (),
        {**LISTENER_OK, "ResolvedRefs": ("False", "InvalidRouteKinds")},
    ),
    ("https", _https({"name": "cert"}), (tls_secret("cert"),), LISTENER_OK),
    (
        "https missing secret",
        _https({"name": "cert"}),
        (),
        {**LISTENER_OK, **NOT_PROGRAMMED, "ResolvedRefs": ("False", "InvalidCertificateRef")},
    ),
    (
        "https malformed secret",
        _https({"name": "cert"}),
        (tls_secret("cert", valid=False),),
        {**LISTENER_OK, **NOT_PROGRAMMED, "ResolvedRefs": ("False", "InvalidCertificateRef")},
    ),
    (
        "https secret elsewhere",
        _https({"name": "cert", "namespace": "certs"}),
        (tls_secret("cert", namespace="certs"),),
        {**LISTENER_OK, **NOT_PROGRAMMED, "ResolvedRefs": ("False", "RefNotPermitted")},
    ),
    (
        "https secret elsewhere with grant",
        _https({"name": "cert", "namespace": "certs"}),
        (
            tls_secret("cert", namespace="certs"),
            grant("certs", INFRA, from_kind="Gateway", to_kind="Secret"),
        ),
        LISTENER_OK,
    ),
]


@pytest.mark.parametrize(
    ("case", "spec", "objects", "expected"), LISTENER_CASES, ids=[c[0] for c in LISTENER_CASES]
)
def test_listener_conditions(
    case: str,
    spec: dict[str, Any],
    objects: tuple[Resource, ...],
    expected: dict[str, tuple[str, str]],
) -> None:
    status = _status(gateway(listeners=[spec]), *objects).gateways[f"{INFRA}/gw"]
    assert _conditions(status["listeners"][0]) == expected
    supported = status["listeners"][0]["supportedKinds"]
    http = expected["Accepted"][0] == "True"
    both = [
        {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"},
        {"group": "gateway.networking.k8s.io", "kind": "GRPCRoute"},
    ]
    if case == "route kinds":  # only what the listener asked for and Tulle serves
        assert supported == both[:1]
    elif case in ("tcp", "udp", "tls"):  # each of these protocols serves its own route kind
        assert supported == [{"group": "gateway.networking.k8s.io", "kind": f"{case.upper()}Route"}]
    else:
        assert supported == (both if http else [])


def test_protocol_conflict_on_one_port() -> None:
    gw = gateway(
        listeners=[listener("a", 8000, allowed=ALL), _https({"name": "c"}, "b") | {"port": 8000}]
    )
    status = _status(gw, tls_secret("c")).gateways[f"{INFRA}/gw"]
    for entry in status["listeners"]:
        assert _conditions(entry)["Conflicted"] == ("True", "ProtocolConflict")
        assert _conditions(entry)["Accepted"] == ("False", "ProtocolConflict")
    assert _conditions(status) == {
        "Accepted": ("False", "ListenersNotValid"),
        "Programmed": ("False", "Invalid"),
    }


GATEWAY_CASES: list[tuple[str, Any, dict[str, tuple[str, str]]]] = [
    ("valid", gateway(), {"Accepted": ("True", "Accepted"), "Programmed": ("True", "Programmed")}),
    (
        "one invalid listener",
        gateway(listeners=[listener(allowed=ALL), _https({"name": "missing"})]),
        {"Accepted": ("True", "ListenersNotValid"), "Programmed": ("True", "Programmed")},
    ),
    (
        "no valid listener",
        gateway(listeners=[listener("a", 8000, allowed=ALL), _https({"name": "c"}, "b") | {"port": 8000}]),
        {"Accepted": ("False", "ListenersNotValid"), "Programmed": ("False", "Invalid")},
    ),
    (
        "hostname address",
        gateway(addresses=[{"type": "Hostname", "value": "gw.example.com"}]),
        {"Accepted": ("False", "UnsupportedAddress"), "Programmed": ("False", "Invalid")},
    ),
]


@pytest.mark.parametrize(
    ("case", "gw", "expected"), GATEWAY_CASES, ids=[c[0] for c in GATEWAY_CASES]
)
def test_gateway_conditions(case: str, gw: Any, expected: dict[str, tuple[str, str]]) -> None:
    assert _conditions(_status(gw).gateways[f"{INFRA}/gw"]) == expected


def test_attached_routes_count_accepted_routes_per_listener() -> None:
    # ListenerStatus.attachedRoutes: routes with Accepted=True attached to the listener.
    gw = gateway(listeners=[listener("a", 80, allowed=ALL), listener("b", 8080, allowed=ALL)])
    report = _status(
        gw,
        route("both"),
        route("only-a", parents=[gw_ref(sectionName="a")]),
        route("dropped", rules=[_redirect_and_rewrite_rule()]),
        route("nowhere", parents=[gw_ref(sectionName="c")]),
        route("twice", parents=[gw_ref(sectionName="a"), gw_ref(sectionName="b")]),
    )
    counts = {
        ls["name"]: ls["attachedRoutes"] for ls in report.gateways[f"{INFRA}/gw"]["listeners"]
    }
    assert counts == {"a": 3, "b": 2}


def test_gateway_class_and_foreign_objects() -> None:
    report = _status(
        gateway_class(),
        gateway_class("other", controller="example.com/x"),
        gateway(),
        gateway("theirs", class_name="other"),
    )
    assert set(report.gateway_classes) == {"tulle"}
    assert _conditions(report.gateway_classes["tulle"]) == {"Accepted": ("True", "Accepted")}
    assert set(report.gateways) == {f"{INFRA}/gw"}


def test_status_is_stable_for_unchanged_inputs() -> None:
    objects = (route("r"), route("s", rules=[{"backendRefs": [backend("nope")]}]))
    assert _status(*objects) == _status(*reversed(objects))
