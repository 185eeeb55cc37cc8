"""An agent's first full sync, stage by stage: wall time, CPU and RSS after each stage.

The bench seeds a lab store in bulk (bench/control/fsseed.py: N Services with one
EndpointSlice of E endpoints each, written before the API server starts, seconds instead of
the minutes the API takes), starts the lab API server on loopback (its own process), then:

- ``stages`` (default): a fresh process (bench/control/fsstages.py) runs what the agent's
  first sync runs, stage by stage, in the daemon's order (agent/daemon.py,
  agent/bcc_thread.py): imports; on a thread, the eBPF load (BCC compile, maps pinned under a
  throw-away pin dir) and the tracer's compile (agent.bcc_thread.order for a start that
  compiles, or ``FSBENCH_TRACE_ORDER``=before-load|after-load|after-sync and
  ``FSBENCH_PLAN_BESIDE``=True|False); on the main thread meanwhile the list per kind (HTTP,
  JSON decode apart), model decode, planning (Maglev apart), the flow enricher's index, then
  the wait for the load and the kernel map writes. It prints a table: seconds, CPU seconds of
  the stage's own thread, when it ended, RSS after it and peak RSS (VmHWM) so far.
  ``--no-bpf`` stubs the kernel (no root needed).
- ``daemon``: runs the real agent (``python -m agent.cli.node agent``) against it and reads
  its health file's ``first_sync_s`` (process start to first datapath sync) and VmHWM, as
  ``make bench-control`` does for a restarted agent.

    sudo .venv/bin/python -m bench.control.firstsync [--services 10000] [--endpoints 10]
        [--mode stages|daemon|both] [--no-bpf] [--no-trace] [--profile DIR]

``--profile DIR`` records each run with py-spy as well: collapsed stacks per thread
(``stages.txt``, ``daemon-fresh.txt``, ``daemon-restart.txt``; ``FSBENCH_SPY_RATE`` samples
per second, 200 by default), for flamegraph.pl or speedscope.
Root: the eBPF stages pin maps under /sys/fs/bpf/tulle/fsbench-PID/ and remove them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.control.fsstages import NODE, run_stages

SYNC_TARGET_S, SYNC_TARGET_MB = 2.0, 300.0


# -- the driver --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def api_server(workdir: Path, services: int, endpoints: int) -> Iterator[Path]:
    from bench.control import fsseed
    from bench.control.apiserver import served
    from lab.apiserver.__main__ import bootstrap
    from lab.store import Store

    started = time.monotonic()
    store_path = workdir / "store.db"
    with Store(store_path, history=1000) as store:
        bootstrap(store)
        fsseed.seed(store, services, endpoints, progress)
    progress(f"store seeded in {time.monotonic() - started:.1f} s (bulk, before the API server)")
    args = ("--port", str(free_port()), "--lab", "fsbench")
    with served(store_path, workdir / "state", *args) as kubeconfig:
        yield kubeconfig


def progress(message: str) -> None:
    print(f"• {message}", file=sys.stderr, flush=True)


def _spy(profile: Path | None, name: str) -> list[str]:
    spy = Path(sys.executable).parent / "py-spy"
    if profile is None:
        return []
    profile.mkdir(parents=True, exist_ok=True)
    rate = os.environ.get("FSBENCH_SPY_RATE", "200")  # samples per second
    return [str(spy), "record", "--nonblocking", "-r", rate, "--threads",
            "--format", "raw", "-o", str(profile / f"{name}.txt"), "--"]


def stages_mode(kubeconfig: Path, bpf: bool, trace: bool,
                profile: Path | None) -> dict[str, Any]:
    pin_dir = Path(f"/sys/fs/bpf/tulle/fsbench-{os.getpid()}/{NODE}") if bpf else None
    out = kubeconfig.parent / "stages.json"
    argv = [*_spy(profile, "stages"), sys.executable, "-m", "bench.control.firstsync",
            "--child", str(kubeconfig), "--child-out", str(out),
            *(["--pin-dir", str(pin_dir)] if pin_dir else []),
            *([] if trace else ["--no-trace"])]
    try:
        subprocess.run(argv, check=True, timeout=600)
    finally:
        if pin_dir is not None:
            shutil.rmtree(pin_dir.parent, ignore_errors=True)  # bpffs: unlink the pins
    return dict(json.loads(out.read_text()))


def daemon_mode(kubeconfig: Path, trace: bool, profile: Path | None,
                timeline: bool = False) -> dict[str, Any]:
    """The real agent twice on one pin dir and state dir: a fresh node's start (BCC compiles)
    and a restart (the compile caches adopt the pinned programs: the datapath's, the tracer's)."""
    pin_dir = Path(f"/sys/fs/bpf/tulle/fsbench-{os.getpid()}/{NODE}")
    try:
        fresh = _agent_start(kubeconfig, pin_dir, trace, profile, "fresh", timeline)
        fresh.update(SAMPLERS["fresh"].summary())
        restart = _agent_start(kubeconfig, pin_dir, trace, profile, "restart", timeline)
        restart.update(SAMPLERS["restart"].summary())
    finally:
        shutil.rmtree(pin_dir.parent, ignore_errors=True)  # bpffs: unlink the pins
    return {**restart, "fresh": fresh}


def _agent_start(kubeconfig: Path, pin_dir: Path, trace: bool, profile: Path | None,
                 name: str, timeline: bool = False) -> dict[str, Any]:
    work = kubeconfig.parent
    health = work / f"health-{name}.json"
    spans = work / f"timeline-{name}.json"
    env = {**os.environ, "FSTIMELINE_OUT": str(spans)} if timeline else None
    module = "bench.control.fstimeline" if timeline else "agent.cli.node"
    server = _api_server_pid()
    server_cpu = _cpu_of(server) if server else None
    argv = [*_spy(profile, f"daemon-{name}"), sys.executable, "-m", module, "agent",
            "--node", NODE, "--kubeconfig", str(kubeconfig), "--health-file", str(health),
            "--pin-dir", str(pin_dir), "--state-dir", str(work / "agent-state"),
            "--cni-state-dir", "",  # no CNI records here: nothing written to the host's
            "--observer-port", str(free_port()),
            "--metrics-address", "", *([] if trace else ["--no-trace"])]
    log = (work / f"agent-{name}.log").open("w")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    sampler = SAMPLERS[name] = RssSampler(proc.pid if profile is None else None)
    try:
        deadline = time.monotonic() + 300
        datapath: dict[str, Any] = {}
        cpu_s: float | None = None
        while time.monotonic() < deadline:
            try:
                datapath = json.loads(health.read_text()).get("datapath") or {}
            except (OSError, ValueError):
                datapath = {}
            if datapath.get("first_sync_s") is not None:
                cpu_s = _cpu_of(proc.pid if profile is None else _agent_pid(proc.pid))
                if server and server_cpu is not None:  # the API server's CPU meanwhile
                    server_cpu = round((_cpu_of(server) or 0.0) - server_cpu, 2)
                break
            if proc.poll() is not None:
                raise SystemExit(f"the agent exited ({proc.returncode}); see {log.name}")
            time.sleep(0.02)
        else:
            raise SystemExit("the agent did not finish its first sync within 300 s")
        if trace:  # a tracer compiled after the first sync counts: wait for it to start
            _wait_for_log(Path(log.name), TRACER_STARTED, time.monotonic() + 60)
        time.sleep(0.5)
        pid = proc.pid if profile is None else _agent_pid(proc.pid)
        status = Path(f"/proc/{pid}/status").read_text()
        hwm = next(int(line.split()[1]) for line in status.splitlines()
                   if line.startswith("VmHWM:"))
        text = Path(log.name).read_text()
        return {"first_sync_s": datapath["first_sync_s"], "loaded_s": datapath.get("loaded_s"),
                "services": datapath.get("services"), "peak_rss_mb": round(hwm / 1024, 1),
                "cpu_at_sync_s": cpu_s, "api_server_cpu_s": server_cpu,
                **({"timeline": _read_timeline(spans)} if timeline else {}),
                "adopted": "datapath: adopted the programs" in text,
                "tracer_adopted": "tracer: adopted the programs" in text}
    finally:
        sampler.stop.set()
        if profile is not None and proc.poll() is None:
            # py-spy writes its file when its target exits, not when it is terminated itself:
            # stop the agent (py-spy's child, ours by extension), then py-spy ends.
            agent_pid = _agent_pid(proc.pid)
            if agent_pid != proc.pid:
                os.kill(agent_pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    pass
        if proc.poll() is None:
            proc.terminate()  # our own child
        proc.wait(30)
        log.close()
        if os.environ.get("FSBENCH_LOGS"):  # keep the agent's log (the work dir goes)
            shutil.copy(log.name, Path(os.environ["FSBENCH_LOGS"]) / Path(log.name).name)


# What the agent logs once its tracer runs, or once it gave up on it (agent.tracing.start).
TRACER_STARTED = ("tracing hooks in use", "without kernel tracing", "without it")


def _wait_for_log(path: Path, needles: tuple[str, ...], deadline: float) -> bool:
    while time.monotonic() < deadline:
        if any(needle in path.read_text() for needle in needles):
            return True
        time.sleep(0.05)
    return False


SAMPLERS: dict[str, RssSampler] = {}  # per agent start (fresh, restart)


class RssSampler:
    """The agent's VmRSS every 5 ms from its start, so a report can say when the peak was
    (seconds since the process started, as first_sync_s counts)."""

    def __init__(self, pid: int | None) -> None:
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()
        self.origin = time.monotonic()
        if pid is not None:
            threading.Thread(target=self._run, args=(pid,), daemon=True).start()

    def _run(self, pid: int) -> None:
        path = Path(f"/proc/{pid}/status")
        while not self.stop.wait(0.005):
            try:
                rss = next(int(line.split()[1]) for line in path.read_text().splitlines()
                           if line.startswith("VmRSS:"))
            except (OSError, StopIteration):
                return
            self.samples.append((time.monotonic() - self.origin, rss / 1024))

    def summary(self) -> dict[str, Any]:
        if not self.samples:
            return {}
        at, mb = max(self.samples, key=lambda s: s[1])
        timeline: dict[float, float] = {}  # the highest sample in each 100 ms
        for s, rss in self.samples:
            key = round(s - s % 0.1, 1)
            timeline[key] = max(timeline.get(key, 0.0), round(rss, 1))
        return {"rss_peak_at_s": round(at, 2), "rss_sampled_peak_mb": round(mb, 1),
                "rss_timeline_mb": timeline}


def _cpu_of(pid: int) -> float | None:
    """The process's CPU seconds (all threads, user and system) so far, by /proc: read within
    ~20 ms of the health file reporting the first sync."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)


def _api_server_pid() -> int | None:
    """Our child serving the lab API (bench.control.apiserver), to count its CPU."""
    me = os.getpid()
    for pid in Path(f"/proc/{me}/task/{me}/children").read_text().split():
        try:
            if b"lab.apiserver" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return int(pid)
        except OSError:
            continue
    return None


def _read_timeline(path: Path) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return dict(json.loads(path.read_text())) if path.exists() else {}


def _agent_pid(spy_pid: int) -> int:
    """Under py-spy, the agent is py-spy's child."""
    children = Path(f"/proc/{spy_pid}/task/{spy_pid}/children").read_text().split()
    return int(children[0]) if children else spy_pid


def report(result: dict[str, Any]) -> str:
    lines = []
    stages = result.get("stages")
    if stages:
        lines += [f"Stages (one process, daemon order, tracer {stages['order']}, plan beside "
                  f"the compiles: {stages.get('plan_beside_compiles')}; by end time):",
                  "", "| stage | s | CPU s (its thread) | ended at s | RSS after (MB) "
                  "| of it anon (MB) | peak RSS (MB) | detail |",
                  "|---|---|---|---|---|---|---|---|"]
        skip = ("stage", "s", "cpu_s", "at", "rss_mb", "anon_mb", "hwm_mb")
        for row in stages["rows"]:
            detail = ", ".join(f"{k} {v}" for k, v in row.items() if k not in skip)
            lines.append(f"| {row['stage']} | {row['s']} | {row['cpu_s']} | {row.get('at')} "
                         f"| {row['rss_mb']} | {row['anon_mb']} | {row['hwm_mb']} | {detail} |")
        lines.append(f"\nfirst sync (harness start to the collector back on): "
                     f"{stages['first_sync_s']} s; peak RSS {stages['peak_rss_mb']} MB")
    daemon = result.get("daemon")
    if daemon:
        lines.append("\nReal agent (`python -m agent.cli.node agent`), first full sync from "
                     "process start:\n\n| start | first sync s | agent CPU s by then "
                     "| API server CPU s meanwhile | eBPF loaded at s | peak RSS MB "
                     "| RSS peaked at s | services in the maps |\n"
                     "|---|---|---|---|---|---|---|---|")
        for name, row in (("fresh node (compiles)", daemon.get("fresh")),
                          ("restart (compile cache)", daemon)):
            if row:
                how = "" if row.get("adopted") == ("restart" in name) else " (sic: see log)"
                peak_at = row.get("rss_peak_at_s", "")
                lines.append(f"| {name}{how} | {row['first_sync_s']} "
                             f"| {row.get('cpu_at_sync_s')} | {row.get('api_server_cpu_s')} "
                             f"| {row['loaded_s']} "
                             f"| {row['peak_rss_mb']} | {peak_at} | {row['services']} |")
        for name, row in (("fresh node", daemon.get("fresh")), ("restart", daemon)):
            if row and row.get("timeline"):
                from bench.control.fstimeline import summarize

                lines += ["", f"Timeline of the {name}'s start:", "", summarize(row["timeline"])]
    lines.append(f"\nTargets: ≤ {SYNC_TARGET_S:.0f} s and ≤ {SYNC_TARGET_MB:.0f} MB.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--endpoints", type=int, default=10, help="endpoints per Service")
    parser.add_argument("--mode", choices=("stages", "daemon", "both"), default="stages")
    parser.add_argument("--no-bpf", action="store_true", help="stub the kernel (stages only)")
    parser.add_argument("--no-trace", action="store_true", help="leave the tracer out")
    parser.add_argument("--profile", type=Path, help="py-spy flamegraphs into this directory")
    parser.add_argument("--timeline", action="store_true",
                        help="daemon mode: spans and per-thread CPU (bench.control.fstimeline)")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("--pin-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    trace = not args.no_trace
    if args.child and os.environ.get("FSBENCH_TRACEMALLOC"):  # where the memory stays
        import tracemalloc

        tracemalloc.start()
        run_stages(args.child, args.pin_dir, trace)
        top = tracemalloc.take_snapshot().statistics("lineno")[:25]
        print("\n".join(str(stat) for stat in top), file=sys.stderr)
        return 1
    if args.child:
        Path(args.child_out).write_text(json.dumps(run_stages(args.child, args.pin_dir, trace)))
        return 0
    bpf = not args.no_bpf
    if (bpf or args.mode != "stages") and os.geteuid() != 0:
        raise SystemExit("the eBPF stages and the daemon mode load BPF: run as root, "
                         "or pass --no-bpf --mode stages")
    result: dict[str, Any] = {"services": args.services,
                              "endpoints": args.services * args.endpoints}
    with tempfile.TemporaryDirectory(prefix="fsbench-") as tmp:
        with api_server(Path(tmp), args.services, args.endpoints) as kubeconfig:
            if args.mode in ("stages", "both"):
                result["stages"] = stages_mode(kubeconfig, bpf, trace, args.profile)
            if args.mode in ("daemon", "both"):
                result["daemon"] = daemon_mode(kubeconfig, trace, args.profile,
                                               args.timeline)
    text = report(result)
    print(text)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
