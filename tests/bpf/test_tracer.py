"""The tracer's programs on this kernel: every hook the issue names exists here and is used,
they load, and they fire on real connections in a network namespace of the test's own, with
sockets attributed by address and, for loopback, by the namespace learned from the pod's own
sockets. Traffic stays inside that namespace."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from agent.datapath.features import feature_probe
from agent.flows.enrich import EndpointIndex
from agent.tracing.feed import attribute, monotonic_clock
from agent.tracing.kallsyms import Symbols
from agent.tracing.reasons import kernel_drop_reasons
from agent.tracing.records import KIND_CLOSE, KIND_DROP, KernelRecord, to_flow
from agent.tracing.tracer import SOURCES, Tracer, plan_hooks

pytestmark = pytest.mark.bpf

POD_IP = "10.99.77.1"

# In the namespace: a server on the pod address and on loopback, a client for each, and a
# connection to a closed port. Prints the client ports.
SCRIPT = r"""
import json, socket, sys
ip = sys.argv[1]
out = {}
for name, addr in (("pod", ip), ("loopback", "127.0.0.1")):
    srv = socket.socket(); srv.bind((addr, 0)); srv.listen()
    c = socket.create_connection((addr, srv.getsockname()[1])); s, _ = srv.accept()
    for _ in range(5):
        c.sendall(b"ping"); s.recv(16); s.sendall(b"pong"); c.recv(16)
    out[name] = c.getsockname()[1]
    c.close(); s.close(); srv.close()
try:
    socket.create_connection((ip, 9), timeout=2)
except OSError:
    pass
print(json.dumps(out))
"""


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"tulle-test{secrets.token_hex(3)}-trace"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "addr", "add", f"{POD_IP}/32", "dev", "lo"]):
            subprocess.run(["ip", "netns", "exec", name, *cmd], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


@pytest.fixture
def tracer() -> Iterator[Tracer]:
    t = Tracer.load(plan_hooks(feature_probe()))
    try:
        yield t
    finally:
        t.close()


def test_every_tracing_hook_exists_here_and_none_is_a_kprobe() -> None:
    plan = plan_hooks(feature_probe())
    assert plan.missing == ()
    assert plan.sources == tuple(SOURCES)
    assert not any(h.startswith(("kprobe", "fentry")) for h in plan.hooks)
    assert "raw_tracepoint:tcp_probe" in plan.hooks  # per segment: the cheap kind


def _records(tracer: Tracer, want: int, timeout: float = 10.0) -> list[KernelRecord]:
    got: list[KernelRecord] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got.extend(tracer.read())
        time.sleep(0.05)
    return got


def test_programs_fire_and_attribute_by_address_and_namespace(tracer: Tracer, netns: str) -> None:
    tracer.set_local([POD_IP])
    assert b"tcp_probe" in tracer.bpf.raw_tracepoint_fds  # so the samples below are its
    ports = json.loads(subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-c", SCRIPT, POD_IP],
        check=True, capture_output=True, text=True, timeout=30).stdout)
    inode = os.stat(f"/var/run/netns/{netns}").st_ino
    records = _records(tracer, 6)
    closes = [r for r in records if r.kind == KIND_CLOSE]
    by_port = {}
    for r in closes:
        by_port.setdefault(r.sport if r.role == 1 else r.dport, []).append(r)
    for name in ("pod", "loopback"):
        pair = by_port.get(ports[name], [])
        assert sorted(r.role for r in pair) == [1, 2], (name, records)
        for r in pair:
            assert r.pod_ip == POD_IP and r.netns == inode
            assert r.established_ns > r.start_ns and r.srtt_samples >= 5
    # 127.0.0.1 on both ends: the pod is known only through the namespace.
    assert {r.saddr for r in by_port[ports["loopback"]]} == {"127.0.0.1"}

    drops = [r for r in records if r.kind == KIND_DROP and r.dport == 9]
    assert drops, records
    reasons = kernel_drop_reasons()
    assert reasons[drops[0].drop_reason] == "NO_SOCKET" and drops[0].netns == inode

    index = EndpointIndex.build(pods=[{"ip": POD_IP, "namespace": "t", "name": "p-1"}])
    loop = next(r for r in by_port[ports["loopback"]] if r.role == 1)
    flow = to_flow(loop, monotonic_clock(), reasons, Symbols())
    assert flow is not None
    named = attribute(flow, loop, index, "n1")
    assert named.source is not None and named.source.pod_name == "p-1"


def test_sockets_of_addresses_not_local_are_not_traced(tracer: Tracer, netns: str) -> None:
    tracer.set_local(["10.99.77.200"])  # not the namespace's address
    subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", SCRIPT, POD_IP],
                   check=True, capture_output=True, timeout=30)
    assert not [r for r in _records(tracer, 1, timeout=1.0) if r.pod_ip == POD_IP]
