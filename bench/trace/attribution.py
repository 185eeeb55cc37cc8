"""``bench.trace --attribute``'s pure parts: where tracing's per-request cost goes.

Each measured run yields a `Sample`: the kernel's run-time stats of every BPF program the
agents hold (calls and ns between two readings, ``bench/bpfprogs.py``), node1's waypoint's
user and system CPU time (``/proc/PID/stat``, the kernel's tick sampling; every lab
process's too) and its exact run time (``/proc/PID/task/*/schedstat``), and its system calls
by name (counted in the kernel: ``bench/trace/attribute.py``). `summarize` divides each by
the requests wrk counted, tracing on against off. This kernel has no IRQ time accounting
(``CONFIG_IRQ_TIME_ACCOUNTING`` unset), so softirq work run on the way out of the
waypoint's own system calls (the receive path of the pods' sockets on the other end of a
veth, and the BPF programs in it) is charged to the waypoint as system time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.tracecost_stats import ProgInfo, ProgStats

ALL = "all"  # every system call, under one name
PROG_TYPES = {3: "tc", 5: "tracepoint", 13: "sock_ops", 17: "raw_tracepoint"}


@dataclass(frozen=True, slots=True)
class ProgRuns:
    name: str
    kind: str
    runs: int
    ns: int


@dataclass(frozen=True, slots=True)
class Sample:
    tracing: bool
    requests: int
    progs: tuple[ProgRuns, ...] = ()
    user_s: float = 0.0
    sys_s: float = 0.0
    run_ns: int = 0  # schedstat: the waypoint's threads' time on a CPU, exact
    syscalls: Mapping[str, int] = field(default_factory=dict)
    process_cpu: Mapping[str, float] = field(default_factory=dict)  # lab process -> CPU s


def prog_runs(infos: Mapping[int, ProgInfo], before: Mapping[int, ProgStats],
              after: Mapping[int, ProgStats]) -> tuple[ProgRuns, ...]:
    """Calls and ns per program name and type (the agents' copies summed) between two
    readings; a program loaded between them is left out (its count did not start at
    `before`)."""
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for pid, end in after.items():
        start = before.get(pid)
        if start is None:
            continue
        key = (infos[pid].name if pid in infos else f"prog {pid}",
               PROG_TYPES.get(end.prog_type, str(end.prog_type)))
        runs, ns = out.get(key, (0, 0))
        out[key] = (runs + end.run_cnt - start.run_cnt, ns + end.run_time_ns - start.run_time_ns)
    return tuple(ProgRuns(n, k, r, t) for (n, k), (r, t) in sorted(out.items()))


def syscall_delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """System calls by name made between two readings of the running counts, and ``all``."""
    out = {n: c - before.get(n, 0) for n, c in after.items() if c > before.get(n, 0)}
    out[ALL] = sum(out.values())
    return out


def stat_times(text: str, clk_tck: int) -> tuple[float, float]:
    """``/proc/PID/stat`` -> (user, system) CPU seconds of the whole process."""
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[11]) / clk_tck, int(fields[12]) / clk_tck


def schedstat_ns(texts: Iterable[str]) -> int:
    """The run time (ns) summed over ``/proc/PID/task/*/schedstat`` texts."""
    return sum(int(t.split()[0]) for t in texts if t.strip())


def _per_request(samples: list[Sample], value: float) -> float:
    requests = sum(s.requests for s in samples)
    return value / requests if requests > 0 else 0.0


def summarize(samples: list[Sample]) -> dict[str, Any]:
    """Per request, tracing on and off (each the sum over its runs ÷ their requests): every
    program's calls and ns, the waypoint's CPU time (user, system, exact total) and its
    system calls by name. Programs sort by what tracing adds per request, largest first."""
    on = [s for s in samples if s.tracing]
    off = [s for s in samples if not s.tracing]
    rows: list[dict[str, Any]] = []
    names = sorted({(p.name, p.kind) for s in samples for p in s.progs})
    for name, kind in names:
        def total(group: list[Sample], attr: str, name: str = name, kind: str = kind) -> int:
            return sum(getattr(p, attr) for s in group for p in s.progs
                       if (p.name, p.kind) == (name, kind))
        on_runs, on_ns, off_ns = total(on, "runs"), total(on, "ns"), total(off, "ns")
        rows.append({
            "program": name, "type": kind,
            "on_calls_per_request": round(_per_request(on, on_runs), 4),
            "off_calls_per_request": round(_per_request(off, total(off, "runs")), 4),
            "on_ns_per_call": round(on_ns / on_runs, 1) if on_runs else None,
            "on_ns_per_request": round(_per_request(on, on_ns), 1),
            "off_ns_per_request": round(_per_request(off, off_ns), 1),
            "added_ns_per_request": round(_per_request(on, on_ns) - _per_request(off, off_ns),
                                          1)})
    rows.sort(key=lambda r: (-r["added_ns_per_request"], r["program"]))
    waypoint = {state: {
        "user_us": round(_per_request(group, 1e6 * sum(s.user_s for s in group)), 2),
        "system_us": round(_per_request(group, 1e6 * sum(s.sys_s for s in group)), 2),
        "run_us": round(_per_request(group, sum(s.run_ns for s in group) / 1e3), 2)}
        for state, group in (("on", on), ("off", off))}
    calls = sorted({n for s in samples for n in s.syscalls}, key=lambda n: (n != ALL, n))
    syscalls = [{"syscall": n,
                 "on_per_request": round(_per_request(on, sum(s.syscalls.get(n, 0) for s in on)),
                                         4),
                 "off_per_request": round(
                     _per_request(off, sum(s.syscalls.get(n, 0) for s in off)), 4)}
                for n in calls]
    roles = sorted({r for s in samples for r in s.process_cpu})
    processes = [{"process": r, **{
        f"{state}_us_per_request": round(_per_request(
            group, 1e6 * sum(s.process_cpu.get(r, 0.0) for s in group)), 2)
        for state, group in (("on", on), ("off", off))}} for r in roles]
    return {"requests": {"on": sum(s.requests for s in on), "off": sum(s.requests for s in off)},
            "programs": rows, "waypoint": waypoint, "syscalls": syscalls,
            "processes": processes}


def samples_json(samples: list[Sample]) -> list[dict[str, Any]]:
    """Each run's readings as recorded, so a report can be summed again over a subset (say,
    without a run the machine's other load spoiled)."""
    return [{**asdict(s), "progs": [asdict(p) for p in s.progs],
             "syscalls": dict(s.syscalls), "process_cpu": dict(s.process_cpu)}
            for s in samples]


def _num(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


PROGRAM_HEADER = ["program", "type", "calls/request on", "calls/request off", "ns/call on",
                  "ns/request on", "ns/request off", "added ns/request"]
WAYPOINT_HEADER = ["node1's waypoint, per request", "on", "off", "on − off"]
PROCESS_HEADER = ["lab process CPU µs per request (ticks)", "on", "off", "on − off"]
SYSCALL_HEADER = ["waypoint system call", "per request on", "per request off"]


def program_rows(att: dict[str, Any]) -> list[list[str]]:
    return [[r["program"], r["type"], _num(r["on_calls_per_request"], 3),
             _num(r["off_calls_per_request"], 3), _num(r["on_ns_per_call"], 1),
             _num(r["on_ns_per_request"], 1), _num(r["off_ns_per_request"], 1),
             _num(r["added_ns_per_request"], 1)] for r in att["programs"]]


def waypoint_rows(att: dict[str, Any]) -> list[list[str]]:
    on, off = att["waypoint"]["on"], att["waypoint"]["off"]
    labels = (("user_us", "user CPU µs (ticks)"), ("system_us", "system CPU µs (ticks)"),
              ("run_us", "on-CPU µs (schedstat, exact)"))
    return [[label, _num(on[k], 2), _num(off[k], 2), _num(on[k] - off[k], 2)]
            for k, label in labels]


def syscall_rows(att: dict[str, Any]) -> list[list[str]]:
    return [["every system call" if r["syscall"] == ALL else r["syscall"],
             _num(r["on_per_request"], 3), _num(r["off_per_request"], 3)]
            for r in att["syscalls"]]


def process_rows(att: dict[str, Any]) -> list[list[str]]:
    """Every lab process's CPU per request (reports before it was recorded: none)."""
    return [[r["process"], _num(r["on_us_per_request"], 2), _num(r["off_us_per_request"], 2),
             _num(r["on_us_per_request"] - r["off_us_per_request"], 2)]
            for r in att.get("processes", [])]
