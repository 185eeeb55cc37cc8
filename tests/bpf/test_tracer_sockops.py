"""Connections and RTT from sock_ops on a node's pod cgroup, in the kernel: both ends of a
connection on the pod address and on loopback are recorded and attributed (by address, by
namespace), a refused connect too; the RTT samples are the kernel's own srtt as ``ss -ti``
shows it for the same socket; a process outside the node's cgroup is not traced (the cgroup
boundary holds, whatever its netns and address); the cap stops the callbacks; the
tracer cache adopts the pinned sock_ops program without attaching it twice, pause and resume
detach and attach it, and an older copy left attached by a dead agent is replaced. Traffic
stays in a network namespace of the test's own; cgroups are the test's own (conftest)."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.datapath import bpfinfo
from agent.datapath.features import feature_probe
from agent.datapath.native import BPF_CGROUP_SOCK_OPS, obj_get, prog_query
from agent.tracing.attach import SOCKOPS, SOCKOPS_FN
from agent.tracing.records import KIND_CLOSE, KernelRecord
from agent.tracing.tracer import CLASSIC_PROBE, RAW_PROBE, Tracer, plan_hooks
from lab import cgroups
from lab.state import pin_dir
from tests.bpf.conftest import TRACE_POD_IP, NodeCgroups
from tests.bpf.test_tracer import EXCHANGE_LOOP, _records
from tests.bpf.test_tracer import SCRIPT as CONNECTIONS

pytestmark = pytest.mark.bpf

REPO = Path(__file__).resolve().parents[2]
N = 200

# One connection in the pod (client and server sockets both), N small exchanges; then ss for
# the client socket while it is open. Prints {"port", "ss_rtt_us", "ss"} and waits for a line
# on stdin before closing (the test reads the tracer's live state meanwhile).
SCRIPT = "import json, re, socket, subprocess, sys" + EXCHANGE_LOOP + r"""port = c.getsockname()[1]
out = subprocess.run(["ss", "-tin", "src", f"{ip}:{port}"], capture_output=True,
                     text=True).stdout
rtt = re.search(r"\brtt:([\d.]+)/", out)
print(json.dumps({"port": port, "ss_rtt_us": float(rtt.group(1)) * 1000 if rtt else None,
                  "ss": out}), flush=True)
sys.stdin.readline()
c.close(); s.close(); srv.close()
"""


def within(value: float, reference: float) -> bool:
    """The issue's accuracy bar: 10% or 50 µs of the reference."""
    return abs(value - reference) <= max(0.10 * reference, 50)


class Run:
    """SCRIPT in the netns, as a member of `cgroup` (lab.cgroups.in_cgroup: before it runs)."""

    def __init__(self, netns: str, cgroup: Path) -> None:
        argv = ["nsenter", f"--net=/var/run/netns/{netns}", "--",
                *cgroups.in_cgroup(cgroup, [sys.executable, "-c", SCRIPT, TRACE_POD_IP,
                                            str(N)])]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, self.proc.communicate(timeout=30)[1]
        self.got: dict[str, Any] = json.loads(line)

    def close(self) -> None:
        _, err = self.proc.communicate("\n", timeout=30)
        assert self.proc.returncode == 0, err


def run_connections(netns: str, cgroup: Path) -> dict[str, int]:
    """tests/bpf/test_tracer.py's connections script in the netns, as a member of `cgroup`:
    its client ports by name (pod, loopback)."""
    out = subprocess.run(
        ["nsenter", f"--net=/var/run/netns/{netns}", "--",
         *cgroups.in_cgroup(cgroup, [sys.executable, "-c", CONNECTIONS, TRACE_POD_IP])],
        check=True, capture_output=True, text=True, timeout=30).stdout
    ports: dict[str, int] = json.loads(out)
    return ports


def client_close(tracer: Tracer, port: int) -> KernelRecord:
    found = [r for r in _records(tracer, 2) if r.kind == KIND_CLOSE and r.role == 1
             and r.sport == port]
    assert found, f"no close record for client port {port}"
    return found[0]


def live_client_states(tracer: Tracer) -> list[Any]:
    """The open client sockets' conn_state entries (only this test's pod is local)."""
    return [v for v in tracer.table("trace_conns_v1").values() if v.role == 1]


@pytest.fixture
def sockops_tracer(node_cgroups: NodeCgroups) -> Iterator[Tracer]:
    t = Tracer.load(plan_hooks(feature_probe(), str(node_cgroups.node)))
    try:
        t.set_local([TRACE_POD_IP])
        yield t
    finally:
        t.close()


def test_rtt_cb_samples_match_ss_for_the_same_socket(sockops_tracer: Tracer, netns: str,
                                                     node_cgroups: NodeCgroups) -> None:
    tracer = sockops_tracer
    assert SOCKOPS in tracer.hooks.attached
    assert RAW_PROBE not in tracer.plan.hooks and CLASSIC_PROBE not in tracer.plan.hooks
    run = Run(netns, node_cgroups.pod)  # a pod below the node's cgroup
    try:
        ss = run.got["ss_rtt_us"]
        assert ss is not None, run.got["ss"]
        # While the socket is open only RTT_CB has sampled since the handshake's read.
        live = live_client_states(tracer)
        assert len(live) == 1, live
        # one RTT measurement per exchange, folded into the conn_state every 16th
        # (trace_sockops.c: TRACE_RTT_FOLD)
        assert live[0].srtt_samples >= N - 15
        # The live value is the one folded at the last 16th sample, so up to 15 samples older
        # than ss's reading: on a loaded machine the RTT moves that much (75 vs 265 µs seen).
        # It must be one of the samples; the record at close is held to ss's value below.
        assert live[0].srtt_min_us <= live[0].srtt_last_us <= live[0].srtt_max_us, live[0]
    finally:
        run.close()
    rec = client_close(tracer, run.got["port"])
    # Every sample is in the record: the ones not yet folded (200 = 12 x 16 + 8) reach the
    # conn_state at the state changes, before the tracepoint sends it.
    assert rec.pod_ip == TRACE_POD_IP and rec.srtt_samples >= N + 1
    assert within(rec.srtt_last_us, ss) and within(rec.srtt_sum_us / rec.srtt_samples, ss), (
        rec, run.got["ss"])
    assert rec.srtt_min_us <= rec.srtt_last_us <= rec.srtt_max_us
    print(f"\naccuracy (sock_ops): ss rtt {ss:.0f}µs, traced last {rec.srtt_last_us}µs, "
          f"mean {rec.srtt_sum_us / rec.srtt_samples:.0f}µs over {rec.srtt_samples} samples")


def test_connections_are_recorded_and_attributed_without_the_state_tracepoint(
        sockops_tracer: Tracer, netns: str, node_cgroups: NodeCgroups) -> None:
    tracer = sockops_tracer
    assert set(tracer.hooks.attached) == {SOCKOPS, "tracepoint:tcp:tcp_retransmit_skb",
                                          "raw_tracepoint:kfree_skb"}
    ports = run_connections(netns, node_cgroups.pod)
    inode = os.stat(f"/var/run/netns/{netns}").st_ino
    closes = [r for r in _records(tracer, 5) if r.kind == KIND_CLOSE]
    by_port: dict[int, list[KernelRecord]] = {}
    for r in closes:
        by_port.setdefault(r.sport if r.role == 1 else r.dport, []).append(r)
    for name in ("pod", "loopback"):
        pair = sorted(by_port.get(ports[name], []), key=lambda r: r.role)
        assert [r.role for r in pair] == [1, 2], (name, closes)
        client, server = pair
        assert (client.sport, client.dport) == (server.dport, server.sport)
        for r in pair:
            assert r.pod_ip == TRACE_POD_IP and r.netns == inode
            # the handshake's srtt, and the one read leaving ESTABLISHED
            assert r.srtt_first_us > 0 and r.srtt_samples >= 2
            assert r.time_ns > r.established_ns and r.last_state not in (0, 1, 2, 3)
        assert client.established_ns > client.start_ns  # connect latency
        assert server.established_ns == server.start_ns  # a server starts established
    # 127.0.0.1 on both ends: the pod is known only through the namespace.
    assert {(r.saddr, r.daddr) for r in by_port[ports["loopback"]]} == {("127.0.0.1",) * 2}
    assert {(r.saddr, r.daddr) for r in by_port[ports["pod"]]} == {(TRACE_POD_IP,) * 2}
    refused = [r for r in closes if r.dport == 9]
    assert len(refused) == 1 and refused[0].role == 1, closes
    assert refused[0].established_ns == 0 and refused[0].last_state == 2  # SYN_SENT
    assert refused[0].sport and refused[0].saddr == TRACE_POD_IP


def test_a_process_outside_the_nodes_cgroup_is_not_traced(
        sockops_tracer: Tracer, netns: str, node_cgroups: NodeCgroups) -> None:
    """Same netns, same pod address, but its process sits in another node's cgroup: sock_ops
    never runs for its sockets, so neither end is recorded."""
    outside = Run(netns, node_cgroups.outside)
    outside.close()
    inside = Run(netns, node_cgroups.pod)  # the same program, in the node: traced
    inside.close()
    records = _records(sockops_tracer, 2)  # the ring keeps order: outside's came first
    inside_client = [r for r in records if r.role == 1 and r.sport == inside.got["port"]]
    assert inside_client and inside_client[0].srtt_samples >= N, records
    port = outside.got["port"]
    assert not [r for r in records if port in (r.sport, r.dport)], records


def test_the_cap_stops_a_sockets_callbacks(netns: str, node_cgroups: NodeCgroups) -> None:
    tracer = Tracer.load(plan_hooks(feature_probe(), str(node_cgroups.node)), rtt_cap=16)
    try:
        tracer.set_local([TRACE_POD_IP])
        run = Run(netns, node_cgroups.pod)
        run.close()
        rec = client_close(tracer, run.got["port"])
    finally:
        tracer.close()
    # The handshake's read, RTT_CB up to 16 in all, the read at close; not one per exchange.
    assert 2 < rec.srtt_samples <= 17, rec


def attached_ids(cg: Path) -> list[int]:
    fd = os.open(cg, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return prog_query(fd, BPF_CGROUP_SOCK_OPS)
    finally:
        os.close(fd)


def pinned_id(pin: Path) -> int:
    fd = obj_get(pin / SOCKOPS_FN)
    try:
        return bpfinfo.prog_info(fd).id
    finally:
        os.close(fd)


# An agent that compiles, pins, attaches and dies without stopping (os._exit).
DIES = r"""
import os, sys
from pathlib import Path
from agent.datapath.features import feature_probe
from agent.tracing.tracer import Tracer, plan_hooks
t = Tracer.load(plan_hooks(feature_probe(), sys.argv[3]), pin_dir=Path(sys.argv[1]),
                state_dir=Path(sys.argv[2]))
print(t.adopted is None, flush=True)
os._exit(0)
"""


def test_the_cache_adopts_the_sock_ops_program_and_never_attaches_it_twice(
        node_cgroups: NodeCgroups, netns: str, tmp_path: Path) -> None:
    pin, state, cg = pin_dir("test" + secrets.token_hex(3), "n1"), tmp_path / "state", \
        node_cgroups.node
    plan = plan_hooks(feature_probe(), str(cg))
    try:
        died = subprocess.run([sys.executable, "-c", DIES, str(pin), str(state), str(cg)],
                              capture_output=True, text=True, cwd=REPO, timeout=120,
                              env=dict(os.environ, PYTHONPATH=str(REPO)))
        assert died.returncode == 0 and died.stdout.strip() == "True", died.stderr
        first = pinned_id(pin)
        assert attached_ids(cg) == [first]  # left attached by the dead agent
        tracer = Tracer.load(plan, pin_dir=pin, state_dir=state)
        try:
            assert tracer.adopted is not None
            assert attached_ids(cg) == [first]  # found there, not attached again
            # The restarted agent learns its pods and traces them (an adopted tracer holds
            # only the maps its programs use: CI once lost every record here).
            tracer.set_local([TRACE_POD_IP])
            port = run_connections(netns, node_cgroups.pod)["pod"]
            pair = [r for r in _records(tracer, 2) if r.kind == KIND_CLOSE
                    and port in (r.sport, r.dport)]
            assert sorted(r.role for r in pair) == [1, 2], pair
            assert all(r.pod_ip == TRACE_POD_IP for r in pair), pair
            tracer.set_attached(False)  # SIGUSR1
            assert attached_ids(cg) == []
            tracer.set_attached(True)  # SIGUSR2
            tracer.set_attached(True)
            assert attached_ids(cg) == [first]
        finally:
            tracer.close()
        assert attached_ids(cg) == []  # stopped: detached
        # Dead again, then a start with other inputs compiles a new copy: the old one goes.
        subprocess.run([sys.executable, "-c", DIES, str(pin), str(state), str(cg)],
                       check=True, capture_output=True, cwd=REPO, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
        assert attached_ids(cg) == [first]
        tracer = Tracer.load(plan, pin_dir=pin, state_dir=state, rtt_cap=64)
        try:
            assert tracer.adopted is None
            assert attached_ids(cg) == [pinned_id(pin)] != [first]
        finally:
            tracer.close()
        assert attached_ids(cg) == []
    finally:
        shutil.rmtree(pin.parent, ignore_errors=True)


def test_lab_cgroup_wrapper_places_the_process_before_it_runs(node_cgroups: NodeCgroups) -> None:
    out = subprocess.run(cgroups.in_cgroup(node_cgroups.pod, ["cat", "/proc/self/cgroup"]),
                         check=True, capture_output=True, text=True).stdout
    unified = re.search(r"^0::(.*)$", out, re.M)
    assert unified, out
    assert "/sys/fs/cgroup/unified" + unified.group(1) == str(node_cgroups.pod)
