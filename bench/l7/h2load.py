"""h2load (nghttp2-client) as the gRPC load generator: its command line for unary calls
(a prebuilt length-prefixed request message, ``content-type: application/grpc``) and a
parser for its report plus its per-request log, read into bench.l4.wrk's ``WrkResult`` so
the L7 report's measurements and ratios apply unchanged (pure).

h2load prints no percentiles, only min/max/mean/sd; ``--log-file`` writes one line per
request (start in microseconds since the epoch, HTTP status, microseconds to the end of
the response), from which p50 and p99 are taken. h2load judges a call by its HTTP status
only: a gRPC error inside a 200 (``grpc-status`` in the trailers) would count as a success,
so the benchmark checks each peer's answers with a real gRPC client before loading it, and
compares the peer's own count of answered requests with h2load's.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from bench.l4.wrk import WrkResult
from bench.l7.peers import pinned

_FINISHED = re.compile(r"^finished in ([\d.]+)(us|ms|s), ([\d.]+) req/s", re.M)
_REQUESTS = re.compile(
    r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout", re.M,
)
_STATUS = re.compile(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", re.M)
_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


class H2loadOutputError(ValueError):
    """h2load printed something that is not a report (it failed, or its format changed)."""


def message(payload: bytes) -> bytes:
    """One gRPC message on the wire: the compressed flag (0), the 4-byte big-endian
    length, the bytes (gRPC over HTTP/2, "Length-Prefixed-Message")."""
    if len(payload) >= 1 << 32:
        raise ValueError("a gRPC message is at most 4 GiB")
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


def h2load_argv(
    url: str,
    *,
    body: Path,
    log: Path,
    seconds: int,
    warmup: int,
    connections: int,
    streams: int,
    cpu: int | None = 0,
) -> list[str]:
    """Unary calls to ``url`` (``http://host:port/package.Service/Method``, h2c prior
    knowledge) for ``seconds`` after ``warmup`` unrecorded ones, ``connections`` connections
    with ``streams`` calls in flight on each, one thread."""
    if seconds < 1 or connections < 1 or streams < 1 or warmup < 0:
        raise ValueError("seconds, connections and streams must be >= 1, warmup >= 0")
    argv = pinned(cpu) if cpu is not None else []
    argv += ["h2load", "-t1", f"-c{connections}", f"-m{streams}", f"-D{seconds}"]
    if warmup:
        argv += [f"--warm-up-time={warmup}"]
    argv += ["-d", str(body), "-H", "content-type: application/grpc", "-H", "te: trailers",
             f"--log-file={log}", url]
    return argv


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (``fraction`` in (0, 1])."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latencies_ms(log_text: str) -> list[float]:
    """The per-request log's latencies in ms, ascending (lines that are not three
    integers are refused: the format changed)."""
    out: list[float] = []
    for line in log_text.splitlines():
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3 or not all(f.strip().lstrip("-").isdigit() for f in fields):
            raise H2loadOutputError(f"h2load log line not understood: {line[:120]!r}")
        out.append(int(fields[2]) / 1000.0)
    out.sort()
    return out


def parse_h2load(report: str, log_text: str) -> WrkResult:
    """h2load's report and its ``--log-file`` -> the calls per second, the calls that
    succeeded, p50/p99, and errors (failed, errored, timeout; non-2xx answers)."""
    finished = _FINISHED.search(report)
    counts = _REQUESTS.search(report)
    status = _STATUS.search(report)
    if not finished or not counts or not status:
        raise H2loadOutputError(f"not an h2load report: {report.strip()[-400:]!r}")
    seconds = float(finished.group(1)) * _SECONDS[finished.group(2)]
    _total, _started, _done, succeeded, failed, errored, timeout = (
        int(x) for x in counts.groups())
    _ok, redirect, client_error, server_error = (int(x) for x in status.groups())
    latencies = latencies_ms(log_text)
    if succeeded and not latencies:
        raise H2loadOutputError("h2load counted calls but its log file is empty")
    return WrkResult(
        rps=float(finished.group(3)),
        requests=succeeded,
        seconds=seconds,
        p50_ms=round(percentile(latencies, 0.50), 3) if latencies else 0.0,
        p99_ms=round(percentile(latencies, 0.99), 3) if latencies else 0.0,
        socket_errors={"failed": failed, "errored": errored, "timeout": timeout},
        non_2xx=redirect + client_error + server_error,
    )
