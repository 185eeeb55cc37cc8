"""The service plan's value types (keys, backends, entries, plans); ``services`` makes them."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import overload

from agent.model.frozen import EMPTY

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


class Backends(Sequence[Backend]):
    """A service's backends in 6 bytes each (``ips``: "I" array of addresses as ints,
    ``ports``: "H"), made into ``Backend`` objects only when read: a first sync plans
    100,000, and a Backend with its IPv4Address costs ~0.7 µs and ~110 bytes. Compares
    equal to a sequence of the same Backends (a tuple of them, as tests write it)."""

    __slots__ = ("ips", "ports")

    def __init__(self, backends: Iterable[Backend] = ()) -> None:
        listed = list(backends)
        self.ips = array("I", [int(b.ip) for b in listed])
        self.ports = array("H", [b.port for b in listed])

    @classmethod
    def of(cls, ips: array, ports: array) -> Backends:
        """Wraps the arrays (not copied)."""
        backends = cls.__new__(cls)
        backends.ips, backends.ports = ips, ports
        return backends

    def __len__(self) -> int:
        return len(self.ips)

    @overload
    def __getitem__(self, index: int) -> Backend: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Backend]: ...

    def __getitem__(self, index: int | slice) -> Backend | Sequence[Backend]:
        if isinstance(index, slice):
            return Backends.of(self.ips[index], self.ports[index])
        return Backend(IPv4Address(self.ips[index]), self.ports[index])

    def __iter__(self) -> Iterator[Backend]:
        for ip, port in zip(self.ips, self.ports, strict=True):
            yield Backend(IPv4Address(ip), port)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Backends):
            return self.ips == other.ips and self.ports == other.ports
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))  # as the equal tuple's

    def __repr__(self) -> str:
        return f"Backends({list(self)!r})"


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    """Everything the datapath needs for one ServiceKey.

    ``backends`` is sorted (a ``Backends`` when planned here); empty means the Service has
    no usable endpoints and clients are answered at once. ``table`` is ``maglev_table`` over
    ``str(backend)`` of ``backends`` (entries index ``backends``), or ``()`` without
    backends. ``affinity_timeout`` is the ClientIP affinity in seconds, 0 when affinity is
    off. ``flags``: ``LB_F_EXTERNAL`` (+ ``LB_F_LOCAL``) on a NodePort/LoadBalancer entry
    (agent.datapath.external), else 0.
    """

    key: ServiceKey
    namespace: str
    name: str
    port_name: str
    backends: Sequence[Backend]
    affinity_timeout: int
    table: Sequence[int]  # a CompactTable
    flags: int = 0


@dataclass(frozen=True, slots=True)
class NodeSite:
    """Where this node is: its InternalIP (the nodePort address) and its pod CIDR (which
    backends are local, for externalTrafficPolicy Local). Either may be unknown (None)."""

    address: IPv4Address | None = None
    pod_cidr: IPv4Network | None = None


@dataclass(frozen=True, slots=True)
class ServicePlan:
    """The whole desired service state. ``errors`` are notes on what could not be served.

    A plan kept up to date by ``service_state.ServiceState`` also says how it differs from
    the one before: it is ``generation``, and equals plan ``base`` except at the keys in
    ``changed`` (0: unknown). Equality ignores these."""

    entries: Mapping[ServiceKey, ServiceEntry] = EMPTY
    errors: tuple[str, ...] = ()
    site: NodeSite | None = None  # the node the external entries were planned for
    generation: int = field(default=0, compare=False)
    base: int = field(default=0, compare=False)
    changed: frozenset[ServiceKey] = field(default=frozenset(), compare=False)


@dataclass(frozen=True, slots=True)
class PlanDiff:
    """Entries to write (new or changed) and keys to remove, each sorted by key."""

    upsert: tuple[ServiceEntry, ...] = ()
    delete: tuple[ServiceKey, ...] = ()
