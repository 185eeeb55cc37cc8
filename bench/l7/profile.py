"""py-spy under load, and where the waypoint's time goes: samples of the worker's main
thread (the event loop) grouped into the stages of a request."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.l7.peers import pinned

FLOWS_JSON = "flows: JSON encoding + unix socket write (the agent sink)"
FLOWS_BUILD = "flows: Flow objects built from records"

# (stage, function names). Flow stages win wherever they are in a stack (their socket
# writes count for them); otherwise a sample goes to the stage of the frame nearest its
# leaf that names one of these functions. With ``--native`` the leaf is often a libc
# syscall wrapper, which puts kernel time in the kernel stages.
FLOW_STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (FLOWS_JSON, ("FlowForwarder.__call__", "json_lines_sink")),
    (FLOWS_BUILD, ("L7FlowBuilder.flow", "FlowRecorder.flush")),
)
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("kernel: socket reads (read syscalls under uvloop)", ("read", "readv", "recv", "recvfrom",
                                                           "recvmsg")),
    ("kernel: socket writes (write syscalls, to the client and upstream)",
     ("write", "writev", "send", "sendto", "sendmsg")),
    ("kernel: getpid, from asyncio.get_running_loop() (CPython 3.11 checks the pid on "
     "every call)", ("getpid",)),
    ("flows: record on the hot path", ("FlowRecorder.record",)),
    ("metrics: per-request observe", ("WaypointMetrics.observe",)),
    (
        "routing: Request/Headers objects, lookup, filters, backend pick",
        ("Proxy.route", "RouteTables.route", "Proxy.parent_for", "Proxy.pick"),
    ),
    (
        "client write: response head and body to the client",
        ("Http1Connection.data", "Http1Connection.head", "Http1Connection.end",
         "Http1Connection.flush", "response_head"),
    ),
    (
        "upstream request: head built, pool, write",
        ("Proxy._send", "Proxy.request_bytes", "Pool.acquire", "Http1Upstream.begin",
         "upstream_head"),
    ),
    (
        "upstream response: parse (httptools) and relay",
        ("Http1Upstream.data_received", "ResponseParser", "Proxy._stream",
         "Http1Upstream.attach", "Pool.release", "end_to_end"),
    ),
    (
        "client request: parse (httptools), Exchange, task spawn",
        ("Http1Connection.data_received", "Http1Connection._feed", "RequestParser",
         "Http1Connection._request", "Http1Connection._next"),
    ),
    (
        "per-request coroutine chain (handle/forward/_upstream/_tries/_attempt)",
        ("Proxy.handle", "Proxy.forward", "Proxy._upstream", "Proxy._tries", "Proxy._attempt",
         "Http1Connection._serve"),
    ),
    ("event loop: epoll and libuv/uvloop bookkeeping", ("epoll_pwait", "epoll_wait",
                                                        "uv__io_poll", "uv_run",
                                                        "run_worker")),
)
OTHER = "other"
SYSCALLS = ("read", "write", "getpid", "epoll_pwait", "epoll_wait", "send", "sendto", "recv",
            "writev", "readv", "clock_gettime")


@dataclass(frozen=True, slots=True)
class Profile:
    samples: int
    """Samples of the event-loop thread (other threads, such as the idle /metrics
    server, are left out)."""
    stages: list[tuple[str, float]]
    """(stage, share of samples), largest first."""
    top_self: list[tuple[str, float]]
    """(function (file:line), share of samples spent in it, not its callees)."""
    syscalls: list[tuple[str, float]]
    """(libc syscall wrapper, share of samples): only with ``--native`` stacks."""


def function_name(frame: str) -> str:
    """``Proxy.handle (l7proxy/proxy.py:177)`` -> ``Proxy.handle``."""
    return frame.split(" (", 1)[0]


def _matches(name: str, names: tuple[str, ...]) -> bool:
    return any(name == n or name.startswith(n + ".") for n in names)


def stage_of(frames: list[str]) -> str:
    names = [function_name(f) for f in frames]
    for stage, wanted in FLOW_STAGES:
        if any(_matches(name, wanted) for name in names):
            return stage
    for name in reversed(names):
        for stage, wanted in STAGES:
            if _matches(name, wanted):
                return stage
    return OTHER


def analyse(folded: str) -> Profile:
    """Samples of the event-loop thread only: stacks through ``Thread._bootstrap`` are
    other threads (the /metrics server, which py-spy counts although it sits in poll)."""
    stages: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    syscalls: Counter[str] = Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if any(f.startswith("Thread._bootstrap") for f in frames):
            continue
        n = int(count)
        total += n
        stages[stage_of(frames)] += n
        self_time[frames[-1]] += n
        leaf = function_name(frames[-1])
        if leaf in SYSCALLS:
            syscalls[leaf] += n
    if total == 0:
        return Profile(0, [], [], [])
    return Profile(
        total,
        [(stage, n / total) for stage, n in stages.most_common()],
        [(frame, n / total) for frame, n in self_time.most_common(15)],
        [(name, n / total) for name, n in syscalls.most_common()],
    )


def record(pid: int, out: Path, *, seconds: int, fmt: str, cpu: int, rate: int = 200,
           native: bool = True) -> str:
    """``py-spy record`` of ``pid`` for ``seconds`` (run on ``cpu``, the load core, so the
    sampler does not take the waypoint's core), with native frames (C, libc syscall
    wrappers) when ``native`` (which stops the process per sample), else without stopping
    it (``--nonblocking``); returns py-spy's own output."""
    pyspy = Path(sys.executable).parent / "py-spy"
    mode = ["--native"] if native else ["--nonblocking"]
    argv = [*pinned(cpu), str(pyspy), "record", "--pid", str(pid), "-d", str(seconds),
            "-r", str(rate), "-f", fmt, "-o", str(out), *mode]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"py-spy failed ({done.returncode}): {done.stderr.strip()[-600:]}")
    return done.stderr
