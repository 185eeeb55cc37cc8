"""GATEWAY-TLS status cases, after upstream v1.6.1's tlsroute-invalid-*.go and
tlsroute-listener-terminate-supported-kinds.go, on the Gateway of ``tls.py``: a backend
that does not exist or is of an unknown kind (ResolvedRefs False; the route stays Accepted
and its connections are refused rather than given to a wildcard route that would serve
the name), route hostnames no listener has (NoMatchingListenerHostname), a parentRef to
an HTTP or HTTPS listener (NotAllowedByListeners) or to a section the Gateway lacks
(NoMatchingParent), the Terminate listener's kinds, and the *NotSupported cases' listeners
(tlsroute-listener-terminate-not-supported.go, -mixed-termination-not-supported.go; checked
the other way round while the mode is claimed: ``mode_mismatch``). The Passthrough
listener's kinds (tlsroute-listener-passthrough-supported-kinds.go) get a Gateway of their
own, as upstream's does: its check wants the Gateway to have exactly that one listener, and a
TLS listener on 443 would conflict with the shared Gateway's HTTPS ones."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from conformance.case import Case, CaseFailed
from conformance.cases.common import GATEWAY_API, INFRA, namespace
from conformance.cases.tls import (
    CORE,
    MIXED,
    NS,
    TERMINATE,
    TLS,
    TLS_GW,
    expect_connections,
    expect_route,
    expect_tls_listeners,
    tls_route,
)
from conformance.lab import Lab, eventually

PROFILE = "GATEWAY-TLS"
NONEXISTENT = "nonexistent.example.com"
UNKNOWN_KIND = "unknown-kind.example.com"
MISMATCH = "mismatch.example.net"

ROUTES = (
    tls_route("invalid-backend-ref-nonexistent", ("wild",), NONEXISTENT, "does-not-exist"),
    tls_route("invalid-backend-ref-unknown-kind", ("wild",), UNKNOWN_KIND, "tls-backend",
              group="unknown.example.com", kind="UnknownKind"),
    tls_route("hostname-mismatch-1", ("exact",), MISMATCH, "tls-backend"),
    tls_route("hostname-mismatch-2", ("wild",), MISMATCH, "tls-backend"),
    tls_route("not-allowed-protocol-http", ("http",), "http.example.com", "tls-backend"),
    tls_route("not-allowed-protocol-https", ("https",), "https.example.com", "tls-backend"),
    tls_route("no-matching-section-name", ("does-not-exist",), "section.example.com",
              "tls-backend"),
)


def _nonexistent(lab: Lab) -> None:
    """Accepted, ResolvedRefs False BackendNotFound; a connection for its hostname is
    refused (the "*.com" route on the same listener must not take it)."""
    expect_route(lab, "invalid-backend-ref-nonexistent", {
        "Accepted": ("True", None), "ResolvedRefs": ("False", "BackendNotFound")})
    expect_connections(lab, [("wild", NONEXISTENT, None)])


def _unknown_kind(lab: Lab) -> None:
    """Accepted, ResolvedRefs False InvalidKind; its connections are refused."""
    expect_route(lab, "invalid-backend-ref-unknown-kind", {
        "Accepted": ("True", None), "ResolvedRefs": ("False", "InvalidKind")})
    expect_connections(lab, [("wild", UNKNOWN_KIND, None)])


def _no_matching_listener_hostname(lab: Lab) -> None:
    """A hostname outside an exact and a wildcard listener's: Accepted False
    NoMatchingListenerHostname on each, and no connection is served for it."""
    for name in ("hostname-mismatch-1", "hostname-mismatch-2"):
        expect_route(lab, name, {"Accepted": ("False", "NoMatchingListenerHostname")})
    expect_connections(lab, [("exact", MISMATCH, None), ("wild", MISMATCH, None)])


def _no_matching_listener(lab: Lab) -> None:
    """An HTTP and an HTTPS listener: Accepted False NotAllowedByListeners; a sectionName
    the Gateway does not have: Accepted False NoMatchingParent."""
    for name in ("not-allowed-protocol-http", "not-allowed-protocol-https"):
        expect_route(lab, name, {"Accepted": ("False", "NotAllowedByListeners")})
    expect_route(lab, "no-matching-section-name", {"Accepted": ("False", "NoMatchingParent")})


def _terminate_kinds(lab: Lab) -> None:
    """A Terminate listener is Accepted with TLSRoute in its supportedKinds."""
    expect_tls_listeners(lab, ("terminate", "mixed-terminate"), attached=None)


PASSTHROUGH_GW = "gateway-tlsroute-passthrough-supported-kind"
PASSTHROUGH_GATEWAY = {
    "apiVersion": GATEWAY_API, "kind": "Gateway",
    "metadata": {"name": PASSTHROUGH_GW, "namespace": INFRA},
    "spec": {"gatewayClassName": "tulle", "listeners": [{
        "name": "tls-passthrough", "port": 443, "protocol": "TLS",
        "allowedRoutes": {"namespaces": {"from": "Same"},
                          "kinds": [{"kind": "TCPRoute"}, {"kind": "TLSRoute"}]},
        "tls": {"mode": "Passthrough"}}]},
}
# What upstream expects of that Gateway's status.listeners (its v1.ListenerStatus).
PASSTHROUGH_LISTENERS = [{
    "name": "tls-passthrough", "attachedRoutes": 0,
    "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "TLSRoute"}],
    "conditions": [{"type": "ResolvedRefs", "status": "False", "reason": "InvalidRouteKinds"}],
}]


def listeners_mismatch(expected: Sequence[Mapping[str, Any]],
                       actual: Sequence[Mapping[str, Any]]) -> str | None:
    """Upstream's gatewayListenersMatch: as many listeners as expected, each named one with
    the expected kinds among its supportedKinds (a group left out is the Gateway API's), no
    kinds where none are expected, the expected attachedRoutes, and the expected
    conditions' type, status and reason."""
    if len(expected) != len(actual):
        return f"{len(actual)} listeners, want {len(expected)}"
    by_name = {ls.get("name"): ls for ls in actual}
    for want in expected:
        got = by_name.get(want["name"])
        if got is None:
            return f"no status for listener {want['name']}"
        kinds = {(k.get("group", "gateway.networking.k8s.io"), k.get("kind"))
                 for k in got.get("supportedKinds") or []}
        wanted = {(k.get("group", "gateway.networking.k8s.io"), k["kind"])
                  for k in want.get("supportedKinds") or []}
        if (not wanted and kinds) or not wanted <= kinds:
            return f"listener {want['name']} supportedKinds {sorted(kinds)}, want {sorted(wanted)}"
        if got.get("attachedRoutes") != want["attachedRoutes"]:
            return (f"listener {want['name']} attachedRoutes {got.get('attachedRoutes')}, "
                    f"want {want['attachedRoutes']}")
        conditions = {c.get("type"): c for c in got.get("conditions") or []}
        for c in want.get("conditions") or []:
            seen = conditions.get(c["type"]) or {}
            if (seen.get("status"), seen.get("reason")) != (c["status"], c["reason"]):
                return (f"listener {want['name']} {c['type']} {seen.get('status')} "
                        f"{seen.get('reason')}, want {c['status']} {c['reason']}")
    return None


def _passthrough_kinds(lab: Lab) -> None:
    """The Passthrough listener naming TCPRoute and TLSRoute: ResolvedRefs False
    InvalidRouteKinds, TLSRoute in its supportedKinds, no route attached; judged once the
    Gateway's conditions have its latest generation, as upstream waits."""
    def once() -> None:
        named = [g for g in lab.get("gateways", INFRA) if g["metadata"]["name"] == PASSTHROUGH_GW]
        if not named:
            raise CaseFailed(f"no Gateway {INFRA}/{PASSTHROUGH_GW}")
        status = named[0].get("status") or {}
        generation = named[0]["metadata"].get("generation")
        stale = [c["type"] for c in status.get("conditions") or []
                 if c.get("observedGeneration") != generation]
        if stale or not status.get("conditions"):
            raise CaseFailed(f"Gateway {PASSTHROUGH_GW} conditions not of generation "
                             f"{generation}: {stale or 'none'}")
        problem = listeners_mismatch(PASSTHROUGH_LISTENERS, status.get("listeners") or [])
        if problem:
            raise CaseFailed(f"{problem}: {json.dumps(status.get('listeners'))}")

    eventually(once, timeout=45)


def published_features(lab: Lab, class_name: str = "tulle") -> frozenset[str]:
    """The GatewayClass's ``status.supportedFeatures``: upstream's suite infers the
    features it runs against from there when none are given."""
    for gateway_class in lab.get_cluster("gatewayclasses"):
        if gateway_class["metadata"]["name"] == class_name:
            status = gateway_class.get("status") or {}
            return frozenset(f["name"] for f in status.get("supportedFeatures") or [])
    raise CaseFailed(f"no GatewayClass {class_name}")


def mode_mismatch(listeners: Sequence[Mapping[str, Any]], names: Sequence[str],
                  supported: bool, refusal: str) -> str | None:
    """tlsroute-listener-terminate-not-supported.go and -mixed-termination-not-supported.go:
    upstream checks only an implementation that does NOT claim the mode, whose listeners
    ``names`` must be Accepted False with ``refusal`` and no route attached; it returns at
    once for one that claims it. Tulle's check of a claimed mode is the converse on the same
    listeners, so the case can fail: Accepted True and not Conflicted."""
    by_name = {ls.get("name"): ls for ls in listeners}
    for name in names:
        ls = by_name.get(name)
        if ls is None:
            return f"no status for listener {name}"
        conditions = {c.get("type"): (c.get("status"), c.get("reason"))
                      for c in ls.get("conditions") or []}
        accepted = conditions.get("Accepted")
        if supported:
            conflicted = conditions.get("Conflicted", ("False", None))
            if accepted != ("True", "Accepted") or conflicted[0] != "False":
                return (f"listener {name} Accepted {accepted}, Conflicted "
                        f"{conflicted}: the mode is claimed, want it accepted")
        elif accepted != ("False", refusal) or ls.get("attachedRoutes") != 0:
            return (f"listener {name} Accepted {accepted}, attachedRoutes "
                    f"{ls.get('attachedRoutes')}: the mode is not claimed, want False {refusal}, 0")
    return None


def _mode_check(feature: str, names: tuple[str, ...], refusal: str) -> Callable[[Lab], None]:
    def check(lab: Lab) -> None:
        def once() -> None:
            supported = feature in published_features(lab)
            gateways = {g["metadata"]["name"]: g for g in lab.get("gateways", NS)}
            listeners = (gateways.get(TLS_GW, {}).get("status") or {}).get("listeners") or []
            problem = mode_mismatch(listeners, names, supported, refusal)
            if problem:
                raise CaseFailed(problem)

        eventually(once, timeout=30)

    return check


OBJECTS = (*TLS, *ROUTES)
CASES = [
    Case("TLSRouteInvalidBackendRefNonexistent", PROFILE, CORE, OBJECTS, _nonexistent,
         kinds=("TLSRoute",)),
    Case("TLSRouteInvalidBackendRefUnknownKind", PROFILE, CORE, OBJECTS, _unknown_kind,
         kinds=("TLSRoute",)),
    Case("TLSRouteInvalidNoMatchingListenerHostname", PROFILE, CORE, OBJECTS,
         _no_matching_listener_hostname, kinds=("TLSRoute",)),
    Case("TLSRouteInvalidNoMatchingListener", PROFILE, CORE, OBJECTS, _no_matching_listener,
         kinds=("TLSRoute",)),
    Case("TLSRouteListenerTerminateSupportedKinds", PROFILE, (*CORE, TERMINATE), OBJECTS,
         _terminate_kinds, kinds=("TLSRoute",)),
    # The listeners of these two are the shared Gateway's (tls.py), on the ports of its
    # Terminate and Mixed cases: no Gateway of their own, so no pool address.
    Case("TLSRouteListenerTerminateNotSupported", PROFILE, CORE, OBJECTS,
         _mode_check(TERMINATE, ("terminate",), "UnsupportedValue"), kinds=("TLSRoute",)),
    Case("TLSRouteListenerMixedTerminationNotSupported", PROFILE, (*CORE, TERMINATE), OBJECTS,
         _mode_check(MIXED, ("mixed-terminate", "mixed-passthrough"), "ProtocolConflict"),
         kinds=("TLSRoute",)),
    Case("TLSRouteListenerPassthroughSupportedKinds", PROFILE, CORE,
         (namespace(INFRA), PASSTHROUGH_GATEWAY), _passthrough_kinds, kinds=("TLSRoute",)),
]
