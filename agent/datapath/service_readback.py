"""What the pinned service maps already hold, compared with what an agent would write: a
restarted agent rewrites only the services whose entries differ (bulk reads; no per-entry
bpf(2) call, and no Python object per backend unless it differs).

At 10,000 Services and 100,000 backends rewriting all of them cost the restart ~0.2 s CPU
(kernel updates and deletes of 100,000 backends and 40 MB of Maglev tables); reading them
back and comparing costs less (bench/results/restart-writes-2026-12-05.md).

A service is held when its ``lb_services_v1`` entry (backend count, affinity, flags), its
Maglev table (at the generation the table points at) and its backends at that generation
are all exactly what ``maps_bulk.write_services`` would write. Everything else is left to
that writer, which writes the other generation and frees this one. Entries no service can
reach are found on the way and handed back for deletion: backends outside their service's
live range and Maglev tables without a service entry (what an agent killed between a
write's steps leaves). A service's live generation is the one its Maglev table points at.
"""

from __future__ import annotations

import hashlib
import struct
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.datapath import maps
from agent.datapath.maglev import CompactTable
from agent.datapath.maps_bulk import (
    CHUNK,
    CHUNK_TABLES,
    SPAN,
    ServiceWrite,
    _Layouts,
    backend_entries,
    delete_keys,
    interleave,
    layouts,
)
from agent.datapath.native import lookup_batch, lookup_batches

if TYPE_CHECKING:
    from agent.datapath.programs import Datapath


@dataclass(frozen=True)
class Pinned:
    """What the service maps hold, read once when the agent adopts them (on its BCC thread,
    beside the lists): every ``lb_services_v1`` and ``lb_backends_v1`` entry (packed key ->
    packed value) and per Maglev table its generation and a digest of its slots (BLAKE2b,
    128 bits, of the slots less the generation's offset, as 2-byte indices; None for a
    table no writer makes), so the 40 MB of tables at 10,000 services are not held.
    ``orphans``: Maglev keys without a service entry."""

    services: dict[bytes, bytes]
    backends: tuple[bytes, bytes, int]  # packed keys, values, count (a dict of them: 14 MB)
    tables: dict[bytes, tuple[int, bytes | None]]
    orphans: list[bytes]


@dataclass(frozen=True)
class Held:
    """``same``: indices of the writes the maps hold exactly. ``slots``: every service of
    ``lb_services_v1`` (packed key) -> its live generation and backend count. ``strays``:
    packed ``lb_backends_v1`` keys no service reaches; ``orphans``: packed
    ``lb_maglev_v1`` keys without a service."""

    same: frozenset[int]
    slots: dict[bytes, maps.ServiceSlot]
    strays: list[bytes]
    orphans: list[bytes]
    keys: list[bytes]  # each write's packed key


def read(dp: Datapath) -> Pinned | None:
    """None for maps without a ``map_fd`` (the unit tests' stand-ins): nothing to compare."""
    backends, maglev, services = (dp.table(n) for n in maps.SERVICE_TABLES)
    if getattr(services, "map_fd", None) is None:
        return None
    layout = layouts(backends, maglev, services)
    held = _entries(services.map_fd, layout.services_key.size, layout.service.size)
    tables, orphans = _tables(maglev.map_fd, layout, held)
    return Pinned(held, lookup_batch(backends.map_fd, layout.backend_key.size,
                                     layout.backend.size, CHUNK), tables, orphans)


def slots(dp: Datapath, pinned: Pinned) -> dict[bytes, maps.ServiceSlot]:
    """Every service's live generation (the one its Maglev table points at) and count."""
    layout = layouts(*(dp.table(n) for n in maps.SERVICE_TABLES))
    count_of, tables = layout.service.struct.unpack, pinned.tables
    return {k: maps.ServiceSlot(tables[k][0] if k in tables else 0, count_of(v)[0])
            for k, v in pinned.services.items()}


def digest(slots: bytes | bytearray | memoryview) -> bytes:
    """A table's digest: its slots as 2-byte indices (native order, without the
    generation's offset), as ``CompactTable.tobytes`` gives them."""
    return hashlib.blake2b(slots, digest_size=16).digest()


def compare(dp: Datapath, pinned: Pinned, writes: Sequence[ServiceWrite]) -> Held:
    """Compare what ``pinned`` read with ``writes`` (their ``previous`` is not read: the
    maps say where each service is)."""
    backends, maglev, services = (dp.table(n) for n in maps.SERVICE_TABLES)
    layout = layouts(backends, maglev, services)
    key_pack = layout.services_key.pack
    want = {key_pack(int(w.vip), w.port, w.protocol): i for i, w in enumerate(writes)}
    held, tables = pinned.services, pinned.tables
    pack = layout.service.pack
    ok = []
    for key, w in zip(want, writes, strict=True):
        same = held.get(key) == pack(len(w.backends), w.affinity_timeout, w.flags)
        if same:
            table = tables.get(key)
            if w.backends:  # its table, as planned (a table with a stale offset never is)
                same = table is not None and table[1] == digest(_table_bytes(w.table))
            else:  # no table: clients are refused at once
                same = table is None
        ok.append(same)
    live = slots(dp, pinned)
    backend_entries_held = _dict(*pinned.backends, layout.backend_key.size, layout.backend.size)
    strays = _backends(backend_entries_held, layout, writes, want, live, ok)
    return Held(frozenset(i for i, same in enumerate(ok) if same), live, strays,
                pinned.orphans, list(want))


def _table_bytes(table: Sequence[int]) -> bytes:
    if isinstance(table, CompactTable):
        return table.tobytes()
    return array("H", table).tobytes()


def _entries(fd: int, key_size: int, value_size: int) -> dict[bytes, bytes]:
    return _dict(*lookup_batch(fd, key_size, value_size, CHUNK), key_size, value_size)


def _dict(keys: bytes, values: bytes, count: int, key_size: int,
          value_size: int) -> dict[bytes, bytes]:
    record = key_size + value_size
    both = interleave(record, count, [(0, key_size, keys), (key_size, value_size, values)])
    return dict(struct.iter_unpack(f"{key_size}s{value_size}s", both))


_SET_HIGH = bytes(b | 0x80 for b in range(256))
_CLEAR_HIGH = bytes(b & 0x7F for b in range(256))


def _tables(
    fd: int, layout: _Layouts, held: dict[bytes, bytes]
) -> tuple[dict[bytes, tuple[int, bytes | None]], list[bytes]]:
    """Each table's generation (by its first slot) and digest, read CHUNK_TABLES at a time
    (40 MB at 10,000 services: never all at once)."""
    size, key_size, width = layout.maglev_size, layout.maglev_key.size, layout.maglev_slots
    tables: dict[bytes, tuple[int, bytes | None]] = {}
    orphans: list[bytes] = []
    for keys, values, count in lookup_batches(fd, key_size, size, CHUNK_TABLES):
        if not width:  # not the u32 layout this reader knows: never held, rewritten
            for at in range(count):
                key = keys[at * key_size:(at + 1) * key_size]
                if key in held:
                    tables[key] = (0, None)
                else:
                    orphans.append(key)
            continue
        # The u32 slots' bytes, little-endian: an index below 2**16 has zero upper bytes,
        # and generation 1 adds SPAN (0x8000), bit 7 of the second byte, to every slot.
        high = values[1::4]
        flat = high.translate(_CLEAR_HIGH)
        upper, zeros = (values[2::4], values[3::4]), bytes(width)
        small = all(part == bytes(len(part)) for part in upper)
        image = bytearray(2 * width * count)  # the chunk's tables as 2-byte indices
        image[0::2], image[1::2] = values[0::4], flat
        view = memoryview(image)
        for at in range(count):
            key = keys[at * key_size:(at + 1) * key_size]
            if key not in held:
                orphans.append(key)
                continue
            start, end = at * width, (at + 1) * width
            hi = high[start:end]
            gen = hi[0] >> 7
            valid = (hi.translate(_SET_HIGH) if gen else flat[start:end]) == hi and (
                small or all(part[start:end] == zeros for part in upper))
            tables[key] = (gen, digest(view[2 * start:2 * end]) if valid else None)
    return tables, orphans


def _backends(
    held: dict[bytes, bytes], layout: _Layouts, writes: Sequence[ServiceWrite],
    want: dict[bytes, int],
    slots: dict[bytes, maps.ServiceSlot], ok: list[bool],
) -> list[bytes]:
    """Compares every backend entry with what the ``ok`` writes would write at their live
    generation; a write whose backends differ is not ``ok``. Returns the strays."""
    key_size, value_size = layout.backend_key.size, layout.backend.size
    todo = [i for i, same in enumerate(ok) if same]
    keys, values, count = backend_entries(
        layout, [writes[i] for i in todo],
        [slots[_key(layout, writes[i])].generation for i in todo])
    record = key_size + value_size
    both = interleave(record, count, [(0, key_size, keys), (key_size, value_size, values)])
    expected = dict(struct.iter_unpack(f"{key_size}s{value_size}s", both))
    if held == expected:  # a restart after no change: one C-level comparison
        return []
    svc_at, svc_size = layout.backend_key.offsets[0], layout.svc.size
    index_at = layout.backend_key.offsets[1]
    strays = []
    for key, value in held.items() ^ expected.items():
        svc = key[svc_at:svc_at + svc_size]
        i = want.get(svc)
        if i is not None:
            ok[i] = False
        if held.get(key) != value:
            continue  # the expected side of a difference
        slot = slots.get(svc)
        index = int.from_bytes(key[index_at:index_at + 4], sys.byteorder)
        base = slot.generation * SPAN if slot else 0
        if slot is None or not base <= index < base + slot.backend_count:
            strays.append(key)
    return strays


def _key(layout: _Layouts, w: ServiceWrite) -> bytes:
    return layout.services_key.pack(int(w.vip), w.port, w.protocol)


def delete_unreached(dp: Datapath, held: Held) -> None:
    """Delete the entries ``compare`` found no service reaches."""
    backends, maglev, services = (dp.table(n) for n in maps.SERVICE_TABLES)
    layout = layouts(backends, maglev, services)
    if held.strays:
        delete_keys(backends.map_fd, b"".join(held.strays), len(held.strays),
                    layout.backend_key.size)
    if held.orphans:
        delete_keys(maglev.map_fd, b"".join(held.orphans), len(held.orphans),
                    layout.maglev_key.size)
