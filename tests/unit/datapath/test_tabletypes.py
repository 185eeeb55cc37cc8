"""tabletypes.decode builds the ctypes BCC's own decoder builds from the same JSON description
(field names, offsets, sizes, bit fields, nesting), and names what it cannot read."""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.datapath.tabletypes import (
    SCALARS,
    TypeDescError,
    decode,
    per_cpu_leaf,
    possible_cpus,
)

# Descriptions as BCC 0.26 printed them for Tulle's maps (bpf_table_key_desc / leaf_desc).
ENDPOINT_INFO = ["endpoint_info", [["ip", "unsigned int"], ["identity", "unsigned int"],
                                   ["flags", "unsigned int"], ["pad", "unsigned int"]], "struct"]
BACKEND_KEY = ["backend_key", [["svc", ["lb_key", [["vip", "unsigned int"],
                                                  ["port", "unsigned short"],
                                                  ["proto", "unsigned char"],
                                                  ["pad", "unsigned char"]], "struct"]],
                               ["index", "unsigned int"]], "struct"]
MAGLEV = ["maglev_table", [["slots", "unsigned int", [1021]]], "struct"]
ANON_UNION = ["ct_addr", [["", [["v4", "unsigned int"], ["raw", "unsigned char", [4]]], "union"],
                          ["bits", "unsigned int", 3], ["more", "unsigned int", 29]], "struct"]
PACKED = ["packed_thing", [["a", "unsigned char"], ["b", "unsigned long long"]], "struct_packed"]
EXAMPLES = [ENDPOINT_INFO, BACKEND_KEY, MAGLEV, ANON_UNION, PACKED, "unsigned long long",
            "unsigned __int128"]


def layout(t: Any) -> Any:
    """What a ctypes type looks like to a reader: size, and per field its offset, size and
    (for bit fields) bits, recursively."""
    if hasattr(t, "_fields_"):
        out = [ctypes.sizeof(t), ctypes.alignment(t), getattr(t, "_anonymous_", [])]
        for f in t._fields_:
            d = getattr(t, f[0])
            out.append((f[0], d.offset, d.size, f[2] if len(f) == 3 else None, layout(f[1])))
        return out
    if hasattr(t, "_length_"):
        return ["array", t._length_, layout(t._type_)]
    return [t.__name__, ctypes.sizeof(t)]


def bcc_decode(desc: Any) -> Any:
    bcc = pytest.importorskip("bcc")
    return bcc.BPF._decode_table_type(desc)


@pytest.mark.parametrize("desc", EXAMPLES, ids=lambda d: d if isinstance(d, str) else d[0])
def test_decode_matches_bcc(desc: Any) -> None:
    assert layout(decode(desc)) == layout(bcc_decode(desc))


def test_decoded_struct_reads_and_writes_by_name() -> None:
    key = decode(BACKEND_KEY)()
    key.svc.vip, key.svc.port, key.index = 0x0A000001, 80, 7
    assert ctypes.sizeof(key) == 12 and bytes(key)[-4:] == (7).to_bytes(4, "little")
    addr = decode(ANON_UNION)()
    addr.v4 = 0x01020304  # the anonymous union's members are the struct's own
    assert bytes(addr.raw) == b"\x04\x03\x02\x01"


@pytest.mark.parametrize(
    ("desc", "words"),
    [
        ("unsigned nonsense", "unknown scalar type 'unsigned nonsense'"),
        (["s", [["a", "int"]], "class"], "unknown kind 'class'"),
        (["s", [["a"]]], "not a field description: ['a']"),
        (["s", [["a", "int", "wide"]]], "cannot decode field ['a', 'int', 'wide']"),
        (["s", [["a", "int", [1, 2]]]], "cannot decode field"),
        (42, "not a type description: 42"),
        (["s", "int"], "not a type description"),
    ],
)
def test_bad_descriptions_are_named(desc: Any, words: str) -> None:
    with pytest.raises(TypeDescError, match=words.replace("[", r"\[").replace("]", r"\]")):
        decode(desc)


# Random descriptions of the shapes BCC prints, decoded by both decoders.
_scalar = st.sampled_from(sorted(set(SCALARS) - {"long double", "wchar_t", "_Bool", "char"}))
_names = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)


def _struct(children: Any) -> Any:
    field = st.one_of(
        st.tuples(st.just("f"), _scalar).map(list),
        st.tuples(st.just("f"), _scalar, st.integers(1, 5).map(lambda n: [n])).map(list),
        st.tuples(st.just("f"), st.sampled_from(["unsigned int", "unsigned char"]),
                  st.integers(1, 8)).map(list),
        children.map(lambda c: ["", c[1], c[2]]),  # anonymous nested
        children.map(lambda c: ["f", c]),  # named nested
    )
    return st.tuples(_names, st.lists(field, min_size=1, max_size=5),
                     st.sampled_from(["struct", "struct_packed", "union"])).map(
        lambda t: [t[0], [[f"{f[0]}{i}" if f[0] else "", *f[1:]] for i, f in enumerate(t[1])],
                   t[2]])


_descs = st.recursive(
    st.tuples(_names, st.lists(st.tuples(st.just("f"), _scalar).map(list), min_size=1,
                               max_size=3), st.sampled_from(["struct", "union"])).map(
        lambda t: [t[0], [[f"f{i}", f[1]] for i, f in enumerate(t[1])], t[2]]),
    _struct, max_leaves=6)


@settings(max_examples=150, deadline=None)
@given(_descs)
def test_random_descriptions_match_bcc(desc: Any) -> None:
    assert layout(decode(desc)) == layout(bcc_decode(desc))


@pytest.mark.parametrize(("text", "count"), [("0-3\n", 4), ("0\n", 1), ("0,2-5\n", 5),
                                             ("0-1,4,6-7\n", 5)])
def test_possible_cpus(tmp_path: Path, text: str, count: int) -> None:
    (tmp_path / "possible").write_text(text)
    assert possible_cpus(tmp_path / "possible") == count


def test_per_cpu_leaf_is_one_aligned_value_per_cpu() -> None:
    stat = decode(["drop_stat", [["packets", "unsigned long long"], ["file", "unsigned int"],
                                 ["line", "unsigned int"]], "struct"])
    assert per_cpu_leaf(stat, 3)._length_ == 3 and per_cpu_leaf(stat, 3)._type_ is stat
    assert per_cpu_leaf(ctypes.c_ulonglong, 2)._type_ is ctypes.c_ulonglong
    assert per_cpu_leaf(ctypes.c_uint, 2)._type_ is ctypes.c_uint64  # widened, as BCC does
    with pytest.raises(TypeDescError, match="not 8-byte aligned"):
        per_cpu_leaf(decode(["odd", [["a", "unsigned char"]], "struct"]), 2)
