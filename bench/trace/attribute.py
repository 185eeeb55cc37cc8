"""``bench.trace --attribute``'s readings around each wrk run (the arithmetic is in
bench/trace/attribution.py): the agents' BPF programs' run-time stats, node1's waypoint's
CPU times and its system calls counted by ``perf stat``.

The stats are on for the whole bench (`bench.bpfprogs.bpf_stats`: the kernel turns them
off when the fd closes, however the bench ends). They add two clock reads to every program
run and perf adds a count to every system call of the waypoint, in both states; the tracer's
programs only run with tracing on, so an attributed run's on/off cost reads higher than a
plain run's: its figures are the attribution, not the cost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from bench.bpfprogs import held_programs, prog_info
from bench.l4.labs import BenchError
from bench.trace.attribution import Sample, parse_perf_stat, prog_runs, schedstat_ns, stat_times
from bench.tracecost_stats import ProgInfo, ProgStats

# The system calls a uvloop waypoint makes per request, and the RTT reads of its split
# (getsockopt TCP_INFO); perf counts each of them, and every call (raw_syscalls).
SYSCALLS = ("getsockopt", "read", "write", "writev", "sendto", "sendmsg", "recvfrom",
            "recvmsg", "epoll_wait", "epoll_pwait", "epoll_ctl")
TRACEFS = Path("/sys/kernel/tracing/events/syscalls")


def perf_events() -> list[str]:
    """The syscall tracepoints this kernel has, of `SYSCALLS`."""
    have = [n for n in SYSCALLS if (TRACEFS / f"sys_enter_{n}").is_dir()]
    if "getsockopt" not in have:
        raise BenchError(f"--attribute: no {TRACEFS}/sys_enter_getsockopt (tracefs mounted?)")
    return ["raw_syscalls:sys_enter", *(f"syscalls:sys_enter_{n}" for n in have)]


class Attributor:
    """One reading before and after each wrk run (`begin`, `end`)."""

    def __init__(self, agents: list[int], waypoint: int) -> None:
        self.agents = agents
        self.waypoint = waypoint
        self.events = perf_events()
        self.infos: dict[int, ProgInfo] = {}
        self._progs: dict[int, ProgStats] = {}
        self._cpu = (0.0, 0.0)
        self._run_ns = 0
        self._perf: subprocess.Popen[bytes] | None = None
        self._out = Path(tempfile.gettempdir()) / f"bench-trace-perf-{os.getpid()}.txt"

    def _times(self) -> tuple[tuple[float, float], int]:
        base = Path(f"/proc/{self.waypoint}")
        try:
            cpu = stat_times((base / "stat").read_text(), os.sysconf("SC_CLK_TCK"))
            run = schedstat_ns(p.read_text() for p in (base / "task").glob("*/schedstat"))
        except OSError as err:
            raise BenchError(f"--attribute: the waypoint (pid {self.waypoint}) is gone: "
                             f"{err}") from err
        return cpu, run

    def begin(self) -> None:
        self._progs = held_programs(self.agents)
        for pid in self._progs.keys() - self.infos.keys():
            self.infos[pid] = prog_info(pid)
        tids = ",".join(sorted(p.name for p in Path(f"/proc/{self.waypoint}/task").iterdir()))
        self._out.unlink(missing_ok=True)
        # -t, not -p: this perf counts nothing for -p here (every event "<not counted>")
        self._perf = subprocess.Popen(
            ["perf", "stat", "-x,", "-o", str(self._out), "-e", ",".join(self.events),
             "-t", tids], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not self._started():  # perf writes its header once its counters are open
            if self._perf.poll() is not None or time.monotonic() > deadline:
                self._stop_perf()
                raise BenchError("--attribute: perf stat did not start: "
                                 f"{self._perf_stderr()}")
            time.sleep(0.05)
        self._cpu, self._run_ns = self._times()

    def _started(self) -> bool:
        try:
            return self._out.read_text().startswith("# started")
        except OSError:
            return False

    def _perf_stderr(self) -> str:
        if self._perf is None or self._perf.stderr is None:
            return ""
        return self._perf.stderr.read().decode(errors="replace").strip()[-300:]

    def _stop_perf(self) -> str:
        perf, self._perf = self._perf, None
        if perf is None:
            return ""
        if perf.poll() is None:
            perf.send_signal(signal.SIGINT)  # our own child, by its pid
            try:
                perf.wait(timeout=10)
            except subprocess.TimeoutExpired:
                perf.kill()
                perf.wait()
        try:
            return self._out.read_text()
        finally:
            self._out.unlink(missing_ok=True)

    def end(self, tracing: bool, requests: int) -> Sample:
        (user1, sys1), run1 = self._times()
        progs = held_programs(self.agents)
        text = self._stop_perf()
        try:
            syscalls = parse_perf_stat(text)
        except ValueError as err:
            raise BenchError(f"--attribute: {err}") from err
        (user0, sys0), run0 = self._cpu, self._run_ns
        return Sample(tracing, requests, prog_runs(self.infos, self._progs, progs),
                      user1 - user0, sys1 - sys0, run1 - run0, syscalls)

    def close(self) -> None:
        self._stop_perf()
