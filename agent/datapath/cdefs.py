"""Read the numbers and records Tulle's BPF headers define, so Python never types them a
second time.

    enum_entries(LIB_DIR / "drop.h", "drop_reason")   # [CEnumEntry("DROP_POLICY_DENIED", 133, ...)]
    enum_values(LIB_DIR / "common.h", "tulle_config")  # {"TULLE_CFG_DROP_FRAGMENTS": 0, ...}
    struct_type(LIB_DIR / "events.h", "flow_event")     # a ctypes.Structure with C's layout
    defines(LIB_DIR / "endpoints.h", "EP_F_")           # {"EP_F_INGRESS_ENFORCED": 1, ...}

A deliberately small parser for the one style our headers use: one enumerator per line,
``NAME = value, /* comment */``, values as integer literals or earlier enumerators; one
scalar field per line in the structs Python reads (``__u32 name; /* comment */``). The BPF
tier checks `struct_type` against the layout BCC compiles.
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BPF_DIR = Path(__file__).resolve().parents[2] / "bpf"
LIB_DIR = BPF_DIR / "lib"

_ENTRY = re.compile(
    r"^\s*(?P<name>[A-Za-z_]\w*)\s*(?:=\s*(?P<value>[^,/]+?))?\s*,?\s*"
    r"(?:/\*\s*(?P<comment>.*?)\s*\*/)?\s*$"
)
_ALIAS = re.compile(r"^\s*#\s*define\s+(?P<alias>[A-Za-z_]\w*)\s+(?P<target>[A-Za-z_]\w*)\s*$")


class CDefsError(ValueError):
    """A header does not have the shape this parser reads."""


@dataclass(frozen=True)
class CEnumEntry:
    name: str
    value: int
    comment: str  # the trailing /* ... */ text, "" when absent


def _enum_body(text: str, enum: str, path: Path) -> list[str]:
    match = re.search(rf"\benum\s+{re.escape(enum)}\s*\{{(?P<body>.*?)\}}\s*;", text, re.DOTALL)
    if not match:
        raise CDefsError(f"{path}: no 'enum {enum} {{ ... }};'")
    return match["body"].splitlines()


def enum_entries(path: Path, enum: str) -> list[CEnumEntry]:
    """Enumerators of ``enum <enum>`` in ``path``, in order, with C's implicit numbering."""
    entries: list[CEnumEntry] = []
    known: dict[str, int] = {}
    for line in _enum_body(path.read_text(), enum, path):
        if not line.strip() or line.strip().startswith(("/*", "*", "//")):
            continue
        match = _ENTRY.match(line)
        if not match:
            raise CDefsError(f"{path}: cannot read enumerator line {line.strip()!r} in {enum}")
        raw = match["value"]
        if raw is None:
            value = entries[-1].value + 1 if entries else 0
        elif raw.strip() in known:
            value = known[raw.strip()]
        else:
            try:
                value = int(raw.strip().rstrip("uUlL"), 0)
            except ValueError:
                raise CDefsError(f"{path}: {match['name']} = {raw!r} is not a literal") from None
        known[match["name"]] = value
        entries.append(CEnumEntry(match["name"], value, match["comment"] or ""))
    return entries


def enum_values(path: Path, enum: str) -> dict[str, int]:
    """``enum_entries`` as a name -> value mapping."""
    return {entry.name: entry.value for entry in enum_entries(path, enum)}


def aliases(path: Path) -> dict[str, str]:
    """``#define ALIAS TARGET`` lines in ``path`` whose target is a plain identifier."""
    found = (_ALIAS.match(line) for line in path.read_text().splitlines())
    return {m["alias"]: m["target"] for m in found if m}


_DEFINE = re.compile(
    r"^\s*#\s*define\s+(?P<name>[A-Za-z_]\w*)\s+(?P<value>0[xX][0-9a-fA-F]+|\d+)[uUlL]*\s*(?:/\*.*)?$"
)


def defines(path: Path, prefix: str) -> dict[str, int]:
    """``#define NAME <integer literal>`` lines in ``path`` whose name starts with ``prefix``."""
    found = (_DEFINE.match(line) for line in path.read_text().splitlines())
    values = {m["name"]: int(m["value"], 0) for m in found if m and m["name"].startswith(prefix)}
    if not values:
        raise CDefsError(f"{path}: no #define {prefix}* with an integer value")
    return values


_SCALARS: dict[str, type[ctypes._SimpleCData]] = {
    "__u8": ctypes.c_uint8, "__u16": ctypes.c_uint16, "__u32": ctypes.c_uint32,
    "__u64": ctypes.c_uint64, "__be16": ctypes.c_uint16, "__be32": ctypes.c_uint32,
}
_FIELD = re.compile(r"^\s*(?P<type>\w+)\s+(?P<name>[A-Za-z_]\w*)\s*(?:\[(?P<n>\d+)\])?\s*;")


def struct_type(path: Path, struct: str) -> type[ctypes.Structure]:
    """``struct <struct>`` in ``path`` as a ctypes Structure with C's natural alignment.
    Only scalar fields (``_SCALARS``) and fixed arrays of them (``__u8 pad[3];``) are read;
    anything else is an error, not a guess."""
    text = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.DOTALL)
    match = re.search(rf"\bstruct\s+{re.escape(struct)}\s*\{{(?P<body>.*?)\}}\s*;", text,
                      re.DOTALL)
    if not match:
        raise CDefsError(f"{path}: no 'struct {struct} {{ ... }};'")
    fields: list[tuple[str, Any]] = []
    for line in match["body"].splitlines():
        if not line.strip():
            continue
        field = _FIELD.match(line)
        if not field or field["type"] not in _SCALARS:
            raise CDefsError(f"{path}: cannot read field line {line.strip()!r} in {struct}")
        scalar = _SCALARS[field["type"]]
        fields.append((field["name"], scalar * int(field["n"]) if field["n"] else scalar))
    return type(struct, (ctypes.Structure,), {"_fields_": fields})
