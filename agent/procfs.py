"""When a process started, from /proc: the agent's own age (first-sync timing) and the lab's
process records (a PID is signalled only while its start time still matches)."""

from __future__ import annotations

import os
from pathlib import Path


def parse_start_ticks(stat: str) -> int:
    """Field 22 of a /proc/PID/stat line: clock ticks since boot when the process started.
    The command name (field 2) may hold spaces and ')'; the fields resume after the last ')'."""
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def start_ticks(pid: int | str = "self") -> int | None:
    """The start time of ``pid`` (default: this process); None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return parse_start_ticks(stat)


def seconds_since(ticks: int) -> float:
    """Seconds from ``ticks`` (clock ticks since boot, as ``start_ticks``) to now."""
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - ticks / os.sysconf("SC_CLK_TCK")
