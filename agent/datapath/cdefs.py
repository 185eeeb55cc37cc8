"""Read the numbers Tulle's BPF headers define, so Python never types them a second time.

    enum_entries(LIB_DIR / "drop.h", "drop_reason")   # [CEnumEntry("DROP_POLICY_DENIED", 133, ...)]
    enum_values(LIB_DIR / "common.h", "tulle_config")  # {"TULLE_CFG_DROP_FRAGMENTS": 0, ...}

A deliberately small parser for the one style our headers use: one enumerator per line,
``NAME = value, /* comment */``, values as integer literals or earlier enumerators.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

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
