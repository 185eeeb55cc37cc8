"""The service load-balancing plan: Services and EndpointSlices in, datapath entries out.

This is the one place where Kubernetes service semantics become what the datapath
serves. It is pure: ``plan_services`` turns model objects into a ``ServicePlan`` with one
``ServiceEntry`` per (ClusterIP, port, protocol), and ``diff_plans`` says which entries
a map writer must upsert or delete to go from one plan to the next. Nothing here touches
BPF maps, the store or the clock.

Semantics follow kube-proxy:

- Headless Services (``clusterIP: None``) and Services without a ClusterIP get no entries.
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

Cost: a Maglev table is about 0.25 ms to build, so a first plan of 10,000 services with
endpoints takes about 2.5 s of Maglev alone. Replanning with ``previous`` reuses the table of
every entry whose backends are unchanged. The agent does not replan: ``service_state``
replans one Service per change (bench/results/replan-2026-12-05.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address, ip_address
from socket import AF_INET, inet_pton

from agent.datapath.maglev import CompactTable, maglev_slots
from agent.model.core import AddressType, EndpointSlice, Service, ServicePort
from agent.model.frozen import EMPTY, FrozenMap

PROTOCOLS: Mapping[str, int] = {"TCP": 6, "UDP": 17, "SCTP": 132}
"""IP protocol numbers of the L4 protocols a Service port may name."""

_PROTOCOL_NAMES = {number: name for name, number in PROTOCOLS.items()}


@dataclass(frozen=True, order=True, slots=True)
class ServiceKey:
    """What a client connects to: a ClusterIP, a port and an IP protocol number."""

    vip: IPv4Address
    port: int
    protocol: int
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Keys are hashed in every plan and apply pass over all services; IPv4Address
        # hashes through hex() in Python, so the default hash was most of a pass's time.
        object.__setattr__(self, "_hash", hash((int(self.vip), self.port, self.protocol)))

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        protocol = _PROTOCOL_NAMES.get(self.protocol, str(self.protocol))
        return f"{self.vip}:{self.port}/{protocol}"


@dataclass(frozen=True, order=True, slots=True)
class Backend:
    """Where a connection goes. Orders by (ip, port); ``str()`` is its Maglev name."""

    ip: IPv4Address
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    """Everything the datapath needs for one ServiceKey.

    ``backends`` is sorted; empty means the Service has no usable endpoints and clients are
    answered at once. ``table`` is ``maglev_table`` over ``str(backend)`` of ``backends``
    (entries index ``backends``), or ``()`` without backends. ``affinity_timeout`` is the
    ClientIP affinity in seconds, 0 when affinity is off.
    """

    key: ServiceKey
    namespace: str
    name: str
    port_name: str
    backends: tuple[Backend, ...]
    affinity_timeout: int
    table: Sequence[int]  # a CompactTable


@dataclass(frozen=True, slots=True)
class ServicePlan:
    """The whole desired service state. ``errors`` are notes on what could not be served.

    A plan kept up to date by ``service_state.ServiceState`` also says how it differs from
    the one before: it is ``generation``, and equals plan ``base`` except at the keys in
    ``changed`` (0: unknown). Equality ignores these."""

    entries: Mapping[ServiceKey, ServiceEntry] = EMPTY
    errors: tuple[str, ...] = ()
    generation: int = field(default=0, compare=False)
    base: int = field(default=0, compare=False)
    changed: frozenset[ServiceKey] = field(default=frozenset(), compare=False)


@dataclass(frozen=True, slots=True)
class PlanDiff:
    """Entries to write (new or changed) and keys to remove, each sorted by key."""

    upsert: tuple[ServiceEntry, ...] = ()
    delete: tuple[ServiceKey, ...] = ()


def plan_services(
    services: Sequence[Service],
    slices: Sequence[EndpointSlice],
    *,
    previous: ServicePlan | None = None,
) -> ServicePlan:
    """Plan every ClusterIP service port (see the module docstring for the rules).

    The result does not depend on the order of ``services`` or ``slices``. If two Services
    claim the same ClusterIP, port and protocol, the first by namespace/name wins and the
    other is noted in ``errors``. ``previous`` only saves work: an entry whose backends are
    unchanged reuses its Maglev table instead of building it again.
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
        wanted = service_entries(service, by_service.get((meta.namespace, meta.name), ()), earlier)
        errors.extend(wanted.errors)
        for entry in wanted.entries:
            if entry.key in entries:
                errors.append(conflict_error(service, entry.key, entries[entry.key]))
                continue
            entries[entry.key] = entry
    return ServicePlan(entries=FrozenMap(entries), errors=tuple(errors))


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
) -> ServiceEntries:
    """One Service's entries from its own EndpointSlices (``slices``: those labelled with its
    name, in its namespace). ``earlier`` only saves work (see ``plan_services``)."""
    spec, meta = service.spec, service.metadata
    if spec.headless or spec.cluster_ip is None:
        return ServiceEntries()
    where = f"Service {meta.namespace}/{meta.name}"
    vip = _address(spec.cluster_ip)
    if not isinstance(vip, IPv4Address):
        note = f"{where}: ClusterIP {vip} is IPv6; only IPv4 is load-balanced"
        return ServiceEntries((), (note,))
    errors: list[str] = []
    usable = _ipv4_slices(slices, where, errors)
    entries = []
    for port in spec.ports:
        key = ServiceKey(vip, port.port, PROTOCOLS[port.protocol])
        backends = _backends(port, usable)
        entries.append(
            ServiceEntry(
                key=key,
                namespace=meta.namespace,
                name=meta.name,
                port_name=port.name or "",
                backends=backends,
                affinity_timeout=spec.affinity_timeout_seconds or 0,
                table=_table(backends, earlier.get(key)),
            )
        )
    return ServiceEntries(tuple(entries), tuple(errors))


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
    slices: Iterable[EndpointSlice], where: str, errors: list[str]
) -> list[EndpointSlice]:
    """The IPv4 slices; one note per address type skipped."""
    usable, skipped = [], set()
    for endpoint_slice in slices:
        if endpoint_slice.address_type is AddressType.IPV4:
            usable.append(endpoint_slice)
        else:
            skipped.add(endpoint_slice.address_type)
    for address_type in sorted(skipped):
        errors.append(f"{where}: {address_type} EndpointSlices ignored; only IPv4 is load-balanced")
    return usable


def _backends(port: ServicePort, slices: Iterable[EndpointSlice]) -> tuple[Backend, ...]:
    """Ready endpoints of the matching slice ports, else serving terminating ones."""
    name = port.name or ""
    ready: set[tuple[str, int]] = set()
    draining: set[tuple[str, int]] = set()
    for endpoint_slice in slices:
        number = next(
            (
                p.port
                for p in endpoint_slice.ports
                if p.name == name and p.protocol == port.protocol
            ),
            None,
        )
        if number is None:  # no such port, or a port without a number (kube-proxy skips it)
            continue
        for endpoint in endpoint_slice.endpoints:
            conditions = endpoint.conditions
            if conditions.is_ready:
                ready.add((endpoint.addresses[0], number))
            elif conditions.is_serving and conditions.is_terminating:
                draining.add((endpoint.addresses[0], number))
    chosen = [Backend(_ipv4(address), number) for address, number in ready or draining]
    chosen.sort(key=lambda b: (int(b.ip), b.port))
    return tuple(chosen)


@lru_cache(maxsize=1 << 16)
def _address(text: str) -> IPv4Address | IPv6Address:
    """Parse an address the model already validated. Memoised: replanning sees the same
    addresses again and again, and parsing was the largest cost of a replan."""
    return ip_address(text)


def _ipv4(text: str) -> IPv4Address:
    """An IPv4 EndpointSlice address (validated by the model). From packed bytes: ten times
    faster than parsing the text, and 100,000 endpoints outgrow ``_address``'s memo."""
    try:
        return IPv4Address(inet_pton(AF_INET, text))
    except OSError:
        raise AssertionError(f"{text} in an IPv4 EndpointSlice") from None


def _table(backends: tuple[Backend, ...], earlier: ServiceEntry | None) -> Sequence[int]:
    if earlier is not None and earlier.backends == backends:
        return earlier.table
    return CompactTable.of(maglev_slots([str(backend) for backend in backends]))
