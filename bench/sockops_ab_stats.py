"""bench.sockops_ab's pure parts: the variants, one run's figures per exchange, and the
medians over alternating rounds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import median


@dataclass(frozen=True, slots=True)
class Variant:
    """One way of taking RTT samples. `probe_copies` tcp_probe raw-tracepoint programs (one
    per node tracer sharing the kernel); a sock_ops program on the client pod's cgroup, and
    on the server pod's too when `sockops_server` (the lab: both nodes' agents), that keeps
    taking RTT callbacks (`sockops_limit` 0) or clears its flag after that many samples,
    keeping the summary in sk_storage or (`sockops_lru`) in an LRU hash keyed by the socket's
    address, as bpf/trace_sockops.c did before 2026-12-06."""

    name: str
    label: str
    probe_copies: int = 0
    sockops: bool = False
    sockops_server: bool = False
    sockops_limit: int = 0
    sockops_lru: bool = False  # the summary in an LRU hash keyed by the socket (as shipped
    # until 2026-12-06), not in sk_storage
    sockops_sampled: bool = False  # (LRU only) a random 1 in SAMPLE_MASK + 1 callbacks
    sockops_empty: bool = False  # RTT callbacks that return at once: the floor


VARIANTS: tuple[Variant, ...] = (
    Variant("a", "no tracing"),
    Variant("b1", "tcp_probe 1/16, one tracer", probe_copies=1),
    Variant("b2", "tcp_probe 1/16, two tracers (lab)", probe_copies=2),
    Variant("c1", "sock_ops RTT_CB, client cgroup", sockops=True),
    Variant("c2", "sock_ops RTT_CB, both cgroups (lab)", sockops=True, sockops_server=True),
    Variant("d1", "sock_ops, off after 64, client", sockops=True, sockops_limit=64),
    Variant("d2", "sock_ops, off after 64, both (lab)", sockops=True, sockops_server=True,
            sockops_limit=64),
    Variant("e1", "sock_ops RTT_CB into an LRU hash, client", sockops=True, sockops_lru=True),
    Variant("e2", "sock_ops RTT_CB into an LRU hash, both (lab)", sockops=True,
            sockops_server=True, sockops_lru=True),
    Variant("f1", "sock_ops RTT_CB 1/4 into an LRU hash, client", sockops=True,
            sockops_lru=True, sockops_sampled=True),
    Variant("f2", "sock_ops RTT_CB 1/4 into an LRU hash, both (lab)", sockops=True,
            sockops_server=True, sockops_lru=True, sockops_sampled=True),
    Variant("z2", "sock_ops RTT_CB doing nothing, both (the floor)", sockops=True,
            sockops_server=True, sockops_empty=True),
)


def pick(names: str) -> list[Variant]:
    """`a,b2,c2` -> those variants in that order; a clear error naming an unknown one."""
    known = {v.name: v for v in VARIANTS}
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in known]
    if unknown or not wanted:
        raise ValueError(f"unknown variant(s) {unknown or names!r}; known: {', '.join(known)}")
    return [known[n] for n in wanted]


@dataclass(frozen=True, slots=True)
class ChildResult:
    exchanges: int
    cpu_s: float  # user + system of client and server
    wall_s: float


def parse_child(text: str) -> ChildResult:
    """The bench child's last line: `EXCHANGES CPU_SECONDS WALL_SECONDS`."""
    lines = text.strip().splitlines()
    parts = lines[-1].split() if lines else []
    try:
        n, cpu, wall = int(parts[0]), float(parts[1]), float(parts[2])
    except (IndexError, ValueError):
        raise ValueError(f"bench child printed {text.strip()[-200:]!r}, "
                         "not 'EXCHANGES CPU_SECONDS WALL_SECONDS'") from None
    if len(parts) != 3 or n <= 0 or cpu < 0 or wall <= 0:
        raise ValueError(f"bench child printed an impossible result {lines[-1]!r}")
    return ChildResult(n, cpu, wall)


@dataclass(frozen=True, slots=True)
class RunFigures:
    """One run, per exchange (one request and its response)."""

    variant: str
    cpu_us: float
    exchanges_per_s: float
    prog_runs: float  # BPF program runs (all copies)
    prog_ns: float  # their run_time_ns: the program bodies, without dispatch


def figures(variant: str, child: ChildResult, runs: int, run_ns: int) -> RunFigures:
    n = child.exchanges
    return RunFigures(variant, child.cpu_s * 1e6 / n, n / child.wall_s, runs / n, run_ns / n)


@dataclass(frozen=True, slots=True)
class Summary:
    variant: str
    rounds: int
    cpu_us: float  # medians over the rounds
    cpu_us_delta: float  # against the no-tracing variant's median; 0 without one
    exchanges_per_s: float
    prog_runs: float
    prog_ns: float
    ns_per_run: float


def summarise(runs: Iterable[RunFigures], baseline: str = "a") -> list[Summary]:
    """Medians per variant, in first-seen order; CPU against `baseline` when it was run."""
    by: dict[str, list[RunFigures]] = {}
    for r in runs:
        by.setdefault(r.variant, []).append(r)
    base = median(r.cpu_us for r in by[baseline]) if baseline in by else None
    out = []
    for name, rs in by.items():
        cpu = median(r.cpu_us for r in rs)
        progs, ns = median(r.prog_runs for r in rs), median(r.prog_ns for r in rs)
        out.append(Summary(name, len(rs), cpu, cpu - base if base is not None else 0.0,
                           median(r.exchanges_per_s for r in rs), progs, ns,
                           ns / progs if progs else 0.0))
    return out


def table(summaries: Sequence[Summary], labels: Mapping[str, str]) -> str:
    """A markdown table of the summaries."""
    rows = ["| variant | rounds | CPU µs/exchange (median) | Δ vs a (µs) | exchanges/s | "
            "prog runs/exchange | prog ns/exchange | ns/run |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in summaries:
        rows.append(f"| {s.variant} {labels.get(s.variant, '')} | {s.rounds} | {s.cpu_us:.2f} | "
                    f"{s.cpu_us_delta:+.2f} | {s.exchanges_per_s:,.0f} | {s.prog_runs:.3f} | "
                    f"{s.prog_ns:.1f} | {s.ns_per_run:.1f} |")
    return "\n".join(rows)
