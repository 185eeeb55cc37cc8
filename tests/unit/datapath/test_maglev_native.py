"""The C Maglev fill (agent/datapath/maglev_native.py) builds the Python loop's tables, slot
for slot; without a compiler, or with an unsafe cache directory, the Python loop serves."""

from __future__ import annotations

import hashlib
import os
import shutil
from array import array
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.datapath import maglev, maglev_native
from agent.datapath.maglev import MAGLEV_SIZE, maglev_slots

names = st.lists(st.text(min_size=1, max_size=16), min_size=2, max_size=40, unique=True)
needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")


@pytest.fixture(scope="module")
def fill(tmp_path_factory: pytest.TempPathFactory) -> maglev_native.Fill:
    path = maglev_native.build(tmp_path_factory.mktemp("native"))
    assert path is not None, "cc is present, so the build must succeed"
    return maglev_native.load(path)


def python_table(backends: list[str], size: int) -> list[int]:
    order = sorted(range(len(backends)), key=backends.__getitem__)
    prefs = [maglev._permutation(backends[i], size) for i in order]
    marks = [-1, *order]
    return [marks[m] for m in maglev._fill(prefs, size)]


@needs_cc
@settings(max_examples=200, deadline=None)
@given(backends=names, size=st.sampled_from([41, 101, 1021, 4099]))
def test_native_fill_is_the_python_fill(
    fill: maglev_native.Fill, backends: list[str], size: int
) -> None:
    if size <= len(backends):
        return
    order = sorted(range(len(backends)), key=backends.__getitem__)
    prefs = [maglev._permutation(backends[i], size) for i in order]
    assert list(fill(prefs, order, size)) == python_table(backends, size)


@needs_cc
def test_native_fill_refuses_what_it_cannot_fill(fill: maglev_native.Fill) -> None:
    with pytest.raises(ValueError, match="refused"):
        fill([(0, 1), (1, 1)], [0, 1], 2)  # two backends, two slots
    with pytest.raises(ValueError, match="refused"):
        fill([(0, 0), (1, 3)], [0, 1], 7)  # a skip of 0 never moves


@needs_cc
def test_maglev_slots_uses_the_native_fill_and_agrees(monkeypatch: pytest.MonkeyPatch,
                                                       fill: maglev_native.Fill) -> None:
    backends = [f"10.0.{i}.{i}:8080" for i in range(10)]
    calls = []

    def counted(*args: object) -> object:
        calls.append(1)
        return fill(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(maglev, "_NATIVE", [counted])
    native = list(maglev_slots(backends))
    monkeypatch.setattr(maglev, "_NATIVE", [None])
    assert calls and native == list(maglev_slots(backends)) == python_table(backends, MAGLEV_SIZE)


def test_no_compiler_means_the_python_loop(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.setattr(maglev_native.shutil, "which", lambda _name: None)
    assert maglev_native.build(tmp_path / "native") is None


def test_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    assert maglev_native.build(shared) is None
    assert list(shared.iterdir()) == []


def test_tulle_native_0_forces_the_python_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TULLE_NATIVE", "0")
    assert maglev_native.native_fill() is None


# --- whole tables for many services in one call (tulle_maglev_tables) ------------------

Pair = tuple[int, int]  # (IPv4 address as an int, port)
backend_sets = st.lists(
    st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 65535)), min_size=1,
             max_size=40, unique=True),
    min_size=1, max_size=12,
)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = maglev_native.build(tmp_path_factory.mktemp("native-tables"))
    assert path is not None, "cc is present, so the build must succeed"
    return path


def flat(sets: list[list[Pair]]) -> tuple[array, array, array]:
    return (array("I", [ip for pairs in sets for ip, _ in pairs]),
            array("H", [port for pairs in sets for _, port in pairs]),
            array("I", [len(pairs) for pairs in sets]))


def by_name(pairs: list[Pair], size: int) -> list[int]:
    """The table of these backends as agent.datapath.maglev defines it: over their names."""
    return list(maglev_slots([f"{IPv4Address(ip)}:{port}" for ip, port in pairs], size))


@needs_cc
@settings(max_examples=150, deadline=None)
@given(sets=backend_sets, size=st.sampled_from([41, 101, 1021]))
def test_native_tables_are_the_tables_of_the_backend_names(
    library: Path, sets: list[list[Pair]], size: int
) -> None:
    sets = [pairs for pairs in sets if len(pairs) < size]
    if not sets:
        return
    out = maglev_native.load_tables(library)(*flat(sets), size)
    assert len(out) == size * len(sets)
    for i, pairs in enumerate(sets):
        assert list(out[i * size:(i + 1) * size]) == by_name(pairs, size)


@needs_cc
@settings(max_examples=300, deadline=None)
@given(name=st.binary(max_size=128), size=st.sampled_from([2, 41, 1021, 65521]))
def test_native_blake2b_permutation_is_hashlibs(library: Path, name: bytes, size: int) -> None:
    import ctypes

    fn = ctypes.CDLL(str(library)).tulle_maglev_permutation
    offset, skip = ctypes.c_uint32(), ctypes.c_uint32()
    assert fn(name, len(name), size, ctypes.byref(offset), ctypes.byref(skip)) == 0
    expected = maglev._permutation(name.decode("latin-1"), size) if name.isascii() else None
    if expected is None:  # _permutation encodes text: compare with hashlib on the bytes
        person = {"offs": b"tulle-mglv-offs", "skip": b"tulle-mglv-skip"}
        digest = {k: int.from_bytes(hashlib.blake2b(name, digest_size=8, person=p).digest(),
                                    "big") for k, p in person.items()}
        expected = (digest["offs"] % size, digest["skip"] % (size - 1) + 1)
    assert (offset.value, skip.value) == expected


@needs_cc
def test_native_tables_refuse_what_they_cannot_fill(library: Path) -> None:
    tables = maglev_native.load_tables(library)
    ip = 0x0A000001
    for sets, size in (
        ([[(ip, 80), (ip, 80)]], 1021),  # one backend twice: names must be unique
        ([[(ip, p) for p in range(41)]], 41),  # as many backends as slots
        ([[]], 1021),  # an empty set has no table (maglev_tables answers it alone)
    ):
        with pytest.raises(ValueError, match="refused"):
            tables(*flat(sets), size)
    with pytest.raises(ValueError, match="must agree"):
        tables(array("I", [ip]), array("H", [80]), array("I", [2]), 1021)


def test_maglev_tables_answers_each_set_like_maglev_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    """Native or not (TULLE_NATIVE=0 style: no library), empty and single-backend sets,
    and refusals with the Python code's words."""
    sets = [[(0x0A000001 + i, 8080) for i in range(n)] for n in (0, 1, 2, 10, 0, 3)]
    expected = [by_name(pairs, MAGLEV_SIZE) if pairs else [] for pairs in sets]
    ips, ports, counts = flat(sets)
    native = [list(t) for t in maglev.maglev_tables(ips, ports, counts)]
    monkeypatch.setattr(maglev, "_NATIVE_TABLES", [None])
    monkeypatch.setattr(maglev, "_NATIVE", [None])
    assert [list(t) for t in maglev.maglev_tables(ips, ports, counts)] == native == expected
    monkeypatch.undo()
    ips, ports, counts = flat([[(1, 80), (1, 80)]])
    with pytest.raises(ValueError, match="unique"):
        maglev.maglev_tables(ips, ports, counts)
    with pytest.raises(ValueError, match="prime"):
        maglev.maglev_tables(ips, ports, counts, size=1000)


@needs_cc
def test_a_first_plan_crosses_into_c_once_per_512_services(
    monkeypatch: pytest.MonkeyPatch, library: Path
) -> None:
    """10,000 tables were 10,000 ctypes calls, each rebuilding its arrays from Python
    tuples; now a plan batches them (and a call releases the GIL for its whole chunk)."""
    from agent.datapath.service_state import ServiceState
    from agent.model.convert import from_dict

    native = maglev_native.load_tables(library)
    calls: list[int] = []

    def counted(ips: array, ports: array, counts: array, size: int) -> array:
        calls.append(len(counts))
        return native(ips, ports, counts, size)

    monkeypatch.setattr(maglev, "_NATIVE_TABLES", [counted])
    state = ServiceState()
    for i in range(600):
        svc = from_dict({"apiVersion": "v1", "kind": "Service",
                         "metadata": {"name": f"s{i}", "namespace": "ns"},
                         "spec": {"clusterIP": f"10.96.{i // 250}.{i % 250 + 1}",
                                  "ports": [{"name": "http", "port": 80}]}})
        eps = from_dict({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                         "metadata": {"name": f"s{i}-x", "namespace": "ns",
                                      "labels": {"kubernetes.io/service-name": f"s{i}"}},
                         "addressType": "IPv4",
                         "endpoints": [{"addresses": [f"10.1.{i // 200}.{i % 200 + j}"]}
                                       for j in range(3)],
                         "ports": [{"name": "http", "port": 8080}]})
        state.put_service(svc, ("ns", f"s{i}"))  # type: ignore[arg-type]
        state.put_slice(eps, ("ns", f"s{i}-x"))  # type: ignore[arg-type]
    plan = state.plan()
    assert calls == [512, 88]
    for entry in list(plan.entries.values())[:50]:
        assert list(entry.table) == by_name([(int(b.ip), b.port) for b in entry.backends],
                                            MAGLEV_SIZE)


def test_the_library_is_looked_for_once_for_both_entry_points(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """native_fill and native_tables both run at an agent's start: one build (source read,
    hashed, directory checked), not two."""
    monkeypatch.setenv("TULLE_NATIVE_DIR", str(tmp_path / "native"))
    monkeypatch.delenv("TULLE_NATIVE", raising=False)
    calls: list[Path | None] = []
    real = maglev_native.build

    def counted(directory: Path | None = None) -> Path | None:
        calls.append(directory)
        return real(directory)

    monkeypatch.setattr(maglev_native, "build", counted)
    monkeypatch.setattr(maglev_native, "_BUILT", {}, raising=False)
    maglev_native.native_fill()
    maglev_native.native_tables()
    assert len(calls) == 1
