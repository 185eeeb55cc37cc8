"""Status of HTTPRoutes, Gateways and GatewayClasses, as Kubernetes-shaped dicts.

Derived from the same analysis as the tables, so status says exactly what is served.

- HTTPRoute and GRPCRoute ``status.parents[]``, one entry per parentRef Tulle owns (a Tulle
  Gateway, or any Service), with Accepted (Accepted, NoMatchingParent, NotAllowedByListeners,
  NoMatchingListenerHostname, IncompatibleFilters, UnsupportedValue, and for a route that
  loses a listener to an older route of the other kind RouteKindConflict), ResolvedRefs
  (ResolvedRefs, BackendNotFound, RefNotPermitted, InvalidKind) and, when some rules were
  dropped, PartiallyInvalid (its message starts "Dropped Rule", as the spec asks). Entries
  of other controllers are kept as they are.
- TCPRoute and UDPRoute ``status.parents[]`` likewise, with Accepted and ResolvedRefs
  (``gatewayapi.l4routes``: one route per listener, the older).
- Gateway: Accepted and Programmed, and ResolvedRefs when it names a client certificate
  for backends (``gatewayapi.backendclientcert``); per listener Accepted, Programmed,
  ResolvedRefs and Conflicted, supportedKinds and attachedRoutes (routes Accepted on that listener).
  ``status.addresses`` is left as found: addresses are assigned elsewhere.
- ListenerSet (of a Tulle Gateway): Accepted (Accepted, NotAllowed, ListenersNotValid) and
  Programmed, per listener the same as a Gateway's (a conflicted one: Programmed False with
  the conflict's reason, as the ListenerSet conformance tests want); the Gateway's
  ``attachedListenerSets`` counts the Accepted ones. Its own listeners only in its status.
- A Gateway or GatewayClass with a ``parametersRef`` (Tulle reads none) is not Accepted,
  reason InvalidParameters; such a Gateway, or one of such a class, is not served
  (``gatewayapi.parameters``).
- GatewayClass: Accepted, and SupportedVersion when ``crd_versions`` is given
  (``gatewayapi.crdversion``).

Every condition carries observedGeneration (when the object has a generation) and keeps
its lastTransitionTime while its status does not change, so recomputing status for
unchanged inputs yields identical dicts and no write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent.model.gateway import ParentReference, RouteParentStatus
from agent.model.meta import Condition
from gatewayapi.analysis import Analysis, RouteReport, RoutingInputs, analyze
from gatewayapi.attach import CertificateCheck, GatewayState, ParentResult
from gatewayapi.backendclientcert import resolved_refs
from gatewayapi.crdversion import CONDITION, VersionCheck
from gatewayapi.frontendtls import insecure_fallback_ports
from gatewayapi.l4routes import L4RouteReport
from gatewayapi.listenerset_status import (
    Conditions,
    format_time,
    is_true,
    join,
    listener_set_status,
    listener_status,
)
from gatewayapi.parameters import REASON as INVALID_PARAMETERS
from gatewayapi.parameters import class_parameters_problem

StatusDict = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StatusReport:
    """``status`` dicts by object key ("namespace/name"; "name" for GatewayClasses)."""

    routes: dict[str, StatusDict]
    gateways: dict[str, StatusDict]
    gateway_classes: dict[str, StatusDict]
    grpc_routes: dict[str, StatusDict] = field(default_factory=dict)
    """GRPCRoutes' status, in the same shape as HTTPRoutes'."""
    tls_routes: dict[str, StatusDict] = field(default_factory=dict)
    """TLSRoutes' status, in the same shape (a parentRef whose hostnames older TLSRoutes
    all hold: Accepted False, HostnameConflict; gatewayapi.tlsroutes)."""
    tcp_routes: dict[str, StatusDict] = field(default_factory=dict)
    udp_routes: dict[str, StatusDict] = field(default_factory=dict)
    """TCPRoutes' and UDPRoutes' status (Accepted, ResolvedRefs), the same shape again."""
    listener_sets: dict[str, StatusDict] = field(default_factory=dict)


def parent_ref_dict(ref: ParentReference) -> StatusDict:
    out: StatusDict = {"group": ref.group, "kind": ref.kind, "name": ref.name}
    if ref.namespace is not None:
        out["namespace"] = ref.namespace
    if ref.section_name is not None:
        out["sectionName"] = ref.section_name
    if ref.port is not None:
        out["port"] = ref.port
    return out


def _condition_dict(c: Condition) -> StatusDict:
    out: StatusDict = {"type": c.type, "status": c.status.value, "reason": c.reason}
    out["message"] = c.message
    if c.last_transition_time is not None:
        out["lastTransitionTime"] = format_time(c.last_transition_time)
    if c.observed_generation is not None:
        out["observedGeneration"] = c.observed_generation
    return out


def _foreign_parent(entry: RouteParentStatus) -> StatusDict:
    return {
        "parentRef": parent_ref_dict(entry.parent_ref),
        "controllerName": entry.controller_name,
        "conditions": [_condition_dict(c) for c in entry.conditions],
    }


def _route_parent(report: RouteReport, parent: ParentResult, make: Conditions) -> list[StatusDict]:
    conditions = []
    served, dropped = report.served_rules, report.dropped_rules
    if not parent.attached:
        conditions.append(make.make("Accepted", False, parent.reason, parent.message))
    elif not served:
        reasons = [r.dropped for r in dropped if r.dropped is not None]
        reason = reasons[0][0] if reasons else "UnsupportedValue"
        message = join([m for _, m in reasons]) or "the route has no valid rule"
        conditions.append(make.make("Accepted", False, reason, message))
    else:
        conditions.append(make.make("Accepted", True, "Accepted", "Route is accepted"))
    problems = report.ref_problems
    if problems:
        message = join([m for _, m in problems])
        conditions.append(make.make("ResolvedRefs", False, problems[0][0].value, message))
    else:
        conditions.append(make.make("ResolvedRefs", True, "ResolvedRefs", "References resolved"))
    if parent.attached and served and dropped:
        labels = ", ".join(str(r.index) for r in dropped)
        why = join([r.dropped[1] for r in dropped if r.dropped is not None])
        message = f"Dropped Rule(s) {labels}: {why}"
        conditions.append(make.make("PartiallyInvalid", True, "UnsupportedValue", message))
    return conditions


def _l4_route_parent(
    report: L4RouteReport, parent: ParentResult, make: Conditions
) -> list[StatusDict]:
    if parent.attached:
        conditions = [make.make("Accepted", True, "Accepted", "Route is accepted")]
    else:
        conditions = [make.make("Accepted", False, parent.reason, parent.message)]
    if report.refs:
        message = join([m for _, m in report.refs])
        conditions.append(make.make("ResolvedRefs", False, report.refs[0][0].value, message))
    else:
        conditions.append(make.make("ResolvedRefs", True, "ResolvedRefs", "References resolved"))
    return conditions


def _route_status(
    report: RouteReport | L4RouteReport, controller: str, now: datetime
) -> StatusDict:
    route = report.route
    ours = {(p.parent_ref, p.controller_name): p for p in route.status.parents}
    parents: list[StatusDict] = []
    for parent in report.parents:
        previous = ours.get((parent.ref, controller))
        make = Conditions(route.metadata, previous.conditions if previous else (), now)
        conditions = (
            _l4_route_parent(report, parent, make)
            if isinstance(report, L4RouteReport)
            else _route_parent(report, parent, make)
        )
        parents.append(
            {
                "parentRef": parent_ref_dict(parent.ref),
                "controllerName": controller,
                "conditions": conditions,
            }
        )
    foreign = [_foreign_parent(p) for p in route.status.parents if p.controller_name != controller]
    return {"parents": parents + foreign}


def _gateway_status(
    state: GatewayState, attached: dict[str, int], now: datetime, listener_sets: int = 0
) -> StatusDict:
    gateway = state.gateway
    make = Conditions(gateway.metadata, gateway.status.conditions, now)
    previous_listeners = {ls.name: ls.conditions for ls in gateway.status.listeners}
    own = [s for s in state.listeners if s.origin is None]
    listeners = [
        listener_status(
            s, attached.get(s.listener.name, 0), now, previous_listeners.get(s.listener.name, ())
        )
        for s in own
    ]
    usable = [s for s in own if s.accepted[0]]
    all_valid = all(s.programmed for s in own)
    if state.invalid_parameters is not None:
        accepted = make.make("Accepted", False, INVALID_PARAMETERS, state.invalid_parameters)
    elif state.unsupported_addresses:
        accepted = make.make(
            "Accepted",
            False,
            "UnsupportedAddress",
            f"only IPAddress addresses are supported: {', '.join(state.unsupported_addresses)}",
        )
    elif usable:
        reason = "Accepted" if all_valid else "ListenersNotValid"
        message = "Gateway is accepted" if all_valid else "some listeners are not valid"
        accepted = make.make("Accepted", True, reason, message)
    else:
        accepted = make.make("Accepted", False, "ListenersNotValid", "no listener is valid")
    programmed_ok = accepted["status"] == "True" and any(s.programmed for s in own)
    programmed = (
        make.make("Programmed", True, "Programmed", "Gateway is programmed on the waypoints")
        if programmed_ok
        else make.make("Programmed", False, "Invalid", "Gateway has no programmed listener")
    )
    conditions = [accepted, programmed]
    if insecure := insecure_fallback_ports(gateway):
        # GEP-91: present while any port allows AllowInsecureFallback, removed after.
        conditions.append(make.make(
            "InsecureFrontendValidationMode", True, "ConfigurationChanged",
            f"client certificate validation allows AllowInsecureFallback ({', '.join(insecure)})",
        ))
    if (refs := resolved_refs(state.backend_client)) is not None:  # GEP-3155
        conditions.append(make.make("ResolvedRefs", *refs))
    addresses = [{"type": a.type, "value": a.value} for a in gateway.status.addresses]
    out: StatusDict = {"conditions": conditions, "listeners": listeners}
    if gateway.spec.allowed_listeners is not None or listener_sets:
        out["attachedListenerSets"] = listener_sets
    if addresses:
        out["addresses"] = addresses
    return out


def compute_status(
    inputs: RoutingInputs,
    now: datetime | None = None,
    *,
    analysis: Analysis | None = None,
    certificate_check: CertificateCheck | None = None,
    crd_versions: VersionCheck | None = None,
) -> StatusReport:
    """Status for every HTTPRoute, and for the Gateways and GatewayClasses that are
    Tulle's. ``now`` stamps conditions whose status changed; ``certificate_check`` vets the
    content of listeners' certificates (InvalidCertificateRef when it objects)."""
    now = now or datetime.now(UTC)
    analysis = analysis or analyze(inputs, certificate_check)
    controller = inputs.controller_name
    routes = {
        r.route.metadata.key: _route_status(r, controller, now)
        for r in analysis.routes
        if r.route.kind == "HTTPRoute"
    }
    grpc_routes = {
        r.route.metadata.key: _route_status(r, controller, now)
        for r in analysis.routes
        if r.route.kind == "GRPCRoute"
    }
    tls_routes = {
        r.route.metadata.key: _route_status(r, controller, now)
        for r in analysis.routes
        if r.route.kind == "TLSRoute"
    }
    l4 = {
        kind: {
            r.route.metadata.key: _route_status(r, controller, now)
            for r in analysis.l4_routes
            if r.route.kind == kind
        }
        for kind in ("TCPRoute", "UDPRoute")
    }
    attached: dict[tuple[str, str], dict[str, int]] = {}
    every: list[RouteReport | L4RouteReport] = [*analysis.routes, *analysis.l4_routes]
    for report in every:
        counted: set[tuple[str, str, str]] = set()
        for parent in report.parents:
            if not report.accepted(parent):
                continue
            for attachment in parent.listeners:
                gw = attachment.state.gateway.metadata
                key = (gw.namespace, gw.name, attachment.state.listener.name)
                if key not in counted:
                    counted.add(key)
                    per = attached.setdefault((gw.namespace, gw.name), {})
                    per[key[2]] = per.get(key[2], 0) + 1
    sets = {
        v.listener_set.metadata.key: listener_set_status(v, analysis, attached, now)
        for v in analysis.listener_sets
    }
    accepted_sets = {
        key: sum(
            1 for v in analysis.listener_sets
            if v.gateway == key and is_true(sets[v.listener_set.metadata.key], "Accepted")
        )
        for key in analysis.gateways
    }
    gateways = {
        state.gateway.metadata.key: _gateway_status(
            state, attached.get(key, {}), now, accepted_sets[key]
        )
        for key, state in analysis.gateways.items()
    }
    classes = {}
    for gateway_class in analysis.classes:
        make = Conditions(gateway_class.metadata, gateway_class.status.conditions, now)
        problem = class_parameters_problem(gateway_class)
        conditions = [
            make.make("Accepted", False, INVALID_PARAMETERS, problem)
            if problem is not None
            else make.make("Accepted", True, "Accepted", f"Handled by {controller}")
        ]
        if crd_versions is not None:  # best effort when unsupported: Accepted stays True
            conditions.append(make.make(
                CONDITION, crd_versions.supported, crd_versions.reason, crd_versions.message
            ))
        classes[gateway_class.metadata.key] = {"conditions": conditions}
    return StatusReport(
        routes, gateways, classes, grpc_routes, tls_routes, l4["TCPRoute"], l4["UDPRoute"],
        sets,
    )


