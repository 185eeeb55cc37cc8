"""Services written in bulk (agent.datapath.maps_bulk: packed buffers, BPF_MAP_UPDATE_BATCH and
DELETE_BATCH) leave the real kernel maps byte for byte as one ``maps.write_service`` per
service does: a first write, a second pass over the same services (the other backend
generation, the previous one freed; grown, shrunk, emptied and new services), and a batch
the kernel stops part-way (the rest then goes one by one)."""

from __future__ import annotations

import errno
import ipaddress
import random
from collections.abc import Iterator
from typing import Any

import pytest

from agent.datapath import maps, maps_bulk, native
from agent.datapath.maglev import CompactTable, maglev_slots
from agent.datapath.programs import Datapath
from agent.datapath.services import Backend
from tests.bpf.conftest import loaded_datapath

pytestmark = pytest.mark.bpf
TABLES = maps.SERVICE_TABLES
IPv4 = ipaddress.IPv4Address


@pytest.fixture(scope="module")
def datapath() -> Iterator[Datapath]:
    with loaded_datapath() as dp:
        yield dp


@pytest.fixture
def dp(datapath: Datapath) -> Datapath:
    clear(datapath)
    return datapath


def clear(dp: Datapath) -> None:
    for name in TABLES:
        dp.table(name).clear()


def contents(dp: Datapath) -> dict[str, dict[bytes, bytes]]:
    """Every entry of the service maps, as raw key and value bytes."""
    return {name: {bytes(k): bytes(v) for k, v in dp.table(name).items()} for name in TABLES}


def service_writes(rng: random.Random, count: int,
                   previous: dict[int, maps.ServiceSlot] | None = None) -> list[Any]:
    writes = []
    for i in range(count):
        n = rng.choice([0, 1, 2, 3, 7, 10, 40])
        backends = tuple(sorted(Backend(IPv4(f"10.{128 + i // 250}.{i % 250}.{b}"),
                                        rng.choice([80, 8080, 65535]))
                                for b in range(n)))
        table = CompactTable.of(maglev_slots([str(b) for b in backends])) if backends else ()
        writes.append(maps_bulk.ServiceWrite(
            IPv4(f"10.96.{i // 250}.{i % 250 + 1}"), (80, 443, 53)[i % 3],
            (6, 17)[i % 2], backends, table, rng.choice([0, 10800]),
            (previous or {}).get(i), rng.choice([0, maps.LB_F_L7, maps.LB_F_L7_CLIENTS])))
    return writes


def one_by_one(dp: Datapath, writes: list[Any]) -> list[Any]:
    return maps_bulk._one_by_one(dp, writes)  # noqa: SLF001 - the reference path


def test_a_first_write_in_bulk_is_what_one_write_per_service_leaves(dp: Datapath) -> None:
    writes = service_writes(random.Random(1), 700)
    expected_slots = one_by_one(dp, writes)
    expected = contents(dp)
    clear(dp)
    slots = maps_bulk.write_services(dp, writes)
    assert slots == expected_slots
    assert contents(dp) == expected
    assert len(expected["lb_services_v1"]) == 700 and len(expected["lb_backends_v1"]) > 5000


def test_a_second_pass_flips_generations_and_frees_the_old_ones_alike(dp: Datapath) -> None:
    adopted = {i: maps.ServiceSlot(0, 0) for i in range(1, 400, 2)}  # these start at 1
    first = service_writes(random.Random(2), 400, adopted)
    previous = dict(enumerate(maps_bulk.write_services(dp, first)))
    # Some entries of the old generation already gone: skipped, the rest still freed.
    at = next(i for i, w in enumerate(first) if len(w.backends) >= 2 and i % 2 == 0)
    gone = first[at]
    assert previous[at] == maps.ServiceSlot(0, len(gone.backends))
    key = maps.lb_key(dp, gone.vip, gone.port, gone.protocol)
    backends_map = dp.table("lb_backends_v1")
    del backends_map[maps._backend_key(backends_map, key, 1)]  # noqa: SLF001
    start = contents(dp)
    second = service_writes(random.Random(3), 450, previous)  # 50 new services too
    expected_slots = one_by_one(dp, second)
    expected = contents(dp)
    restore(dp, start)
    slots = maps_bulk.write_services(dp, second)
    assert slots == expected_slots
    assert contents(dp) == expected
    generations = {s.generation for s, w in zip(slots, second, strict=True) if w.previous}
    assert generations == {0, 1}


def restore(dp: Datapath, state: dict[str, dict[bytes, bytes]]) -> None:
    clear(dp)
    for name, entries in state.items():
        table = dp.table(name)
        for k, v in entries.items():
            table[table.Key.from_buffer_copy(k)] = table.Leaf.from_buffer_copy(v)


@pytest.mark.parametrize("failing", ["lb_backends_v1", "lb_maglev_v1", "lb_services_v1"])
def test_a_batch_stopped_part_way_ends_as_one_write_per_service(
    dp: Datapath, failing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel writes the first entries of a batch, then refuses one (E2BIG here): the
    services the bulk did not complete are written one by one, with the same result."""
    writes = service_writes(random.Random(4), 300)
    expected_slots = one_by_one(dp, writes)
    expected = contents(dp)
    clear(dp)
    fd = dp.table(failing).map_fd
    real = native.update_batch

    def stops_half_way(map_fd: int, keys: Any, values: Any, count: int | None = None) -> None:
        if map_fd != fd or count is None or count < 4:
            return real(map_fd, keys, values, count)
        real(map_fd, keys, values, count // 2)
        raise native.BatchError(OSError(7, "Argument list too long"), count // 2)

    monkeypatch.setattr(maps_bulk, "update_batch", stops_half_way)
    assert maps_bulk.write_services(dp, writes) == expected_slots
    assert contents(dp) == expected


def test_the_batch_read_of_the_slots_is_what_one_lookup_per_service_reads(dp: Datapath) -> None:
    """A restarted agent adopts the slots (generation, backend count) with two batch reads:
    the same as ``maps.read_service_slots`` for services at either generation, emptied
    ones included, and for more services than one batch chunk holds."""
    rng = random.Random(3)
    writes = service_writes(rng, 700)
    first = maps_bulk.write_services(dp, writes)
    # Every third service again: the other generation (as an update in place would leave).
    again = service_writes(rng, 700, {i: s for i, s in enumerate(first) if i % 3 == 0})
    maps_bulk.write_services(dp, [w for i, w in enumerate(again) if i % 3 == 0])
    expected = maps.read_service_slots(dp)
    assert {s.generation for s in expected.values()} == {0, 1}
    assert maps_bulk.read_service_slots(dp) == expected
    assert len(expected) == 700


def test_the_batch_read_reads_every_chunk(dp: Datapath, monkeypatch: pytest.MonkeyPatch) -> None:
    maps_bulk.write_services(dp, service_writes(random.Random(4), 300))
    monkeypatch.setattr(maps_bulk, "CHUNK", 64)  # several lookup_batch calls per map
    assert maps_bulk.read_service_slots(dp) == maps.read_service_slots(dp)


def test_an_empty_map_reads_as_no_slots(dp: Datapath) -> None:
    assert maps_bulk.read_service_slots(dp) == {}


def test_a_table_delete_the_kernel_refuses_is_an_error_not_skipped(
    dp: Datapath, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service without backends has its Maglev table deleted: a table not there is fine
    (ENOENT), any other errno is raised, naming the call (it was swallowed)."""
    writes = [w for w in service_writes(random.Random(5), 40) if not w.backends]
    assert writes
    maps_bulk.write_services(dp, writes)  # no tables there: ENOENT, quietly

    def refused(fd: int, key: Any) -> bool:
        raise native.os_error(errno.EPERM, f"bpf_map_delete_elem(fd={fd})")

    monkeypatch.setattr(maps_bulk, "delete_elem", refused)
    with pytest.raises(OSError, match="EPERM") as raised:
        maps_bulk.write_services(dp, writes)
    assert raised.value.errno == errno.EPERM
