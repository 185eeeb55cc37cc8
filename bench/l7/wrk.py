"""wrk: the command line for one measurement and a parser for its ``--latency`` report."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.l7.peers import pinned

_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.M)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)", re.M)
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


class WrkError(RuntimeError):
    """wrk failed or printed something that is not a report."""


@dataclass(frozen=True, slots=True)
class WrkResult:
    rps: float
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    socket_errors: dict[str, int] = field(default_factory=dict)
    non_2xx: int = 0

    @property
    def errors(self) -> int:
        return sum(self.socket_errors.values()) + self.non_2xx

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["errors"] = self.errors
        return out


def wrk_argv(
    url: str,
    *,
    headers: Sequence[tuple[str, str]] = (),
    threads: int = 1,
    connections: int = 32,
    seconds: int = 10,
    cpu: int | None = 0,
) -> list[str]:
    argv = pinned(cpu) if cpu is not None else []
    argv += ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    argv += ["--timeout", "5s"]
    for name, value in headers:
        argv += ["-H", f"{name}: {value}"]
    return [*argv, url]


def parse_wrk(text: str) -> WrkResult:
    rps = _RPS.search(text)
    total = _TOTAL.search(text)
    percentiles = {m[1]: float(m[2]) * _MS[m[3]] for m in _PERCENTILE.finditer(text)}
    if rps is None or total is None or "50" not in percentiles or "99" not in percentiles:
        raise WrkError("not a wrk --latency report:\n" + text.strip()[-800:])
    socket = _SOCKET.search(text)
    socket_errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, socket.groups()), strict=True))
        if socket
        else {}
    )
    non_2xx = _NON2XX.search(text)
    return WrkResult(
        rps=float(rps[1]),
        requests=int(total[1]),
        seconds=float(total[2]) * _MS[total[3]] / 1000.0,
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        socket_errors=socket_errors,
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
    )
