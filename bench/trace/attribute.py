"""``bench.trace --attribute``'s readings around each wrk run (the arithmetic is in
bench/trace/attribution.py): the agents' BPF programs' run-time stats, node1's waypoint's
CPU times and its system calls, counted in the kernel by a raw tracepoint.

The stats are on for the whole bench (`bench.bpfprogs.bpf_stats`: the kernel turns them
off when the fd closes, however the bench ends). They add two clock reads to every program
run and the counter adds a few instructions to every system call, in both states; the tracer's
programs only run with tracing on, so an attributed run's on/off cost reads higher than a
plain run's: its figures are the attribution, not the cost.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.bpfprogs import held_programs, prog_info
from bench.l4.labs import BenchError
from bench.trace.attribution import Sample, prog_runs, schedstat_ns, stat_times, syscall_delta
from bench.tracecost_stats import ProgInfo, ProgStats

# Counts the waypoint's system calls by number in the kernel (perf stat -t/-p counted nothing
# here: every event "<not counted>"). A raw tracepoint on every system call of the machine,
# ended at once for other processes; its cost falls on on and off runs alike.
SYSCALL_COUNTER = """
BPF_HASH(calls, u64, u64, 1024);
RAW_TRACEPOINT_PROBE(sys_enter)
{
	u64 id = ctx->args[1];

	if (bpf_get_current_pid_tgid() >> 32 != TGID)
		return 0;
	calls.atomic_increment(id);
	return 0;
}
"""


class SyscallCounter:
    """System calls of one process (by its tgid), by name, between `read` calls."""

    def __init__(self, tgid: int) -> None:
        from bcc import BPF

        self.bpf = BPF(text=SYSCALL_COUNTER, cflags=[f"-DTGID={int(tgid)}"])

    def read(self) -> dict[str, int]:
        from bcc.syscall import syscall_name

        out: dict[str, int] = {}
        for key, value in self.bpf[b"calls"].items():
            name = syscall_name(key.value).decode(errors="replace")
            out[name] = out.get(name, 0) + int(value.value)
        return out

    def close(self) -> None:
        self.bpf.cleanup()


class Attributor:
    """One reading before and after each wrk run (`begin`, `end`)."""

    def __init__(self, agents: list[int], waypoint: int) -> None:
        self.agents = agents
        self.waypoint = waypoint
        self.syscalls = SyscallCounter(waypoint)
        self._calls: dict[str, int] = {}
        self.infos: dict[int, ProgInfo] = {}
        self._progs: dict[int, ProgStats] = {}
        self._cpu = (0.0, 0.0)
        self._run_ns = 0

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
        self._calls = self.syscalls.read()
        self._cpu, self._run_ns = self._times()

    def end(self, tracing: bool, requests: int, process_cpu: dict[str, float]) -> Sample:
        """The readings since `begin`; `process_cpu`: each lab process's CPU seconds over the
        run (the caller's, who reads them for the run's table anyway)."""
        (user1, sys1), run1 = self._times()
        progs = held_programs(self.agents)
        syscalls = syscall_delta(self._calls, self.syscalls.read())
        (user0, sys0), run0 = self._cpu, self._run_ns
        return Sample(tracing, requests, prog_runs(self.infos, self._progs, progs),
                      user1 - user0, sys1 - sys0, run1 - run0, syscalls, process_cpu)

    def close(self) -> None:
        self.syscalls.close()
