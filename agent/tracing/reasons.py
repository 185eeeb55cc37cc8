"""The kernel's packet drop reasons (``enum skb_drop_reason``), read from the running kernel.

The numbering changes between kernel versions, so no table is kept here. The names come from
the ``skb:kfree_skb`` tracepoint's print format in tracefs (``__print_symbolic(REC->reason,
{ 2, "NOT_SPECIFIED" }, …)``), or else from the enum in vmlinux BTF (``SKB_DROP_REASON_X``).

    reasons = kernel_drop_reasons()     # {3: "NO_SOCKET", …}
    reasons.get(3, "REASON_3")
"""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

TRACEFS_ROOTS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
FORMAT = "events/skb/kfree_skb/format"
_SYMBOLIC = re.compile(r"__print_symbolic\(\s*REC->reason\s*,(?P<body>.*?)\)\s*$", re.DOTALL)
_ENTRY = re.compile(r'\{\s*(?P<code>\d+)\s*,\s*"(?P<name>[A-Za-z0-9_]+)"\s*\}')
_BTF_PREFIX = "SKB_DROP_REASON_"
_NOT_DROPS = {"NOT_DROPPED_YET", "CONSUMED", "MAX"}


def parse_format(text: str) -> dict[int, str]:
    """Reason code -> name from a kfree_skb tracefs ``format`` file's text ({} if absent)."""
    match = _SYMBOLIC.search(text)
    if match is None:
        return {}
    return {
        int(m["code"]): m["name"]
        for m in _ENTRY.finditer(match["body"])
        if m["name"] not in _NOT_DROPS
    }


def _from_tracefs() -> dict[int, str]:
    for root in TRACEFS_ROOTS:
        try:
            found = parse_format((root / FORMAT).read_text())
        except OSError:
            continue
        if found:
            return found
    return {}


def _from_btf() -> dict[int, str]:
    from agent.tracing.btf import enum_values

    return {
        value: name.removeprefix(_BTF_PREFIX)
        for name, value in enum_values("skb_drop_reason").items()
        if name.startswith(_BTF_PREFIX) and name.removeprefix(_BTF_PREFIX) not in _NOT_DROPS
    }


def kernel_drop_reasons() -> dict[int, str]:
    """Code -> name as this kernel spells them; {} when neither tracefs nor BTF has them."""
    try:
        return _from_tracefs() or _from_btf()
    except (OSError, ctypes.ArgumentError):
        return {}


def reason_name(reasons: dict[int, str], code: int) -> str:
    return reasons.get(code, f"REASON_{code}")
