"""Compilation: from model objects to RouteTables, pure and deterministic.

Only what status reports as working is served: parents whose route is Accepted,
programmed listeners of Tulle's Gateways, and the rules that were not dropped. Regexes
are compiled here, once. ``RouteCompiler`` recompiles only when the inputs that matter
change (status writes and resource-version bumps do not count).
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.model.core import Namespace, Secret, Service
from agent.model.fault import HTTPFault
from agent.model.gateway import Gateway, GatewayClass, ReferenceGrant
from agent.model.grpcroute import GRPCRoute
from agent.model.httproute import HTTPRoute
from agent.model.tlsroute import TLSRoute
from gatewayapi.analysis import Analysis, RoutingInputs, analyze
from gatewayapi.attach import HTTP_PROTOCOLS
from gatewayapi.grpc import GrpcIndexBuilder, rule_matches
from gatewayapi.precedence import IndexBuilder, route_order
from gatewayapi.tables import (
    GatewayPortTable,
    ListenerInfo,
    ListenerTable,
    RouteTables,
    ServicePortTable,
)
from gatewayapi.tlsroutes import compile_tls_tables
from gatewayapi.types import CONTROLLER_NAME, GatewayParent, ServiceParent


def compile_routes(
    routes: Iterable[HTTPRoute],
    gateways: Iterable[Gateway],
    gateway_classes: Iterable[GatewayClass],
    services: Iterable[Service],
    reference_grants: Iterable[ReferenceGrant],
    namespaces: Iterable[Namespace],
    *,
    secrets: Iterable[Secret] = (),
    controller_name: str = CONTROLLER_NAME,
    faults: Iterable[HTTPFault] = (),
    grpc_routes: Iterable[GRPCRoute] = (),
) -> RouteTables:
    """Compile routes for every parent Tulle serves."""
    inputs = RoutingInputs.of(
        routes,
        gateways,
        gateway_classes,
        services,
        reference_grants,
        namespaces,
        secrets,
        controller_name,
        faults,
        grpc_routes,
    )
    return compile_analysis(analyze(inputs))


def compile_analysis(analysis: Analysis) -> RouteTables:
    listener_builders: dict[tuple[str, str, str], tuple[ListenerInfo, IndexBuilder]] = {}
    grpc_listeners: dict[tuple[str, str, str], GrpcIndexBuilder] = {}
    for (ns, name), gateway in analysis.gateways.items():
        for state in gateway.listeners:
            if not state.programmed or state.listener.protocol not in HTTP_PROTOCOLS:
                continue  # TCP and UDP listeners are the kernel's (gatewayapi.l4routes)
            listener = state.listener
            certificates = tuple(
                (ref.namespace or ns, ref.name)
                for ref in (listener.tls.certificate_refs if listener.tls else ())
            )
            info = ListenerInfo(
                (ns, name),
                listener.name,
                listener.port,
                listener.protocol.value,
                listener.hostname,
                certificates,
                state.client.ca_pem if state.client is not None else None,
                state.client is not None and state.client.insecure_fallback,
            )
            listener_builders[(ns, name, listener.name)] = (info, IndexBuilder())

    service_builders: dict[ServiceParent, dict[str | None, IndexBuilder]] = {}
    grpc_services: dict[ServiceParent, dict[str | None, GrpcIndexBuilder]] = {}
    cluster_ips: dict[ServiceParent, str | None] = {}
    for report in analysis.routes:
        route = report.route
        if isinstance(route, TLSRoute):  # served by SNI: compile_tls_tables
            continue
        meta = route.metadata
        order = route_order(meta.creation_timestamp, meta.namespace, meta.name)
        rules = [r.rule for r in report.served_rules if r.rule is not None]
        if isinstance(route, GRPCRoute):
            # (compiled rule, its GRPCRoute matches): a served rule keeps its index.
            grpc_rules = [
                (rule, rule_matches(route.spec.rules[rule.ref.rule_index])) for rule in rules
            ]
        for parent in report.parents:
            if not report.accepted(parent):
                continue
            for attachment in parent.listeners:
                gw = attachment.state.gateway.metadata
                slot_key = (gw.namespace, gw.name, attachment.state.listener.name)
                slot = listener_builders.get(slot_key)
                if slot is None:
                    continue
                for pattern, host_key in attachment.hostnames:
                    if isinstance(route, GRPCRoute):
                        grpc = grpc_listeners.setdefault(slot_key, GrpcIndexBuilder())
                        for rule, matches in grpc_rules:
                            for i, gmatch in enumerate(matches):
                                grpc.add(pattern, host_key, gmatch, rule, i, order)
                        continue
                    for rule in rules:
                        for i, match in enumerate(rule.matches):
                            slot[1].add(pattern, host_key, match, rule, i, order)
            for service in parent.services:
                svc = service.service.metadata
                key = ServiceParent(svc.namespace, svc.name, service.port)
                cluster_ips[key] = service.service.spec.cluster_ip
                consumer = service.consumer_namespace
                if isinstance(route, GRPCRoute):
                    grpc = grpc_services.setdefault(key, {}).setdefault(
                        consumer, GrpcIndexBuilder()
                    )
                    for rule, matches in grpc_rules:
                        for i, gmatch in enumerate(matches):
                            grpc.add(None, (0, 0), gmatch, rule, i, order)
                    continue
                builder = service_builders.setdefault(key, {}).setdefault(consumer, IndexBuilder())
                for rule in rules:
                    for i, match in enumerate(rule.matches):
                        builder.add(None, (0, 0), match, rule, i, order)

    by_port: dict[GatewayParent, list[ListenerTable]] = {}
    for slot_key, (info, builder) in sorted(listener_builders.items()):
        ns, name, _ = slot_key
        grpc_builder = grpc_listeners.get(slot_key)
        grpc_index = grpc_builder.build() if grpc_builder is not None else None
        table = ListenerTable(info, builder.build(), grpc_index)
        by_port.setdefault(GatewayParent(ns, name, info.port), []).append(table)
    gateways = {key: GatewayPortTable(tables) for key, tables in by_port.items()}

    services: dict[ServiceParent, ServicePortTable] = {}
    addresses: dict[tuple[str, int], ServiceParent] = {}
    for key in sorted({*service_builders, *grpc_services}):
        builders = service_builders.get(key, {})
        producer = builders.get(None)
        consumers = {ns: b.build() for ns, b in builders.items() if ns is not None}
        grpcs = grpc_services.get(key, {})
        grpc_producer = grpcs.get(None)
        services[key] = ServicePortTable(
            producer.build() if producer is not None else None,
            consumers,
            grpc_producer.build() if grpc_producer is not None else None,
            {ns: b.build() for ns, b in grpcs.items() if ns is not None},
        )
        ip = cluster_ips.get(key)
        if ip:
            addresses[(ip, key.port)] = key
    listeners = tuple(info for info, _ in (listener_builders[k] for k in sorted(listener_builders)))
    return RouteTables(gateways, services, addresses, listeners, tls=compile_tls_tables(analysis))


class RouteCompiler:
    """Memoises compilation on the inputs' fingerprint: the waypoint calls ``compile``
    on every store change and gets the same tables back until something routing-relevant
    changes."""

    def __init__(self) -> None:
        self._fingerprint: tuple[object, ...] | None = None
        self._tables: RouteTables | None = None
        self.compilations = 0

    def compile(self, inputs: RoutingInputs) -> RouteTables:
        fingerprint = inputs.fingerprint()
        if self._tables is not None and fingerprint == self._fingerprint:
            return self._tables
        self._tables = compile_analysis(analyze(inputs))
        self._fingerprint = fingerprint
        self.compilations += 1
        return self._tables
