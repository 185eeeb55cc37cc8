"""Running a container's probes in the lab, without blocking the kubelet's tick: each run
is a process started in the container's context (its network namespace, cgroup,
environment and working directory, as a CRI exec is) and polled on later ticks, killed
once ``timeoutSeconds`` have passed (a failure, as the kubelet counts a timeout).

``exec`` runs the probe's command with ``$(VAR)`` expanded as the kubelet does
(ExpandContainerCommandOnlyStatic: from the container's ``env`` values as written; a
variable set by ``valueFrom`` expands to ""). ``tcpSocket`` and ``httpGet`` connect from
inside the pod's network namespace to the pod's IP (or ``host``) with this interpreter: a
lab pod has no separate node to probe from (the kubelet connects from the node); HTTPS does
not verify the certificate, as the kubelet does not; ``httpHeaders`` are sent (a ``Host``
header names the host; ``User-Agent`` and ``Accept`` default to the kubelet's); a status in
[200, 400) passes. ``grpc`` is not run in the lab: the probe fails with a message saying
so (lab/README.md). What a failed run said is its event's message: the start and the end
of its output (where an error is), bounded."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from agent.model.core import Container
from agent.model.core_container import HTTPGetAction, Probe
from lab.podspec import expand

OUTPUT_LIMIT = 1024  # bytes of a probe's output kept for its event: its start and its end
_ELIDED = b"\n[...]\n"
UNSUPPORTED = "grpc probes are not supported in the lab"
USER_AGENT = "kube-probe/1.32"  # the kubelet's, at lab.apiserver.discovery.KUBE_VERSION

# The probes' own errors in one line, as the kubelet words them (not a traceback).
_TCP = ("import socket, sys\n"
        "try:\n"
        "    socket.create_connection((sys.argv[1], int(sys.argv[2])), "
        "timeout=float(sys.argv[3])).close()\n"
        "except OSError as err:\n"
        "    sys.exit(f'dial tcp {sys.argv[1]}:{sys.argv[2]}: {err.strerror or err}')\n")
_HTTP = ("import json, ssl, sys, urllib.error, urllib.request\n"
         "ctx = ssl._create_unverified_context()\n"
         # no proxy from the container's environment: the kubelet's probes use none
         "opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), "
         "urllib.request.HTTPSHandler(context=ctx))\n"
         "headers = {}\n"
         "for name, value in json.loads(sys.argv[3]):\n"  # a repeated name: one list
         "    key = name.capitalize()\n"
         "    headers[key] = f'{headers[key]}, {value}' if key in headers else value\n"
         "request = urllib.request.Request(sys.argv[1], headers=headers)\n"
         "try:\n"
         "    code = opener.open(request, timeout=float(sys.argv[2])).status\n"
         "except urllib.error.HTTPError as err:\n"
         "    code = err.code\n"
         "except (OSError, ValueError) as err:\n"
         "    reason = getattr(err, 'reason', err)\n"
         "    sys.exit(f'Get \"{sys.argv[1]}\": {getattr(reason, \"strerror\", None) or reason}')\n"
         "print(f'HTTP probe failed with statuscode: {code}' if not 200 <= code < 400 else '')\n"
         "sys.exit(0 if 200 <= code < 400 else 1)\n")


@dataclass
class ProbeRun:
    proc: subprocess.Popen[bytes]
    output: IO[bytes]
    deadline: float  # monotonic: killed and failed after this


def port_of(container: Container, port: int | str) -> int | None:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    return next((p.container_port for p in container.ports if p.name == port), None)


def probe_argv(
    probe: Probe, container: Container, ip: ipaddress.IPv4Address | None, python: str
) -> list[str] | str:
    """What runs the probe inside the container's context, or why it cannot run."""
    if probe.exec is not None:
        static = {var.name: var.value or "" for var in container.env}
        return [expand(arg, static) for arg in probe.exec.command]
    if probe.grpc is not None:
        return UNSUPPORTED
    action = probe.http_get or probe.tcp_socket
    assert action is not None  # the model admits exactly one handler
    port = port_of(container, action.port)
    if port is None:
        return f"port {action.port!r} is not a named port of container {container.name}"
    host = action.host or (str(ip) if ip is not None else "")
    if not host:
        return "the pod has no IP yet"
    timeout = str(probe.timeout_seconds)
    if probe.http_get is not None:
        path = probe.http_get.path or "/"
        path = path if path.startswith("/") else "/" + path
        hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        url = f"{probe.http_get.scheme.lower()}://{hostport}{path}"
        # -I: no PYTHON* from the pod's env
        return [python, "-I", "-c", _HTTP, url, timeout, _headers(probe.http_get)]
    return [python, "-I", "-c", _TCP, host, str(port), timeout]


def _headers(action: HTTPGetAction) -> str:
    """The request's headers as JSON pairs: the probe's, then the kubelet's defaults for
    the ones it does not set (pkg/probe/http/request.go)."""
    pairs = [(h.name, h.value) for h in action.http_headers]
    given = {name.lower() for name, _ in pairs}
    pairs += [(name, value) for name, value in (("User-Agent", USER_AGENT), ("Accept", "*/*"))
              if name.lower() not in given]
    return json.dumps(pairs)


def said(output: IO[bytes]) -> str:
    """What a run wrote, for its event: all of it up to OUTPUT_LIMIT bytes, else its start
    and its end (a traceback's or a script's error comes last)."""
    size = output.seek(0, os.SEEK_END)
    output.seek(0)
    if size <= OUTPUT_LIMIT:
        data = output.read()
    else:
        half = (OUTPUT_LIMIT - len(_ELIDED)) // 2
        head = output.read(half)
        output.seek(size - half)
        data = head + _ELIDED + output.read(half)
    return data.decode("utf-8", "replace").strip()


def launch(
    argv: Sequence[str], env: Mapping[str, str], timeout: float, now: float
) -> ProbeRun:
    """Start a probe run (its own session, so a timeout kills all it started)."""
    output = tempfile.TemporaryFile()
    proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=output,
                            stderr=subprocess.STDOUT, env=dict(env), start_new_session=True,
                            close_fds=True)
    return ProbeRun(proc, output, now + timeout)


def poll(run: ProbeRun, now: float, timeout: float) -> tuple[bool, str] | None:
    """None while the run goes on; else (success, what it said)."""
    code = run.proc.poll()
    if code is None and now < run.deadline:
        return None
    if code is None:
        stop(run)
        return False, f"command timed out after {timeout:g}s"
    text = said(run.output)
    run.output.close()
    if code == 0:
        return True, text
    return False, text or f"command exited with {code}"


def stop(run: ProbeRun) -> None:
    """Kill a run's session (the probe process we started, by its PID) and reap it."""
    try:
        os.killpg(run.proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    run.proc.wait()
    run.output.close()

