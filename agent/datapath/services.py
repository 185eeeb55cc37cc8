"""The service load-balancing plan: Services and EndpointSlices in, datapath entries out.

This is the one place where Kubernetes service semantics become what the datapath
serves. It is pure: ``plan_services`` turns model objects into a ``ServicePlan`` with one
``ServiceEntry`` per (ClusterIP, port, protocol), and ``diff_plans`` says which entries
a map writer must upsert or delete to go from one plan to the next (those value types are
in ``service_types``, re-exported here). Nothing here touches BPF maps, the store or the clock.

Semantics follow kube-proxy:

- Headless Services (``clusterIP: None``) and Services without a ClusterIP get no entries
  (the waypoint, which dials endpoints itself, reads theirs from ``direct_backends``).
- A Service's backends come from the EndpointSlices in its namespace labelled
  ``kubernetes.io/service-name: <name>``. A service port takes the slice port with the same
  name ("" for an unnamed port) and protocol; the slice port's number is the backend port,
  so named targetPorts arrive already resolved by the EndpointSlice controller.
- Ready endpoints serve. If a port has none, serving endpoints that are terminating serve
  instead (KEP-1669), so connections still land while a rollout drains; otherwise the
  entry has no backends and the datapath refuses new connections at once.
- An endpoint's addresses are fungible; like kube-proxy we use the first one. The same
  address and port listed by several slices is one backend (ready if any copy is).
- Only IPv4 is load-balanced. IPv6 and FQDN slices, and IPv6 ClusterIPs, are skipped with
  a note in ``ServicePlan.errors``, once per Service.
- ``sessionAffinity: ClientIP`` sets ``affinity_timeout`` (Kubernetes' default 10800 s).

Cost: the Maglev tables of a whole plan are built in one batch (``maglev_tables``: in C, 512
services per call; 10,000 tables take ~0.2 s CPU, of it ~0.14 s the fill), and backends are
kept as compact arrays (``Backends``); a first plan of 10,000 Services with 100,000 endpoints
costs ~0.45 s CPU (bench/control/planprof.py, bench/results/plan-2026-12-05.md). Replanning
with ``previous`` reuses the table of every entry whose backends are unchanged. The agent does
not replan: ``service_state`` replans one Service per change
(bench/results/replan-2026-12-05.md).
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from socket import AF_INET, inet_pton

from agent.datapath.maglev import (
    CompactTable,
    maglev_slots,  # noqa: F401 - bench.control.firstsync wraps it
    maglev_tables,
)
from agent.datapath.service_types import (
    PROTOCOLS,
    Backend,
    Backends,
    NodeSite,
    PlanDiff,
    ServiceEntry,
    ServiceKey,
    ServicePlan,
)
from agent.model.core import AddressType, EndpointSlice, Service, ServicePort, ServiceType
from agent.model.frozen import EMPTY, FrozenMap
from agent.model.gateway_service import looks_like_gateway_service

__all__ = [  # the value types live in service_types; importers take them from here too
    "PROTOCOLS",
    "Backend",
    "Backends",
    "EntriesRequest",
    "NodeSite",
    "PlanDiff",
    "ServiceEntries",
    "ServiceEntry",
    "ServiceKey",
    "ServicePlan",
    "conflict_error",
    "diff_plans",
    "direct_backends",
    "many_service_entries",
    "plan_services",
    "service_entries",
]


def plan_services(
    services: Sequence[Service],
    slices: Sequence[EndpointSlice],
    *,
    previous: ServicePlan | None = None,
    site: NodeSite | None = None,
) -> ServicePlan:
    """Plan every ClusterIP service port (see the module docstring for the rules).

    The result does not depend on the order of ``services`` or ``slices``. If two Services
    claim the same ClusterIP, port and protocol, the first by namespace/name wins and the
    other is noted in ``errors``. ``previous`` only saves work: an entry whose backends are
    unchanged reuses its Maglev table instead of building it again. ``site``: this node, for
    the NodePort and LoadBalancer entries (agent.datapath.external); None plans none.
    """
    by_service: defaultdict[tuple[str, str], list[EndpointSlice]] = defaultdict(list)
    for endpoint_slice in slices:
        if endpoint_slice.service_name:
            owner = (endpoint_slice.metadata.namespace, endpoint_slice.service_name)
            by_service[owner].append(endpoint_slice)

    entries: dict[ServiceKey, ServiceEntry] = {}
    errors: list[str] = []
    earlier = previous.entries if previous is not None else EMPTY
    for service in sorted(services, key=lambda s: (s.metadata.namespace, s.metadata.name)):
        meta = service.metadata
        mine = by_service.get((meta.namespace, meta.name), ())
        wanted = service_entries(service, mine, earlier, site)
        errors.extend(wanted.errors)
        for entry in wanted.entries:
            if entry.key in entries:
                errors.append(conflict_error(service, entry.key, entries[entry.key]))
                continue
            entries[entry.key] = entry
    return ServicePlan(entries=FrozenMap(entries), errors=tuple(errors), site=site)


@dataclass(frozen=True, slots=True)
class ServiceEntries:
    """What one Service asks for, before other Services are considered: an entry per port
    in port order (a key may repeat), and the notes on what it cannot have."""

    entries: tuple[ServiceEntry, ...] = ()
    errors: tuple[str, ...] = ()


def service_entries(
    service: Service,
    slices: Iterable[EndpointSlice],
    earlier: Mapping[ServiceKey, ServiceEntry] = EMPTY,
    site: NodeSite | None = None,
) -> ServiceEntries:
    """One Service's entries from its own EndpointSlices (``slices``: those labelled with its
    name, in its namespace). ``earlier`` only saves work (see ``plan_services``)."""
    return many_service_entries([(service, slices, earlier)], site)[0]


EntriesRequest = tuple[Service, Iterable[EndpointSlice], Mapping[ServiceKey, ServiceEntry]]
"""What ``service_entries`` takes: a Service, its slices, entries that may save work."""


def many_service_entries(
    requests: Sequence[EntriesRequest], site: NodeSite | None = None
) -> list[ServiceEntries]:
    """``service_entries`` of each request, with every new Maglev table built in one batch
    (``maglev_tables``: in C, one call per 512 tables rather than one per table). With a
    ``site``, a NodePort or LoadBalancer Service's external entries follow its own."""
    drafts: list[tuple[Service, list[_Draft], tuple[str, ...]] | ServiceEntries] = []
    ips, ports, counts = array("I"), array("H"), []
    for service, slices, earlier in requests:
        spec = service.spec
        if spec.cluster_ip is None or spec.headless:
            drafts.append(ServiceEntries())
            continue
        vip = _address(spec.cluster_ip)
        if not isinstance(vip, IPv4Address):
            note = f"{_where(service)}: ClusterIP {vip} is IPv6; only IPv4 is load-balanced"
            drafts.append(ServiceEntries((), (note,)))
            continue
        errors: list[str] = []
        usable = _ipv4_slices(slices, service, errors)
        ports_of = []
        for port in spec.ports:
            key = ServiceKey(vip, port.port, PROTOCOLS[port.protocol])
            backends = _backends(port, usable)
            before = None if earlier is EMPTY else earlier.get(key)
            table: Sequence[int] | None = None
            if not backends:
                table = _NO_TABLE
            elif before is not None and before.backends == backends:
                table = before.table
            else:
                ips += backends.ips
                ports += backends.ports
                counts.append(len(backends))
            ports_of.append((key, port.name or "", backends, table))
        drafts.append((service, ports_of, tuple(errors)))
    built = iter(maglev_tables(ips, ports, counts))
    results = []
    for draft in drafts:
        if isinstance(draft, ServiceEntries):
            results.append(draft)
            continue
        service, ports_of, notes = draft
        meta, affinity = service.metadata, service.spec.affinity_timeout_seconds or 0
        entries = tuple(
            ServiceEntry(
                key=key,
                namespace=meta.namespace,
                name=meta.name,
                port_name=port_name,
                backends=backends,
                affinity_timeout=affinity,
                table=CompactTable.of(next(built)) if table is None else table,
            )
            for key, port_name, backends, table in ports_of
        )
        if (site is not None and service.spec.type is not ServiceType.CLUSTER_IP
                and not looks_like_gateway_service(service)):
            # A Gateway's Service has no endpoints: external entries at its address would
            # shadow the Gateway's (the waypoint, l7_needs) and drop every client. Its
            # nodePorts go to the waypoint too (l7_needs.node_port_keys).
            from agent.datapath.external import external_entries  # it builds on this module

            more, more_notes = external_entries(service, entries, site)
            entries, notes = entries + tuple(more), notes + tuple(more_notes)
        results.append(ServiceEntries(entries, notes))
    return results


_Draft = tuple[ServiceKey, str, "Backends", Sequence[int] | None]  # table None: to build
_NO_TABLE = CompactTable()


def conflict_error(service: Service, key: ServiceKey, first: ServiceEntry) -> str:
    """The note for a Service port whose key an earlier Service (or port) already serves."""
    meta = service.metadata
    return (
        f"Service {meta.namespace}/{meta.name}: {key} is already served by "
        f"{first.namespace}/{first.name}"
    )


def diff_plans(old: ServicePlan, new: ServicePlan) -> PlanDiff:
    """What changes between two plans; entries equal in both are left out."""
    upsert = tuple(
        new.entries[key] for key in sorted(new.entries) if old.entries.get(key) != new.entries[key]
    )
    delete = tuple(sorted(key for key in old.entries if key not in new.entries))
    return PlanDiff(upsert=upsert, delete=delete)


def _ipv4_slices(
    slices: Iterable[EndpointSlice], service: Service, errors: list[str]
) -> list[EndpointSlice]:
    """The IPv4 slices; one note per address type skipped."""
    listed = list(slices)
    usable = [s for s in listed if s.address_type is AddressType.IPV4]
    if len(usable) == len(listed):
        return usable
    skipped = {s.address_type for s in listed if s.address_type is not AddressType.IPV4}
    for address_type in sorted(skipped):
        errors.append(
            f"{_where(service)}: {address_type} EndpointSlices ignored; only IPv4 is load-balanced"
        )
    return usable


def direct_backends(
    service: Service, slices: Iterable[EndpointSlice]
) -> list[tuple[ServicePort, Backends]]:
    """Each port's backends by the rules above, whatever the ClusterIP (headless too)."""
    usable = _ipv4_slices(slices, service, [])
    return [(port, _backends(port, usable)) for port in service.spec.ports]


def _where(service: Service) -> str:
    return f"Service {service.metadata.namespace}/{service.metadata.name}"


def _backends(port: ServicePort, slices: Iterable[EndpointSlice]) -> Backends:
    """Ready endpoints of the matching slice ports, else serving terminating ones."""
    name, protocol = port.name or "", port.protocol
    numbered = []
    for endpoint_slice in slices:
        for p in endpoint_slice.ports:
            if p.name == name and p.protocol == protocol:
                # None: a port without a number (kube-proxy skips it)
                if p.port is not None:
                    assert 0 < p.port <= 0xFFFF, f"port {p.port} in {endpoint_slice.metadata.key}"
                    numbered.append((endpoint_slice, p.port))
                break
    # A backend as one int, address << 16 | port: sorts as (address, port), and a set of them
    # is the backends without duplicates (the same one in several slices).
    chosen: set[int] = set()
    try:
        for endpoint_slice, number in numbered:
            chosen.update(
                [
                    _from_bytes(inet_pton(AF_INET, endpoint.addresses[0]), "big") << 16 | number
                    for endpoint in endpoint_slice.endpoints
                    if endpoint.conditions.is_ready
                ]
            )
        if not chosen:  # no ready endpoint: the serving terminating ones (KEP-1669)
            for endpoint_slice, number in numbered:
                chosen.update(
                    [
                        _from_bytes(inet_pton(AF_INET, endpoint.addresses[0]), "big") << 16
                        | number
                        for endpoint in endpoint_slice.endpoints
                        if endpoint.conditions.is_serving and endpoint.conditions.is_terminating
                    ]
                )
    except OSError:
        raise AssertionError(f"a non-IPv4 address in an IPv4 EndpointSlice: {numbered}") from None
    ordered = sorted(chosen)
    return Backends.of(
        array("I", [backend >> 16 for backend in ordered]),
        array("H", [backend & 0xFFFF for backend in ordered]),
    )


def _address(text: str) -> IPv4Address | IPv6Address:
    """Parse an address the model already validated; an IPv4 one from packed bytes (three
    times faster than parsing the text, and most ClusterIPs are IPv4)."""
    try:
        return IPv4Address(inet_pton(AF_INET, text))
    except OSError:
        return ip_address(text)


_from_bytes = int.from_bytes  # IPv4 text -> int from packed bytes: 10x IPv4Address(text)
