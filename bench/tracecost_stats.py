"""bench/tracecost's pure parts: a BPF program fd's fdinfo, and per-program costs between two
readings of the kernel's run-time stats."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ProgStats:
    prog_id: int
    prog_type: int
    run_time_ns: int
    run_cnt: int


def parse_fdinfo(text: str) -> ProgStats | None:
    """A BPF program fd's /proc fdinfo; None for any other fd or a program without stats."""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        return ProgStats(int(fields["prog_id"]), int(fields["prog_type"]),
                         int(fields["run_time_ns"]), int(fields["run_cnt"]))
    except (KeyError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class ProgInfo:
    """What BPF_OBJ_GET_INFO_BY_FD says of a program that fdinfo does not."""

    name: str
    insns: int  # translated (xlated) instructions


@dataclass(frozen=True, slots=True)
class ProgCost:
    name: str
    insns: int
    copies: int  # one per agent: each node's tracer sees every socket of the shared kernel
    events: int
    ns_per_event: float
    events_per_request: float
    ns_per_request: float


def costs(infos: Mapping[int, ProgInfo], before: Mapping[int, ProgStats],
          after: Mapping[int, ProgStats], requests: int) -> list[ProgCost]:
    """Per program name (summed over the agents' copies) between two readings; a program
    loaded between the two readings is left out (its count did not start at `before`)."""
    runs: dict[str, list[tuple[int, int, int]]] = {}
    for pid, end in after.items():
        start = before.get(pid)
        if start is None:
            continue
        info = infos.get(pid, ProgInfo(f"prog {pid}", 0))
        runs.setdefault(info.name, []).append(
            (end.run_cnt - start.run_cnt, end.run_time_ns - start.run_time_ns, info.insns))
    out = []
    for name, parts in sorted(runs.items()):
        events = sum(c for c, _, _ in parts)
        ns = sum(t for _, t, _ in parts)
        out.append(ProgCost(name, max(i for _, _, i in parts), len(parts), events,
                            ns / events if events else 0.0,
                            events / max(requests, 1), ns / max(requests, 1)))
    return out


def round_json(workload: str, tracing: bool, requests: int, rps: float, agent_cpu_s: float,
               agent_wakeups: int, progs: list[ProgCost]) -> dict[str, Any]:
    """One measured round as JSON (``--out``), per-100k figures next to the raw counts."""
    per_100k = 100_000 / max(requests, 1)
    return {"workload": workload, "tracing": "on" if tracing else "off",
            "requests": requests, "rps": round(rps, 1),
            "agent_cpu_ms_per_100k": round(agent_cpu_s * 1000 * per_100k, 1),
            "agent_wakeups_per_100k": round(agent_wakeups * per_100k, 1),
            "tracer_ns_per_request": round(sum(p.ns_per_request for p in progs), 1),
            "programs": [{k: round(v, 3) if isinstance(v, float) else v
                          for k, v in asdict(p).items()} for p in progs]}
