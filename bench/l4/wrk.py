"""wrk: the command line for one measurement and a parser for its report (pure)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_LATENCY = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.M)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)", re.M)
_SOCKET = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.M
)
_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)", re.M)


class WrkOutputError(ValueError):
    """wrk printed something that is not a report (it failed, or its format changed)."""


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
        """Socket errors (connect, read, write, timeout) plus non-2xx answers."""
        return sum(self.socket_errors.values()) + self.non_2xx

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["errors"] = self.errors
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WrkResult:
        return cls(rps=data["rps"], requests=data["requests"], seconds=data["seconds"],
                   p50_ms=data["p50_ms"], p99_ms=data["p99_ms"],
                   socket_errors=dict(data.get("socket_errors") or {}),
                   non_2xx=data.get("non_2xx", 0))


def wrk_argv(
    url: str, *, threads: int, connections: int, seconds: int, close: bool
) -> list[str]:
    """One measurement: `close` sends `Connection: close`, so every request is a new TCP
    connection (the new-connections-per-second figure); otherwise connections are kept."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
            "--timeout", "5s"]
    if close:
        argv += ["-H", "Connection: close"]
    return [*argv, url]


def parse_wrk(text: str) -> WrkResult:
    """A ``--latency`` report: requests/s, totals, the 50th and 99th percentiles, errors."""
    rps = _RPS.search(text)
    total = _TOTAL.search(text)
    latencies = {m.group(1): float(m.group(2)) * _UNITS_MS[m.group(3)]
                 for m in _LATENCY.finditer(text)}
    if rps is None or total is None or "50" not in latencies or "99" not in latencies:
        raise WrkOutputError("not a wrk --latency report:\n" + text.strip()[-800:])
    socket = _SOCKET.search(text)
    socket_errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, socket.groups()), strict=True))
        if socket else {}
    )
    non_2xx = _NON2XX.search(text)
    return WrkResult(
        rps=float(rps.group(1)),
        requests=int(total.group(1)),
        seconds=float(total.group(2)) * _UNITS_MS[total.group(3)] / 1000.0,
        p50_ms=latencies["50"],
        p99_ms=latencies["99"],
        socket_errors=socket_errors,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )
