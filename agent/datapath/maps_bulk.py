"""Many services' map entries at once: packed into one buffer per map, written with
BPF_MAP_UPDATE_BATCH (and freed with BPF_MAP_DELETE_BATCH), a few bpf(2) calls for a whole
first sync instead of one per entry, and no ctypes object per entry.

The layouts still come from C (agent/datapath/packing.py: a ``Packer`` per BCC
``table.Key``/``table.Leaf``, one ``struct`` call per entry, every other byte zero). The
backends (100,000 at a first sync) are packed a field at a time instead
(``backend_entries``: byte-strided copies from the plan's address and port arrays, no
Python step per backend).

The entries and their order per service are those of ``maps.write_service``: every
service's backends at its fresh generation, then the Maglev tables, then the service
entries (readers never see a count without its backends), then the previous generations
freed. When the kernel refuses part of a batch (a full map), the services not yet complete
go through ``maps.write_service`` one by one, which reports the refused ones and keeps the
others. Maps without a ``map_fd`` (the unit tests' stand-ins) take that path throughout.
"""

from __future__ import annotations

import ctypes
import ipaddress
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from agent.datapath import maps
from agent.datapath.native import (
    BatchError,
    delete_batch,
    delete_elem,
    lookup_batch,
    update_batch,
)
from agent.datapath.packing import Packer, field_at, interleave
from agent.datapath.services import Backends

if TYPE_CHECKING:  # programs imports BCC: loaded on the agent's BCC thread only
    from agent.datapath.programs import Datapath

SPAN = maps.BACKEND_GENERATION_SPAN
CHUNK = 8192  # entries per batch call (Maglev tables: CHUNK_TABLES, 4 KB each)
CHUNK_TABLES = 256
_HIGH_BIT = bytes(b | 0x80 for b in range(256))  # + SPAN on a u16's high byte (little-endian)


class Address(Protocol):
    @property
    def ip(self) -> ipaddress.IPv4Address: ...
    @property
    def port(self) -> int: ...


@dataclass(frozen=True, slots=True)
class ServiceWrite:
    """One service's entries as ``maps.write_service`` takes them."""

    vip: ipaddress.IPv4Address
    port: int
    protocol: int
    backends: Sequence[Address]
    table: Sequence[int]
    affinity_timeout: int
    previous: maps.ServiceSlot | None
    flags: int


@dataclass(frozen=True)
class _Layouts:
    svc: Packer  # the lb_key inside a backend key
    backend_key: Packer
    backend: Packer
    maglev_key: Packer
    services_key: Packer
    service: Packer
    maglev_slots: int  # u32 slots of a Maglev leaf when it is exactly those (else 0)
    maglev_size: int


_LAYOUTS: dict[tuple[Any, ...], _Layouts] = {}


def _layouts(backends: Any, maglev: Any, services: Any) -> _Layouts:
    classes = (backends.Key, backends.Leaf, maglev.Key, maglev.Leaf, services.Key, services.Leaf)
    found = _LAYOUTS.get(classes)
    if found is None:
        key_fields = ("vip", "port", "proto")  # __be32, __be16, __u8
        slots_type = dict(getattr(maglev.Leaf, "_fields_", ())).get("slots")
        exact = (
            sys.byteorder == "little"
            and slots_type is not None
            and getattr(slots_type, "_type_", None) is ctypes.c_uint32
            and maglev.Leaf.slots.offset == 0
            and ctypes.sizeof(slots_type) == ctypes.sizeof(maglev.Leaf)
        )
        found = _Layouts(
            svc=Packer(field_at(backends.Key, "svc")[1], key_fields, network=True),
            backend_key=Packer(backends.Key, ("svc", "index"), {"svc"}),
            backend=Packer(backends.Leaf, ("addr", "port"), network=True),  # __be32, __be16
            maglev_key=Packer(maglev.Key, key_fields, network=True),
            services_key=Packer(services.Key, key_fields, network=True),
            service=Packer(services.Leaf, ("backend_count", "affinity_timeout", "flags")),
            maglev_slots=slots_type._length_ if exact and slots_type is not None else 0,
            maglev_size=ctypes.sizeof(maglev.Leaf),
        )
        # backend_entries writes these fields as whole columns: their widths are fixed.
        if (found.backend_key.widths != [found.svc.size, 4]
                or found.backend.widths != [4, 2]):
            raise TypeError(f"lb_backends_v1 layout changed: key fields "
                            f"{found.backend_key.widths}, value fields {found.backend.widths}")
        _LAYOUTS[classes] = found
    return found


def write_services(dp: Datapath, writes: Sequence[ServiceWrite]) -> list[Any]:
    """Write every service of ``writes``; per write its new ``ServiceSlot``, or the
    exception that refused it (as ``maps.write_service`` raises it)."""
    backends, maglev, services = (dp.table(n) for n in maps.SERVICE_TABLES)
    if getattr(backends, "map_fd", None) is None or not writes:
        return _one_by_one(dp, writes)
    layout = _layouts(backends, maglev, services)
    generation = [0 if w.previous is None else 1 - w.previous.generation for w in writes]
    try:
        _put_backends(backends.map_fd, layout, writes, generation)
        _put_maglev(maglev, layout, writes, generation)
        done = _put_services(services.map_fd, layout, writes)
    except BatchError:
        done = 0  # only a service's own entry completes it: the rest go one by one
    results: list[Any] = [
        maps.ServiceSlot(generation[i], len(writes[i].backends)) for i in range(done)
    ]
    _free_previous(backends.map_fd, layout, writes[:done])
    return results + _one_by_one(dp, writes[done:])


Ident = tuple[ipaddress.IPv4Address, int, int]


def read_service_slots(dp: Datapath) -> dict[Ident, maps.ServiceSlot]:
    """``maps.read_service_slots`` in two batch reads (the services, then the backends' keys
    for the generation each service is at) instead of two lookups per service."""
    backends, maglev, services = (dp.table(n) for n in maps.SERVICE_TABLES)
    if getattr(services, "map_fd", None) is None:
        return maps.read_service_slots(dp)
    layout = _layouts(backends, maglev, services)
    keys, values, _ = lookup_batch(services.map_fd, layout.services_key.size,
                                       layout.service.size, CHUNK)
    # A service is at generation 1 when its backends start at index SPAN (as the probe of
    # maps.read_service_slots finds).
    bkeys, _, _ = lookup_batch(backends.map_fd, layout.backend_key.size, layout.backend.size,
                               CHUNK)
    svc_unpack = layout.svc.struct.unpack
    second = {svc_unpack(svc) for svc, index in layout.backend_key.struct.iter_unpack(bkeys)
              if index == SPAN}
    slots: dict[Ident, maps.ServiceSlot] = {}
    unpack_key = layout.services_key.struct.iter_unpack
    for key, (backend_count, _, _) in zip(unpack_key(keys),
                                          layout.service.struct.iter_unpack(values),
                                          strict=True):
        vip, port, proto = key
        generation = 1 if backend_count and key in second else 0
        slots[(ipaddress.IPv4Address(vip), port, proto)] = maps.ServiceSlot(generation,
                                                                            backend_count)
    return slots


def _one_by_one(dp: Datapath, writes: Sequence[ServiceWrite]) -> list[Any]:
    results: list[Any] = []
    for w in writes:
        try:
            results.append(maps.write_service(
                dp, w.vip, w.port, w.protocol, [(b.ip, b.port) for b in w.backends], w.table,
                w.affinity_timeout, w.previous, w.flags,
            ))
        except Exception as err:  # the caller tells a refusal from a bug
            results.append(err)
    return results


def _lb_key(packer: Packer, w: ServiceWrite) -> bytes:
    return packer.pack(int(w.vip), w.port, w.protocol)


class _Batch:
    """Fills packed key and value buffers and writes each full chunk in one call."""

    def __init__(self, fd: int, key_size: int, value_size: int, total: int, chunk: int) -> None:
        self.fd, self.key_size, self.value_size = fd, key_size, value_size
        self.chunk = min(chunk, total)
        self.keys = bytearray(self.chunk * key_size)
        self.values = bytearray(self.chunk * value_size)
        self.count = 0

    def flush(self) -> None:
        if self.count:
            update_batch(self.fd, self.keys, self.values, self.count)
            self.count = 0


def _put_backends(
    fd: int, layout: _Layouts, writes: Sequence[ServiceWrite], generation: list[int]
) -> None:
    keys, values, total = backend_entries(layout, writes, generation)
    key_size, value_size = layout.backend_key.size, layout.backend.size
    for start in range(0, total, CHUNK):
        end = min(start + CHUNK, total)
        update_batch(fd, keys[start * key_size:end * key_size],
                     values[start * value_size:end * value_size], end - start)


def backend_entries(
    layout: _Layouts, writes: Sequence[ServiceWrite], generation: Sequence[int],
    counts: Sequence[int] | None = None,
) -> tuple[bytearray, bytearray, int]:
    """The packed backend keys and values of ``writes`` (each at ``generation[i] * SPAN``),
    one service's after the other, and how many: built a field at a time from the
    services' address and port arrays (``Backends``) with byte-strided copies, no Python
    step per backend. ``counts``: only the keys of that many backends per service (the
    values then stay empty)."""
    svcs, indices = [], []
    ips, ports = array("I"), array("H")
    for i, (w, gen) in enumerate(zip(writes, generation, strict=True)):
        n = len(w.backends) if counts is None else counts[i]
        if not n:
            continue
        if n > SPAN:
            raise ValueError(f"{w.vip}:{w.port}: {n} backends, at most {SPAN} fit a generation")
        svcs.append(_lb_key(layout.svc, w) * n)
        indices.append(_indices(gen)[:n * 4])
        if counts is None:
            w_ips, w_ports = _arrays(w.backends)
            ips += w_ips
            ports += w_ports
    total = sum(len(part) for part in indices) // 4
    key = layout.backend_key
    keys = interleave(key.size, total, [(key.offsets[0], layout.svc.size, b"".join(svcs)),
                                        (key.offsets[1], 4, b"".join(indices))])
    if counts is not None:
        return keys, bytearray(), total
    if sys.byteorder == "little":  # the values are network order (__be32, __be16)
        ips.byteswap()
        ports.byteswap()
    value = layout.backend
    values = interleave(value.size, total, [(value.offsets[0], 4, ips.tobytes()),
                                            (value.offsets[1], 2, ports.tobytes())])
    return keys, values, total


_INDICES: dict[int, bytes] = {}


def _indices(generation: int) -> bytes:
    """The u32 backend indices of a generation (native order), for slicing."""
    found = _INDICES.get(generation)
    if found is None:
        base = generation * SPAN
        found = _INDICES[generation] = array("I", range(base, base + SPAN)).tobytes()
    return found


def _arrays(backends: Sequence[Address]) -> tuple[array, array]:
    """A service's backend addresses ("I", as ints) and ports ("H")."""
    if isinstance(backends, Backends):
        return backends.ips, backends.ports
    return array("I", [int(b.ip) for b in backends]), array("H", [b.port for b in backends])


def _put_maglev(
    maglev: Any, layout: _Layouts, writes: Sequence[ServiceWrite], generation: list[int]
) -> None:
    served = [(w, gen) for w, gen in zip(writes, generation, strict=True) if w.backends]
    for w in writes:
        if not w.backends:  # no table: clients are refused at once (as write_service does)
            # A table not there (ENOENT) is gone already; any other errno raises.
            delete_elem(maglev.map_fd, bytearray(_lb_key(layout.maglev_key, w)))
    for start in range(0, len(served), CHUNK_TABLES):
        part = served[start:start + CHUNK_TABLES]
        batch = _Batch(maglev.map_fd, layout.maglev_key.size, layout.maglev_size,
                       len(part), CHUNK_TABLES)
        for n, (w, _) in enumerate(part):
            layout.maglev_key.pack_into(batch.keys, n * layout.maglev_key.size,
                                        int(w.vip), w.port, w.protocol)
        if not _maglev_images(batch.values, layout, part):
            for n, (w, gen) in enumerate(part):
                leaf = maps._maglev_leaf(maglev, w.table, gen * SPAN)  # noqa: SLF001
                at = n * layout.maglev_size
                batch.values[at:at + layout.maglev_size] = bytes(leaf)
        batch.count = len(part)
        batch.flush()


def _maglev_images(
    out: bytearray, layout: _Layouts, part: Sequence[tuple[ServiceWrite, int]]
) -> bool:
    """The leaves as u32 little-endian images of the u16 tables, built with byte-strided
    copies (no Python int per slot); False when a table does not fit that (the caller
    then fills each leaf through ctypes)."""
    slots = layout.maglev_slots
    low, high = [], []
    for w, gen in part:
        table = w.table[:]
        if not (isinstance(table, array) and table.typecode == "H"):
            table = array("H", table)
        # Indices + SPAN stay below 2**16 while a service has at most SPAN backends.
        if not slots or len(table) != slots or len(w.backends) > SPAN:
            return False
        raw = table.tobytes()
        low.append(raw[0::2])
        high.append(raw[1::2].translate(_HIGH_BIT) if gen else raw[1::2])
    out[0::4] = b"".join(low)
    out[1::4] = b"".join(high)
    return True


def _put_services(fd: int, layout: _Layouts, writes: Sequence[ServiceWrite]) -> int:
    """The services' own entries; how many were written (all, or up to a refusal)."""
    key_pack, key_size = layout.services_key.pack_into, layout.services_key.size
    value_pack, value_size = layout.service.pack_into, layout.service.size
    for start in range(0, len(writes), CHUNK):
        part = writes[start:start + CHUNK]
        batch = _Batch(fd, key_size, value_size, len(part), CHUNK)
        for n, w in enumerate(part):
            key_pack(batch.keys, n * key_size, int(w.vip), w.port, w.protocol)
            value_pack(batch.values, n * value_size, len(w.backends), w.affinity_timeout,
                       w.flags)
        batch.count = len(part)
        try:
            batch.flush()
        except BatchError as err:
            return start + err.written
    return len(writes)


def _free_previous(fd: int, layout: _Layouts, writes: Sequence[ServiceWrite]) -> None:
    """Delete the previous generation's backends of these services. An entry already gone
    is skipped (as ``maps._delete`` ignores it) and the batch goes on after it."""
    previous = [w for w in writes if w.previous is not None and w.previous.backend_count]
    keys, _, total = backend_entries(
        layout, previous, [w.previous.generation for w in previous if w.previous],
        [w.previous.backend_count for w in previous if w.previous])
    delete_keys(fd, keys, total, layout.backend_key.size)


def delete_keys(fd: int, keys: bytes | bytearray, total: int, key_size: int) -> None:
    """Delete ``total`` packed keys, CHUNK per call; keys not there are skipped."""
    for start in range(0, total, CHUNK):
        end = min(start + CHUNK, total)
        _delete_all(fd, bytearray(keys[start * key_size:end * key_size]), end - start,
                    key_size)


def _delete_all(fd: int, keys: bytearray, count: int, key_size: int) -> None:
    start = 0
    while start < count:
        try:
            delete_batch(fd, keys[start * key_size:] if start else keys, count - start)
            return
        except BatchError as err:
            start += err.written + 1  # that one was not there: skip it
