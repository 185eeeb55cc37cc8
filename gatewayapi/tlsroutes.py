"""TLSRoute (v1, GEP-2643): its rule, hostname conflicts between TLSRoutes, and the
tables the waypoint chooses a route from by the ClientHello's server name (SNI).

Spec: a TLSRoute attaches only to listeners of protocol TLS (any other kind of listener
does not admit it: NotAllowedByListeners, as the upstream conformance tests expect), in
mode Passthrough (core) or Terminate (extended, ``TLSRouteModeTerminate``; the Gateway
decrypts and forwards the plaintext TCP stream). Its hostnames must intersect the
listener's (NoMatchingListenerHostname); only the intersection is served. Its one rule's
backendRefs are resolved as HTTPRoute's (BackendNotFound, RefNotPermitted without a
ReferenceGrant from TLSRoutes, InvalidKind): the route stays Accepted, and a connection
chosen for an invalid backend is refused, in proportion to its weight.

Conflicts: when TLSRoutes on one listener claim the same hostname, the oldest route
(creationTimestamp, then "{namespace}/{name}") keeps it, the Gateway API's precedence for
conflicting routes. A route left with no hostname on any listener of a parentRef reports
Accepted False with reason ``HostnameConflict`` (the spec names none; this one says what
happened).

Selection by SNI: the most specific listener on the port (exact hostname, the longest
wildcard, then the listener without hostname), then on that listener the route with the
exact hostname, then the longest wildcard. No SNI, or no match: no route (the waypoint
closes the connection).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent.model.gateway import TLSMode
from agent.model.tlsroute import TLSRoute
from gatewayapi.attach import ListenerAttachment
from gatewayapi.backends import Grants, ServiceIndex, WeightedChoice, resolve
from gatewayapi.hostnames import is_wildcard, wildcard_suffixes
from gatewayapi.precedence import RouteOrder, route_order
from gatewayapi.rules import CompiledBackend, CompiledRule, RuleReport
from gatewayapi.types import NO_TIMEOUTS, GatewayParent, RuleRef

if TYPE_CHECKING:
    from gatewayapi.analysis import Analysis, RouteReport

CONFLICT_REASON = "HostnameConflict"
TLS_MODES = (TLSMode.PASSTHROUGH, TLSMode.TERMINATE)
"""The TLS listener modes the waypoint serves TLSRoutes on."""


# --- the rule -------------------------------------------------------------------------


def compile_tls_route_rules(
    route: TLSRoute, services: ServiceIndex, grants: Grants
) -> list[RuleReport]:
    reports = []
    meta = route.metadata
    for index, rule in enumerate(route.spec.rules):
        report = RuleReport(index=index, rule=None)
        backends = []
        for ref in rule.backend_refs:
            found = resolve(
                group=ref.group,
                kind=ref.kind,
                name=ref.name,
                namespace=ref.namespace,
                port=ref.port,
                route_namespace=meta.namespace,
                services=services,
                grants=grants,
                route_kind=route.kind,
            )
            if found.problem is not None:
                report.refs.append((found.problem, found.message))
            backends.append(CompiledBackend(found.target, ref.weight, (), found.message))
        report.rule = CompiledRule(
            ref=RuleRef(meta.namespace, meta.name, index, rule.name, route.kind),
            matches=(),
            filters=(),
            backends=tuple(backends),
            choice=WeightedChoice([b.weight for b in backends]),
            timeouts=NO_TIMEOUTS,
            retry=None,
            prefix=None,
        )
        reports.append(report)
    return reports


# --- conflicts ------------------------------------------------------------------------


def _order(report: RouteReport) -> RouteOrder:
    meta = report.route.metadata
    return route_order(meta.creation_timestamp, meta.namespace, meta.name)


def resolve_tls_conflicts(reports: list[RouteReport]) -> None:
    """Take from younger TLSRoutes the hostnames an older one already serves on the same
    listener (in place, on ``reports`` as ``analyze`` builds them)."""
    tls = sorted((r for r in reports if isinstance(r.route, TLSRoute)), key=_order)
    claimed: dict[tuple[str, str, str], dict[str, RouteReport]] = {}
    for report in tls:
        for parent in report.parents:
            lost: list[str] = []
            for i, attachment in enumerate(list(parent.listeners)):
                gw = attachment.state.gateway.metadata
                key_ = (gw.namespace, gw.name, attachment.state.listener.name)
                slot = claimed.setdefault(key_, {})
                kept = []
                for pattern, key in attachment.hostnames:
                    owner = slot.get(pattern or "")
                    if owner is not None and owner is not report:
                        meta = owner.route.metadata
                        lost.append(f"{pattern} (TLSRoute {meta.namespace}/{meta.name})")
                        continue
                    slot[pattern or ""] = report
                    kept.append((pattern, key))
                parent.listeners[i] = ListenerAttachment(attachment.state, tuple(kept))
            parent.listeners = [a for a in parent.listeners if a.hostnames]
            if lost and not parent.attached:
                parent.reason = CONFLICT_REASON
                parent.message = (
                    "every hostname is served on its listeners by an older route: "
                    + ", ".join(lost)
                )


# --- tables ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TlsListener:
    gateway: tuple[str, str]
    name: str
    hostname: str | None
    mode: TLSMode
    certificates: tuple[tuple[str, str], ...] = ()
    """(namespace, name) of the Secrets a Terminate listener serves."""


@dataclass(slots=True)
class TlsListenerTable:
    listener: TlsListener
    exact: dict[str, CompiledRule] = field(default_factory=dict)
    wild: dict[str, CompiledRule] = field(default_factory=dict)
    """By the wildcard's suffix without "*." ("example.com" for "*.example.com")."""

    def route_for(self, server_name: str) -> CompiledRule | None:
        rule = self.exact.get(server_name)
        if rule is not None:
            return rule
        for suffix in wildcard_suffixes(server_name):
            rule = self.wild.get(suffix)
            if rule is not None:
                return rule
        return None


@dataclass(frozen=True, slots=True)
class TlsChoice:
    """What a connection's SNI selected: the listener, and its route (None: none)."""

    listener: TlsListener
    rule: CompiledRule | None


class TlsPortTable:
    """The TLS listeners of one Gateway on one port."""

    __slots__ = ("parent", "exact", "wild", "any")

    def __init__(self, parent: GatewayParent, tables: list[TlsListenerTable]) -> None:
        self.parent = parent
        self.exact: dict[str, TlsListenerTable] = {}
        self.wild: dict[str, TlsListenerTable] = {}
        self.any: TlsListenerTable | None = None
        for table in tables:
            hostname = table.listener.hostname
            if hostname is None:
                self.any = table
            elif is_wildcard(hostname):
                self.wild[hostname[2:]] = table
            else:
                self.exact[hostname] = table

    def select(self, server_name: str | None) -> TlsChoice | None:
        """The listener and route for a ClientHello's server name; None when no listener
        takes it (with no server name, only a listener without hostname can)."""
        name = (server_name or "").lower().rstrip(".")
        table = self.exact.get(name) if name else None
        if table is None and name:
            table = next(
                (self.wild[s] for s in wildcard_suffixes(name) if s in self.wild), None
            )
        table = table or self.any
        if table is None:
            return None
        return TlsChoice(table.listener, table.route_for(name) if name else None)

    @property
    def listeners(self) -> list[TlsListener]:
        tables = [*self.exact.values(), *self.wild.values(), *([self.any] if self.any else [])]
        return [t.listener for t in tables]


def compile_tls_tables(analysis: Analysis) -> dict[GatewayParent, TlsPortTable]:
    """The TLS listeners the waypoint serves (programmed ones, of modes in TLS_MODES), each
    with the hostnames of the TLSRoutes Accepted there."""
    tables: dict[tuple[str, str, str], TlsListenerTable] = {}
    for (ns, name), gateway in analysis.gateways.items():
        for state in gateway.listeners:
            listener = state.listener
            if listener.protocol.value != "TLS" or listener.tls is None or not state.programmed:
                continue
            if listener.tls.mode not in TLS_MODES:
                continue
            certificates = tuple(
                (ref.namespace or ns, ref.name) for ref in listener.tls.certificate_refs
            )
            info = TlsListener((ns, name), listener.name, listener.hostname, listener.tls.mode,
                               certificates if listener.tls.mode is TLSMode.TERMINATE else ())
            tables[(ns, name, listener.name)] = TlsListenerTable(info)
    for report in analysis.routes:
        if not isinstance(report.route, TLSRoute) or not report.served_rules:
            continue
        rule = report.served_rules[0].rule
        assert rule is not None
        for parent in report.parents:
            if not report.accepted(parent):
                continue
            for attachment in parent.listeners:
                gw = attachment.state.gateway.metadata
                table = tables.get((gw.namespace, gw.name, attachment.state.listener.name))
                if table is None:
                    continue
                for pattern, _ in attachment.hostnames:
                    if pattern is None:
                        continue
                    if is_wildcard(pattern):
                        table.wild.setdefault(pattern[2:], rule)
                    else:
                        table.exact.setdefault(pattern, rule)
    by_port: dict[GatewayParent, list[TlsListenerTable]] = {}
    for (ns, name, _), table in sorted(tables.items()):
        port = next(
            s.listener.port
            for s in analysis.gateways[(ns, name)].listeners
            if s.listener.name == table.listener.name
        )
        by_port.setdefault(GatewayParent(ns, name, port), []).append(table)
    return {parent: TlsPortTable(parent, found) for parent, found in by_port.items()}
