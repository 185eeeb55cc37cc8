"""Filters on the kernel connection trace (``flow.tulle.tcp``), for `tulle observe` and
`tulle trace`: connections with retransmits, RTT or connect latency over a threshold.

    match_retransmits(["1"])     retransmits >= 1 (values are minimum counts, OR-ed)
    match_rtt_over(["5ms"])      mean smoothed RTT over 5 ms
    match_connect_over(["1ms"])  connect latency (client side) over 1 ms

Durations: a number with ns, us (or µs), ms or s; a bare number is milliseconds.
Flows without a connection trace never match.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from decimal import Decimal

from agent.flows.flow import Flow, TcpTrace

Predicate = Callable[[Flow], bool]
_DURATION = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>ns|us|µs|ms|s)?\s*$")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, None: 1_000_000}


class TraceFilterError(ValueError):
    """A trace filter value that cannot be understood (compile_filter raises it as a
    FilterError)."""


def parse_duration_ns(text: str, field: str) -> int:
    m = _DURATION.match(text)
    if m is None:
        raise TraceFilterError(f"{field}: {text!r} is not a duration (examples: 500us, 5ms, 1s)")
    return int(Decimal(m["n"]) * _UNIT_NS[m["unit"]])  # exact: no float rounding


def _tcp(f: Flow) -> TcpTrace | None:
    return f.tulle.tcp if f.tulle is not None else None


def match_retransmits(values: Sequence[str]) -> Predicate:
    try:
        least = max(1, min(int(v) for v in values))
    except ValueError:
        raise TraceFilterError(
            f"retransmits: {list(values)!r}, expected a minimum count such as 1"
        ) from None

    def match(f: Flow) -> bool:
        t = _tcp(f)
        return t is not None and t.retransmits >= least

    return match


def match_rtt_over(values: Sequence[str]) -> Predicate:
    limit_us = min(parse_duration_ns(v, "rtt-over") for v in values) / 1_000

    def match(f: Flow) -> bool:
        t = _tcp(f)
        return t is not None and t.srtt_us is not None and t.srtt_us.mean > limit_us

    return match


def match_connect_over(values: Sequence[str]) -> Predicate:
    limit = min(parse_duration_ns(v, "connect-over") for v in values)

    def match(f: Flow) -> bool:
        t = _tcp(f)
        return t is not None and t.connect_latency_ns > limit

    return match
