"""The inputs of the route engine and the one analysis that both compilation and status
are derived from, so what the waypoint serves and what status says never disagree."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from agent.model.core import ConfigMap, Namespace, Secret, Service
from agent.model.fault import HTTPFault
from agent.model.gateway import Gateway, GatewayClass, ReferenceGrant
from agent.model.grpcroute import GRPCRoute
from agent.model.httproute import HTTPRoute
from agent.model.l4route import TCPRoute, UDPRoute
from agent.model.listenerset import ListenerSet
from agent.model.tlsroute import TLSRoute
from gatewayapi.attach import (
    CertificateCheck,
    GatewayState,
    ParentResult,
    attach_gateway,
    attach_service,
    gateway_state,
    is_gateway_ref,
    is_listener_set_ref,
    is_service_ref,
)
from gatewayapi.backends import Grants, RefProblem
from gatewayapi.conflicts import resolve_kind_conflicts
from gatewayapi.frontendtls import referenced_ca_config_maps
from gatewayapi.grpc import compile_grpc_route_rules
from gatewayapi.l4routes import L4RouteReport, analyze_l4
from gatewayapi.listenersets import Verdict, judge
from gatewayapi.parameters import class_parameters_problem, gateway_parameters_problem
from gatewayapi.rules import RuleReport, compile_route_rules
from gatewayapi.tlsroutes import compile_tls_route_rules, resolve_tls_conflicts
from gatewayapi.types import CONTROLLER_NAME


@dataclass(frozen=True, slots=True)
class RoutingInputs:
    """Everything routes and their status depend on. Order does not matter."""

    routes: tuple[HTTPRoute, ...] = ()
    gateways: tuple[Gateway, ...] = ()
    gateway_classes: tuple[GatewayClass, ...] = ()
    services: tuple[Service, ...] = ()
    reference_grants: tuple[ReferenceGrant, ...] = ()
    namespaces: tuple[Namespace, ...] = ()
    secrets: tuple[Secret, ...] = ()
    controller_name: str = CONTROLLER_NAME
    faults: tuple[HTTPFault, ...] = ()
    """What HTTPRoute ExtensionRef filters may name (``rules._extension``)."""
    grpc_routes: tuple[GRPCRoute, ...] = ()
    tls_routes: tuple[TLSRoute, ...] = ()
    l4_routes: tuple[TCPRoute | UDPRoute, ...] = ()
    """TCPRoutes and UDPRoutes: status and the kernel's entries, never the waypoint's tables
    (so they are not in ``fingerprint``)."""
    listener_sets: tuple[ListenerSet, ...] = ()
    config_maps: tuple[ConfigMap, ...] = ()
    """CA bundles of Gateways' client-certificate validation (``gatewayapi.frontendtls``)."""

    @classmethod
    def of(
        cls,
        routes: Iterable[HTTPRoute] = (),
        gateways: Iterable[Gateway] = (),
        gateway_classes: Iterable[GatewayClass] = (),
        services: Iterable[Service] = (),
        reference_grants: Iterable[ReferenceGrant] = (),
        namespaces: Iterable[Namespace] = (),
        secrets: Iterable[Secret] = (),
        controller_name: str = CONTROLLER_NAME,
        faults: Iterable[HTTPFault] = (),
        grpc_routes: Iterable[GRPCRoute] = (),
        tls_routes: Iterable[TLSRoute] = (),
        l4_routes: Iterable[TCPRoute | UDPRoute] = (),
        listener_sets: Iterable[ListenerSet] = (),
        config_maps: Iterable[ConfigMap] = (),
    ) -> RoutingInputs:
        gateways = tuple(gateways)
        cas = referenced_ca_config_maps(gateways)
        return cls(
            tuple(routes),
            gateways,
            tuple(gateway_classes),
            tuple(services),
            tuple(reference_grants),
            tuple(namespaces),
            tuple(secrets),
            controller_name,
            tuple(faults),
            tuple(grpc_routes),
            tuple(tls_routes),
            tuple(l4_routes),
            tuple(listener_sets),
            tuple(c for c in config_maps if (c.metadata.namespace, c.metadata.name) in cas),
        )

    def fingerprint(self) -> tuple[object, ...]:
        """What compilation reads, without status, resource versions or uids: equal
        fingerprints compile to equal tables. Sorted, so input order does not matter."""
        return (
            self.controller_name,
            _by_key((r.metadata.key, r.metadata.creation_timestamp, r.spec) for r in self.routes),
            _by_key((g.metadata.key, g.spec) for g in self.gateways),
            _by_key((c.metadata.key, c.spec) for c in self.gateway_classes),
            _by_key((s.metadata.key, s.spec) for s in self.services),
            _by_key((g.metadata.key, g.spec) for g in self.reference_grants),
            _by_key((n.metadata.key, n.metadata.labels) for n in self.namespaces),
            _by_key((s.metadata.key, s.type, s.data) for s in self.secrets),
            _by_key((f.metadata.key, f.spec) for f in self.faults),
            _by_key(
                (r.metadata.key, r.metadata.creation_timestamp, r.spec) for r in self.grpc_routes
            ),
            _by_key(
                (r.metadata.key, r.metadata.creation_timestamp, r.spec) for r in self.tls_routes
            ),
            _by_key(
                (s.metadata.key, s.metadata.creation_timestamp, s.spec)
                for s in self.listener_sets
            ),
            _by_key((c.metadata.key, c.data) for c in self.config_maps),
        )


def _by_key(entries: Iterable[tuple[object, ...]]) -> tuple[tuple[object, ...], ...]:
    return tuple(sorted(entries, key=lambda entry: str(entry[0])))


@dataclass(slots=True)
class RouteReport:
    route: HTTPRoute | GRPCRoute | TLSRoute
    rules: list[RuleReport]
    parents: list[ParentResult] = field(default_factory=list)
    """Results for the parentRefs that are Tulle's, in parentRefs order."""

    @property
    def served_rules(self) -> list[RuleReport]:
        return [r for r in self.rules if r.rule is not None]

    @property
    def dropped_rules(self) -> list[RuleReport]:
        return [r for r in self.rules if r.dropped is not None]

    @property
    def ref_problems(self) -> list[tuple[RefProblem, str]]:
        return [problem for r in self.rules for problem in r.refs]

    def accepted(self, parent: ParentResult) -> bool:
        return parent.attached and bool(self.served_rules)


@dataclass(slots=True)
class Analysis:
    inputs: RoutingInputs
    classes: list[GatewayClass]
    gateways: dict[tuple[str, str], GatewayState]
    routes: list[RouteReport]
    l4_routes: list[L4RouteReport] = field(default_factory=list)
    listener_sets: list[Verdict] = field(default_factory=list)
    """Every ListenerSet whose parent is one of ``gateways``, in precedence order."""


def analyze(inputs: RoutingInputs, check: CertificateCheck | None = None) -> Analysis:
    """`check` (optional) also vets TLS certificates' content for listener status."""
    classes = [
        c for c in inputs.gateway_classes if c.spec.controller_name == inputs.controller_name
    ]
    class_names = {c.metadata.name for c in classes}
    class_problems = {c.metadata.name: class_parameters_problem(c) for c in classes}
    grants = Grants(inputs.reference_grants)
    secrets = {(s.metadata.namespace, s.metadata.name): s for s in inputs.secrets}
    services = {(s.metadata.namespace, s.metadata.name): s for s in inputs.services}
    labels = {n.metadata.name: n.metadata.labels for n in inputs.namespaces}
    faults = {(f.metadata.namespace, f.metadata.name): f for f in inputs.faults}
    config_maps = {(c.metadata.namespace, c.metadata.name): c for c in inputs.config_maps}
    ours = {
        (g.metadata.namespace, g.metadata.name): g
        for g in sorted(inputs.gateways, key=lambda g: g.metadata.key)
        if g.spec.gateway_class_name in class_names
    }
    verdicts = judge(inputs.listener_sets, ours, labels)
    gateways = {
        key: gateway_state(
            g, secrets, grants, check,
            [v.listener_set for v in verdicts if v.allowed and v.gateway == key],
            config_maps,
        )
        for key, g in ours.items()
    }
    for held in gateways.values():
        problem = gateway_parameters_problem(
            held.gateway, class_problems[held.gateway.spec.gateway_class_name]
        )
        if problem is not None:
            held.invalid_parameters = problem
            for listener in held.listeners:
                listener.held = True
    sets = {v.listener_set.metadata.key: v for v in verdicts if v.allowed}
    reports = []
    every: list[HTTPRoute | GRPCRoute | TLSRoute] = [
        *inputs.routes, *inputs.grpc_routes, *inputs.tls_routes
    ]
    for route in sorted(every, key=lambda r: (r.metadata.key, r.kind)):
        if isinstance(route, TLSRoute):
            rules = compile_tls_route_rules(route, services, grants)
        elif isinstance(route, GRPCRoute):
            rules = compile_grpc_route_rules(route, services, grants, faults)
        else:
            rules = compile_route_rules(route, services, grants, faults)
        report = RouteReport(route, rules)
        for ref in route.spec.parent_refs:
            if is_gateway_ref(ref):
                state = gateways.get((ref.namespace or route.metadata.namespace, ref.name))
                if state is not None:
                    report.parents.append(attach_gateway(route, ref, state, labels))
            elif is_listener_set_ref(ref):
                key = (ref.namespace or route.metadata.namespace, ref.name)
                verdict = sets.get(f"{key[0]}/{key[1]}")
                if verdict is not None:  # else not an attached ListenerSet of Tulle's
                    state = gateways[verdict.gateway]
                    report.parents.append(attach_gateway(route, ref, state, labels, key))
            elif is_service_ref(ref):
                report.parents.append(attach_service(route, ref, services))
        reports.append(report)
    resolve_kind_conflicts(reports)
    resolve_tls_conflicts(reports)
    l4 = analyze_l4(inputs.l4_routes, gateways, services, grants, labels)
    return Analysis(
        inputs, classes, gateways, reports, l4,
        [v for v in verdicts if v.reason != "NoParent"],
    )
