"""GATEWAY-HTTP cases that assert route status as well as traffic: a route a listener does
not allow, and a backendRef of an unknown kind (upstream HTTPRouteInvalidCrossNamespaceParentRef,
HTTPRouteInvalidBackendRefUnknownKind), a parentRef port no listener has
(HTTPRouteInvalidParentRefNotMatchingListenerPort, feature HTTPRouteDestinationPortMatching),
exact path matching, and a Gateway whose infrastructure.parametersRef Tulle cannot read
(GatewayInvalidParametersRef: Accepted False, InvalidParameters; gatewayapi/parameters.py)."""

from __future__ import annotations

from typing import Any

from conformance.case import Case, CaseFailed
from conformance.cases.common import (
    GATEWAY_API,
    GATEWAY_BASE,
    INFRA,
    OTHER,
    Expect,
    backend,
    exact,
    gateway_parent,
    http_route,
    via_gateway,
)
from conformance.lab import Lab, eventually

PROFILE = "GATEWAY-HTTP"
CORE = ("Gateway", "HTTPRoute")
V1 = "infra-backend-v1"


def _condition(lab: Lab, ns: str, name: str, type_: str) -> dict[str, Any]:
    for r in lab.get("httproutes", ns):
        if r["metadata"]["name"] == name:
            for parent in (r.get("status") or {}).get("parents") or []:
                for c in parent.get("conditions") or []:
                    if c.get("type") == type_:
                        return dict(c)
    raise CaseFailed(f"HTTPRoute {ns}/{name} has no {type_} condition yet")


def _expect_condition(lab: Lab, ns: str, name: str, type_: str, status: str, reason: str
                      ) -> None:
    def once() -> None:
        c = _condition(lab, ns, name, type_)
        if (c.get("status"), c.get("reason")) != (status, reason):
            raise CaseFailed(f"{ns}/{name} {type_}: {c.get('status')}/{c.get('reason')}, "
                             f"want {status}/{reason}")

    eventually(once, timeout=30)


NOT_ALLOWED_HOST = "not-allowed.example.com"
UNKNOWN_KIND_HOST = "unknown-kind.example.com"
EXACT_HOST = "exact-path.example.com"


def _not_allowed(lab: Lab) -> None:
    """A route in another namespace than a `from: Same` listener's is not accepted there
    (Accepted False, NotAllowedByListeners) and gets no traffic."""
    _expect_condition(lab, OTHER, "not-allowed", "Accepted", "False", "NotAllowedByListeners")
    via_gateway(lab, NOT_ALLOWED_HOST, [Expect(path="/", status=404)])


def _unknown_kind(lab: Lab) -> None:
    """A backendRef of a kind the implementation does not know: ResolvedRefs False,
    InvalidKind; the route stays accepted and its requests get 500."""
    _expect_condition(lab, INFRA, "unknown-kind", "ResolvedRefs", "False", "InvalidKind")
    _expect_condition(lab, INFRA, "unknown-kind", "Accepted", "True", "Accepted")
    via_gateway(lab, UNKNOWN_KIND_HOST, [Expect(path="/", status=500)])


PORT_GATEWAY = "listener-port-80"  # its own: the shared Gateway has other cases' routes


def _no_matching_port(lab: Lab) -> None:
    """A parentRef whose port no listener of the Gateway has: Accepted False,
    NoMatchingParent, ResolvedRefs True, no parent accepted, and no route attached to the
    Gateway (upstream HTTPRouteInvalidParentRefNotMatchingListenerPort)."""
    _expect_condition(lab, INFRA, "listener-not-matching-route-port", "Accepted", "False",
                      "NoMatchingParent")
    _expect_condition(lab, INFRA, "listener-not-matching-route-port", "ResolvedRefs", "True",
                      "ResolvedRefs")

    def attached() -> None:
        gw = next((g for g in lab.get("gateways", INFRA)
                   if g["metadata"]["name"] == PORT_GATEWAY), None)
        listeners = ((gw or {}).get("status") or {}).get("listeners") or []
        counts = [li.get("attachedRoutes") for li in listeners]
        if counts != [0]:
            raise CaseFailed(f"Gateway {PORT_GATEWAY} listeners' attachedRoutes {counts}, want [0]")

    eventually(attached, timeout=30)


PARAMS_GATEWAY = "gateway-invalid-parameters-ref"  # upstream's manifest, as it is


def _invalid_parameters(lab: Lab) -> None:
    """Once the Gateway's conditions are of its latest generation (upstream's
    GatewayMustHaveLatestConditions): Accepted False, InvalidParameters; and, Tulle's own
    check, its listener is not programmed (such a Gateway is not served)."""
    def once() -> None:
        gw = next((g for g in lab.get("gateways", INFRA)
                   if g["metadata"]["name"] == PARAMS_GATEWAY), None)
        if gw is None:
            raise CaseFailed(f"no Gateway {INFRA}/{PARAMS_GATEWAY}")
        status = gw.get("status") or {}
        generation = gw["metadata"].get("generation")
        conditions = {c.get("type"): c for c in status.get("conditions") or []}
        stale = [t for t, c in conditions.items() if c.get("observedGeneration") != generation]
        if not conditions or stale:
            raise CaseFailed(f"conditions not of generation {generation}: {stale or 'none'}")
        accepted = conditions.get("Accepted") or {}
        if (accepted.get("status"), accepted.get("reason")) != ("False", "InvalidParameters"):
            raise CaseFailed(f"Accepted {accepted.get('status')}/{accepted.get('reason')}, "
                             "want False/InvalidParameters")
        programmed = [c.get("status") for ls in status.get("listeners") or []
                      for c in ls.get("conditions") or [] if c.get("type") == "Programmed"]
        if programmed != ["False"]:
            raise CaseFailed(f"listeners' Programmed {programmed}, want ['False']")

    eventually(once, timeout=30)


CASES = [
    Case("GatewayInvalidParametersRef", PROFILE, ("Gateway",), (
        *GATEWAY_BASE,
        {"apiVersion": GATEWAY_API, "kind": "Gateway",
         "metadata": {"name": PARAMS_GATEWAY, "namespace": INFRA,
                      "annotations": {"gateway-api/skip-this-for-readiness": "true"}},
         "spec": {"gatewayClassName": "tulle",
                  "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
                  "infrastructure": {"parametersRef": {
                      "group": "invalid.io", "kind": "InvalidParameters", "name": "invalid"}}}},
    ), _invalid_parameters),
    Case("HTTPRouteInvalidParentRefNotMatchingListenerPort", PROFILE,
         (*CORE, "HTTPRouteDestinationPortMatching"), (
             *GATEWAY_BASE,
             {"apiVersion": GATEWAY_API, "kind": "Gateway",
              "metadata": {"name": PORT_GATEWAY, "namespace": INFRA},
              "spec": {"gatewayClassName": "tulle",
                       "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}},
             http_route(INFRA, "listener-not-matching-route-port",
                        {"name": PORT_GATEWAY, "namespace": INFRA, "port": 81},
                        [{"backendRefs": [backend(V1)]}])), _no_matching_port),
    Case("HTTPRouteInvalidCrossNamespaceParentRef", PROFILE, CORE, (
        *GATEWAY_BASE, http_route(OTHER, "not-allowed", gateway_parent(),
                                  [{"backendRefs": [backend("app-backend-v1")]}],
                                  hostnames=[NOT_ALLOWED_HOST])), _not_allowed),
    Case("HTTPRouteInvalidBackendRefUnknownKind", PROFILE, CORE, (
        *GATEWAY_BASE, http_route(INFRA, "unknown-kind", gateway_parent(), [
            {"backendRefs": [backend("infra-backend-v1", group="unknownkind.example.com",
                                     kind="NonExistent")]}],
            hostnames=[UNKNOWN_KIND_HOST])), _unknown_kind),
    Case("HTTPRouteExactPathMatching", PROFILE, CORE, (
        *GATEWAY_BASE, http_route(INFRA, "exact-path", gateway_parent(), [
            {"matches": [exact("/one")], "backendRefs": [backend(V1)]}],
            hostnames=[EXACT_HOST])),
        lambda lab: via_gateway(lab, EXACT_HOST, [
            Expect(path="/one", backend=V1), Expect(path="/one/two", status=404),
            Expect(path="/on", status=404), Expect(path="/one?q=1", backend=V1)])),
]
