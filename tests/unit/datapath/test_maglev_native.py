"""The C Maglev fill (agent/datapath/maglev_native.py) builds the Python loop's tables, slot
for slot; without a compiler, or with an unsafe cache directory, the Python loop serves."""

from __future__ import annotations

import os
import shutil
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
