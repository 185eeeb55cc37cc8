"""Drop reasons and source-file ids, read from ``bpf/lib/drop.h`` at import time.

The codes are defined once, in C; this module only reads them.

    by_code(133).name         == "POLICY_DENIED"   # Hubble's enum name: drop_reason_desc
    by_code(133).description  == "Policy denied"   # the human text
    code("SPOOFED_SOURCE")    == 132               # C aliases (#define DROP_X DROP_Y) work too
    source_file(1)            == "probe_parse.c"   # drop records carry a file id and a line
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.datapath.cdefs import LIB_DIR, aliases, enum_entries

DROP_H = LIB_DIR / "drop.h"
_PREFIX = "DROP_"
_NOT_REASONS = {"DROP_REASON_MAX"}
_KEEPS_PREFIX = {"DROP_REASON_UNKNOWN"}  # Hubble spells code 0 with the prefix
_FILE_ENTRY = re.compile(r'X\(\s*(?P<id>\d+)\s*,\s*"(?P<file>[^"]+)"\s*\)')


@dataclass(frozen=True)
class DropReason:
    code: int
    name: str  # Hubble's DropReason name, e.g. POLICY_DENIED (C: DROP_POLICY_DENIED)
    description: str  # e.g. "Policy denied"


def _load() -> tuple[dict[int, DropReason], dict[str, int], dict[int, str]]:
    reasons: dict[int, DropReason] = {}
    for entry in enum_entries(DROP_H, "drop_reason"):
        if entry.name in _NOT_REASONS:
            continue
        if not entry.name.startswith(_PREFIX) or entry.value in reasons:
            raise ValueError(f"{DROP_H}: {entry.name} = {entry.value} breaks the enum's rules")
        name = entry.name if entry.name in _KEEPS_PREFIX else entry.name.removeprefix(_PREFIX)
        reasons[entry.value] = DropReason(entry.value, name, entry.comment or name)
    names = {r.name: r.code for r in reasons.values()}
    names.update({_PREFIX + n: c for n, c in list(names.items()) if not n.startswith(_PREFIX)})
    for alias, target in aliases(DROP_H).items():
        if alias.startswith(_PREFIX) and target in names:
            names[alias] = names[alias.removeprefix(_PREFIX)] = names[target]
    files = {int(m["id"]): m["file"] for m in _FILE_ENTRY.finditer(DROP_H.read_text())}
    return reasons, names, files


REASONS, _NAMES, SOURCE_FILES = _load()
UNKNOWN = REASONS[0]


def by_code(code: int) -> DropReason:
    """The reason for ``code``; codes the header does not know read as DROP_REASON_UNKNOWN."""
    return REASONS.get(code, UNKNOWN)


def code(name: str) -> int:
    """Numeric code for ``POLICY_DENIED``, ``DROP_POLICY_DENIED`` or an alias; KeyError if none."""
    try:
        return _NAMES[name.upper()]
    except KeyError:
        raise KeyError(f"no drop reason named {name!r} in {DROP_H}") from None


def source_file(file_id: int) -> str:
    """File name for a drop record's file id ("" for 0, the "unknown file" id)."""
    return SOURCE_FILES.get(file_id, "" if file_id == 0 else f"<file {file_id}>")
