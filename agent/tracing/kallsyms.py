"""Kernel text addresses to ``function+0xoffset``, from /proc/kallsyms (read once, lazily).

Drop records carry the address that freed the packet; users want the function (``tcp_v4_rcv``)
the way the tracefs output prints it (``%pS``). Without root the file shows zeros: then the
address is left out rather than shown raw (it would leak the kernel's layout).
"""

from __future__ import annotations

import bisect
from pathlib import Path

KALLSYMS = Path("/proc/kallsyms")


def parse(text: str) -> tuple[list[int], list[str]]:
    """Sorted text-symbol addresses and their names from kallsyms' text."""
    pairs = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3 or parts[1] not in "tTwW":
            continue
        address = int(parts[0], 16)
        if address:
            pairs.append((address, parts[2]))
    pairs.sort()
    return [a for a, _ in pairs], [n for _, n in pairs]


class Symbols:
    def __init__(self, path: Path = KALLSYMS) -> None:
        self.path = path
        self._table: tuple[list[int], list[str]] | None = None

    def __call__(self, address: int) -> str:
        if self._table is None:
            try:
                self._table = parse(self.path.read_text())
            except OSError:
                self._table = ([], [])
        addresses, names = self._table
        i = bisect.bisect_right(addresses, address) - 1
        if i < 0:
            return ""
        return f"{names[i]}+{address - addresses[i]:#x}"
