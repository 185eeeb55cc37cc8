"""The tracer's programs on this kernel: every hook the issue names exists here and is used,
they load, and they fire on real connections in a network namespace of the test's own, with
sockets attributed by address and, for loopback, by the namespace learned from the pod's own
sockets. Traffic stays inside that namespace."""

from __future__ import annotations

import json
import os
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
from tests.bpf.conftest import TRACE_POD_IP

pytestmark = pytest.mark.bpf

POD_IP = TRACE_POD_IP  # the netns fixture's (tests/bpf/conftest.py)

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
    assert "raw_tracepoint:inet_sock_set_state" in plan.hooks  # per state change: the same


def _records(tracer: Tracer, want: int, timeout: float = 10.0) -> list[KernelRecord]:
    got: list[KernelRecord] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got.extend(tracer.read())
        time.sleep(0.05)
    return got


def test_programs_fire_and_attribute_by_address_and_namespace(tracer: Tracer, netns: str) -> None:
    tracer.set_local([POD_IP])
    assert "raw_tracepoint:tcp_probe" in tracer.hooks.attached  # the samples below are its
    # The records below: addresses and ports read from the socket, not a tracepoint record.
    assert "raw_tracepoint:inet_sock_set_state" in tracer.hooks.attached
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
            # At least the two srtt reads from the socket (established, leaving it); tcp_probe
            # adds a random 1 in 16 of the segments (test_tcp_probe_samples_...).
            assert r.established_ns > r.start_ns and r.srtt_samples >= 2
            assert r.srtt_first_us > 0  # the handshake's, read as it became established
    # 127.0.0.1 on both ends: the pod is known only through the namespace.
    assert {r.saddr for r in by_port[ports["loopback"]]} == {"127.0.0.1"}
    assert {r.daddr for r in by_port[ports["loopback"]]} == {"127.0.0.1"}
    for r in by_port[ports["pod"]]:
        assert (r.saddr, r.daddr) == (POD_IP, POD_IP) and r.sport and r.dport

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


def test_a_namespace_learned_foreign_is_traced_once_its_address_is_local(
        tracer: Tracer, netns: str) -> None:
    """The first run teaches the kernel that the namespace holds none of this node's pods
    (its server socket's address is not local: trace_foreign_v1), so its server sockets end
    at SYN_RECV; adding the address starts a new generation, and the next run is traced."""
    tracer.set_local(["10.99.77.200"])
    run = ["ip", "netns", "exec", netns, sys.executable, "-c", SCRIPT, POD_IP]
    subprocess.run(run, check=True, capture_output=True, timeout=30)
    inode = os.stat(f"/var/run/netns/{netns}").st_ino
    foreign = tracer.table("trace_foreign_v1")
    gen = tracer.table("trace_gen_v1")
    assert foreign[foreign.Key(inode)].value == gen[gen.Key(0)].value
    assert not [r for r in _records(tracer, 1, timeout=0.5) if r.pod_ip == POD_IP]
    tracer.set_local(["10.99.77.200", POD_IP])
    ports = json.loads(subprocess.run(run, check=True, capture_output=True, text=True,
                                      timeout=30).stdout)
    closes = [r for r in _records(tracer, 4) if r.kind == KIND_CLOSE]
    for name in ("pod", "loopback"):
        roles = sorted(r.role for r in closes
                       if (r.sport if r.role == 1 else r.dport) == ports[name])
        assert roles == [1, 2], (name, closes)


# One connection in the namespace (both its sockets), n small exchanges with TCP_NODELAY.
EXCHANGE_LOOP = r"""
ip, n = sys.argv[1], int(sys.argv[2])
srv = socket.socket(); srv.bind((ip, 0)); srv.listen()
c = socket.create_connection((ip, srv.getsockname()[1])); s, _ = srv.accept()
for sock in (c, s):
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for _ in range(n):
    c.sendall(b"ping"); s.recv(16); s.sendall(b"pong"); c.recv(16)
"""
# ... then prints the client port.
EXCHANGES = "import socket, sys" + EXCHANGE_LOOP + r"""print(c.getsockname()[1])
c.close(); s.close(); srv.close()
"""


@pytest.mark.parametrize("kind", ["raw", "classic"])
def test_tcp_probe_samples_one_segment_in_16_and_keeps_the_summary(netns: str, kind: str) -> None:
    """Two tracers watch the same connection: one takes every segment, one the default
    1 in 16. The sampled one looks up far fewer segments, and its summary is a subset of the
    full one's: the same first (handshake) and last (read leaving ESTABLISHED) values, min
    and max inside the full range, and the mean within the issue's RTT tolerance."""
    features = feature_probe()
    if kind == "classic":
        features = {**features, "raw_tracepoint:kfree_skb": False}  # no raw: the fallback
    full = Tracer.load(plan_hooks(features), probe_sample=1)
    try:
        sampled = Tracer.load(plan_hooks(features))
        try:
            assert ("raw_tracepoint:tcp_probe" in sampled.hooks.attached) == (kind == "raw")
            # The state tracepoint follows (its classic record fill is the fallback's path).
            assert (("raw_tracepoint:inet_sock_set_state" in sampled.hooks.attached)
                    == (kind == "raw"))
            for t in (full, sampled):
                t.set_local([POD_IP])
            n = 800
            port = int(subprocess.run(
                ["ip", "netns", "exec", netns, sys.executable, "-c", EXCHANGES, POD_IP,
                 str(n)], check=True, capture_output=True, text=True, timeout=60).stdout)
            got = {}
            for name, t in (("full", full), ("sampled", sampled)):
                got[name] = next(r for r in _records(t, 2) if r.kind == KIND_CLOSE
                                 and r.role == 1 and r.sport == port)
        finally:
            sampled.close()
    finally:
        full.close()
    a, b = got["full"], got["sampled"]
    assert a.srtt_samples >= n + 2  # every segment the client received, and the two reads
    # Binomial(n, 1/16) + 2: mean 52; outside (2, n/4) has odds below 1e-20.
    assert 2 < b.srtt_samples < n // 4, b
    assert (b.srtt_first_us, b.srtt_last_us) == (a.srtt_first_us, a.srtt_last_us)
    assert a.srtt_min_us <= b.srtt_min_us <= b.srtt_max_us <= a.srtt_max_us
    mean_a, mean_b = a.srtt_sum_us / a.srtt_samples, b.srtt_sum_us / b.srtt_samples
    assert abs(mean_b - mean_a) <= max(0.10 * mean_a, 50), (a, b)
