"""TCPRoute and UDPRoute in the kernel (pure): each (Gateway address, listener port,
protocol) a route serves becomes one service entry, written and looked up exactly as a
Service's (``lb_services_v1`` + a Maglev table), so pods reach it as a VIP and, flagged
``LB_F_EXTERNAL``, the uplink serves it from outside as it serves LoadBalancer addresses
(bpf/lib/nodeport.h). No waypoint: these keys are never in ``l7_keys``.

Which listener is served by which route, with which weighted backendRefs, is
``gatewayapi.l4routes`` (the same analysis the status comes from). Weights: a backendRef's
weight is shared evenly by its Service port's endpoints (ready ones, else serving
terminating ones, as for a Service), and the Maglev table gives each endpoint a number of
slots proportional to its share (``maglev.weighted_maglev_slots``: within one slot of
exact, 1/1021 of the connections). An endpoint listed by two backendRefs has both shares.

Refusals keep their weight, as the spec asks ("connection rejections must respect
weight"): an invalid backendRef (status ResolvedRefs False), one whose Service has no
endpoint, or whose port has another protocol than the listener (with a note) gets slots
holding ``len(backends)``, an index with no backend, which the kernel refuses as it refuses
a Service without endpoints (a drop record, SERVICE_BACKEND_NOT_FOUND; the client gets no
reset: its attempt times out). With no endpoint at all the entry has no
backends: every connection is refused at once.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from ipaddress import IPv4Address

from agent.datapath.flags import LB_F_EXTERNAL
from agent.datapath.l7_needs import gateway_addresses
from agent.datapath.maglev import CompactTable, weighted_maglev_slots
from agent.datapath.services import (
    PROTOCOLS,
    Backend,
    Backends,
    ServiceEntry,
    ServiceKey,
    direct_backends,
)
from agent.datapath.view import ClusterView
from agent.model.core import EndpointSlice
from agent.model.frozen import EMPTY


@dataclass(frozen=True)
class RouteEntries:
    """The entries of the listeners TCPRoutes and UDPRoutes serve, and notes on what
    could not be served. ``routes``: which route serves each key (for flows)."""

    entries: Mapping[ServiceKey, ServiceEntry] = EMPTY
    routes: Mapping[ServiceKey, tuple[str, str, str]] = EMPTY
    errors: tuple[str, ...] = ()


def plan_route_entries(view: ClusterView) -> RouteEntries:
    """The kernel entries for every TCP and UDP listener a route serves (module docstring)."""
    if not (view.tcp_routes or view.udp_routes) or not view.gateways:
        return RouteEntries()
    from gatewayapi import RoutingInputs
    from gatewayapi.analysis import analyze
    from gatewayapi.l4routes import served_l4_listeners

    analysis = analyze(
        RoutingInputs.of(
            gateways=view.gateways,
            gateway_classes=view.gateway_classes,
            services=view.services,
            reference_grants=view.grants,
            namespaces=view.namespaces,
            l4_routes=(*view.tcp_routes, *view.udp_routes),
        )
    )
    addresses: dict[tuple[str, str], list[IPv4Address]] = {}
    for gw, address in gateway_addresses(view.gateways, view.services)[0]:
        addresses.setdefault((gw.metadata.namespace, gw.metadata.name), []).append(address)
    services = {(s.metadata.namespace, s.metadata.name): s for s in view.services}
    slices: dict[tuple[str, str], list[EndpointSlice]] = {}
    for endpoint_slice in view.slices:
        if endpoint_slice.service_name:
            owner = (endpoint_slice.metadata.namespace, endpoint_slice.service_name)
            slices.setdefault(owner, []).append(endpoint_slice)
    entries: dict[ServiceKey, ServiceEntry] = {}
    routes: dict[ServiceKey, tuple[str, str, str]] = {}
    errors: list[str] = []
    for served in served_l4_listeners(analysis.l4_routes):
        protocol = served.protocol.value
        shares: dict[Backend, Fraction] = {}
        rejected = Fraction(served.rejected_weight)
        for weighted in served.backends:
            target = weighted.target
            service = services[(target.namespace, target.name)]
            mine = slices.get((target.namespace, target.name), ())
            port, backends = next(
                (p, b) for p, b in direct_backends(service, mine) if p.port == target.port
            )
            if port.protocol != protocol:
                errors.append(
                    f"{served.route_kind} {'/'.join(served.route)}: Service {target} is "
                    f"{port.protocol}, not {protocol}: its share is refused"
                )
                backends = Backends()
            if not backends:
                rejected += weighted.weight
            for backend in backends:
                share = Fraction(weighted.weight, len(backends))
                shares[backend] = shares.get(backend, Fraction(0)) + share
        entry = _entry(served.gateway, served.listener, shares, rejected)
        for address in addresses.get(served.gateway, ()):
            key = ServiceKey(address, served.port, PROTOCOLS[protocol])
            if key in entries:
                continue  # two listeners of one port: the first by name (they conflict)
            entries[key] = ServiceEntry(
                key, entry.namespace, entry.name, entry.port_name, entry.backends,
                0, entry.table, LB_F_EXTERNAL,
            )
            routes[key] = (served.route_kind, *served.route)
    return RouteEntries(entries, routes, tuple(errors))


REFUSE = "refuse"
"""The Maglev name of the refused share (no "address:port" backend name equals it)."""


def _entry(gateway: tuple[str, str], listener: str, shares: Mapping[Backend, Fraction],
           rejected: Fraction) -> ServiceEntry:
    """An entry (its key set by the caller) with the weighted table over ``shares``, and
    ``rejected`` as slots holding ``len(backends)`` (no backend: the kernel drops)."""
    weighted = sorted((b, w) for b, w in shares.items() if w > 0)
    backends = Backends(b for b, _ in weighted)
    names, weights = [str(b) for b, _ in weighted], [w for _, w in weighted]
    if weighted and rejected > 0:
        names.append(REFUSE)
        weights.append(rejected)
    # The refused share's index is len(weighted), one past the last backend: no backend.
    slots = weighted_maglev_slots(names, weights) if weighted else array("H")
    key = ServiceKey(IPv4Address(0), 0, 0)
    return ServiceEntry(key, gateway[0], gateway[1], listener, backends, 0,
                        CompactTable.of(slots))


def merge(services: Iterable[ServiceEntry], routes: RouteEntries) -> tuple[
        dict[ServiceKey, ServiceEntry], list[str]]:
    """Route entries beside the Services' ones; a Service keeps a key both claim."""
    merged = {entry.key: entry for entry in services}
    notes = []
    for key, entry in routes.entries.items():
        if key in merged:
            held = merged[key]
            notes.append(f"Gateway {entry.namespace}/{entry.name} listener {entry.port_name}: "
                         f"{key} is Service {held.namespace}/{held.name}'s: not served")
            continue
        merged[key] = entry
    return merged, notes
