"""Kernel connection tracing in a live lab, checked against references Tulle did not compute:
``ss -ti`` (the kernel's own RTT figure), the kernel's drop reason names in tracefs, and
retransmits caused on purpose with a tbf qdisc inside a pod."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, run_py, service, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.bpf]

NS = "trc"


@pytest.fixture(scope="module")
def trc(lab: Lab) -> dict[str, Any]:
    apply(lab, namespace(NS), deployment(NS, "srv", 1, node="node2"),
          deployment(NS, "cli", 1, node="node1"), service(NS, "srv", port=80))
    lab.wait_pods_ready(NS, 2, timeout=90)
    cli = pods_of(lab, NS, "cli")[0]
    srv = pods_of(lab, NS, "srv")[0]
    info = {"cli": cli["metadata"]["name"], "cli_ip": cli["status"]["podIP"],
            "srv": srv["metadata"]["name"], "srv_ip": srv["status"]["podIP"]}
    wait_for(lambda: lab.exec(NS, info["cli"], "curl", "-s", "--max-time", "2",
                              f"http://{info['srv_ip']}:8080/", check=False).returncode == 0,
             what="server reachable")
    return info


def trace_flows(lab: Lab, *args: str) -> list[dict[str, Any]]:
    out = lab.tulle("observe", "-o", "json", "--last", "2000", "-n", NS, *args).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def closes(lab: Lab, port: int) -> list[dict[str, Any]]:
    """Close records of the connection whose client port is `port`, one per node."""
    return [r for r in trace_flows(lab)
            if (r["flow"].get("tulle") or {}).get("tcp")
            and r["flow"]["l4"]["TCP"]["source_port"] == port]


# A client in the cli pod: connects, makes `n` keep-alive requests, reads `ss -tin` for its
# own socket while it is still open, then closes. Prints {"port", "ss_rtt_us"}.
CLIENT = r"""
import json, re, socket, subprocess, sys
ip, n = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((ip, 8080), timeout=10)
for i in range(n):
    s.sendall(b"GET /t HTTP/1.1\r\nHost: srv\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        body += s.recv(65536)
port = s.getsockname()[1]
out = subprocess.run(["ss", "-tin", "src", f":{port}"], capture_output=True, text=True).stdout
rtt = re.search(r"\brtt:([\d.]+)/", out)
s.close()
print(json.dumps({"port": port, "ss_rtt_us": float(rtt.group(1)) * 1000 if rtt else None,
                  "ss": out}))
"""


def test_connection_traced_on_both_nodes_with_pods_attributed(lab: Lab, trc: dict[str, Any]) -> None:
    got = run_py(lab, NS, trc["cli"], CLIENT, trc["srv_ip"], 5)
    records = wait_for(lambda: len(closes(lab, got["port"])) == 2 and closes(lab, got["port"]),
                       what="close records from both nodes")
    by_node = {r["node_name"]: r["flow"] for r in records}
    assert set(by_node) == {"node1", "node2"}
    for node, role, direction in (("node1", "client", "EGRESS"), ("node2", "server", "INGRESS")):
        f = by_node[node]
        tcp = f["tulle"]["tcp"]
        assert tcp["role"] == role and tcp["established"] is True
        assert f["traffic_direction"] == direction
        assert f["source"]["pod_name"] == trc["cli"] and f["IP"]["source"] == trc["cli_ip"]
        assert f["destination"]["pod_name"] == trc["srv"]
        assert f["IP"]["destination"] == trc["srv_ip"]
        assert f["l4"]["TCP"]["destination_port"] == 8080
        # Read when it became established and when it left it, plus tcp_probe's random
        # 1 in 16 segments (tests/bpf/test_tracer.py: the draw against every segment).
        assert tcp["srtt_us"]["samples"] >= 2
        assert tcp["srtt_us"]["min"] <= tcp["srtt_us"]["mean"] <= tcp["srtt_us"]["max"]
        assert tcp["lifetime_ns"] > 0 and tcp["retransmits"] == 0
        assert f["event_type"]["type"] == 7 and f["verdict"] == "FORWARDED"
    assert by_node["node1"]["tulle"]["tcp"]["connect_latency_ns"] > 0
    assert "connect_latency_ns" not in by_node["node2"]["tulle"]["tcp"]
    # The server's handshake: the kernel's SYN-ACK round trip, its first RTT sample.
    assert by_node["node2"]["tulle"]["tcp"]["handshake_rtt_us"] > 0


def test_rtt_matches_ss_for_the_same_socket(lab: Lab, trc: dict[str, Any]) -> None:
    got = run_py(lab, NS, trc["cli"], CLIENT, trc["srv_ip"], 20)
    assert got["ss_rtt_us"] is not None, got["ss"]
    records = wait_for(lambda: [r for r in closes(lab, got["port"]) if r["node_name"] == "node1"],
                       what="the client's close record")
    srtt = records[0]["flow"]["tulle"]["tcp"]["srtt_us"]
    reference = got["ss_rtt_us"]
    # RTT_CB on the node's pod cgroup: one sample per request, where tcp_probe took 1 in 16.
    assert srtt["samples"] >= 20, srtt
    # ss reads tp->srtt_us while the socket is open; our last sample is read from the same
    # socket as it leaves ESTABLISHED (nothing arrives in between: the exchange was over).
    assert abs(srtt["last"] - reference) <= max(0.10 * reference, 50), (srtt, got["ss"])
    print(f"\naccuracy: ss rtt {reference:.0f}µs, traced last {srtt['last']}µs, "
          f"min/mean/max {srtt['min']}/{srtt['mean']}/{srtt['max']}µs")


def _kernel_reason_names() -> dict[int, str]:
    """The reference: the kernel's own names, straight from its tracefs format file."""
    text = Path("/sys/kernel/tracing/events/skb/kfree_skb/format").read_text()
    return {int(c): n for c, n in re.findall(r'\{\s*(\d+)\s*,\s*"(\w+)"\s*\}', text)}


def test_drop_at_a_closed_port_has_the_kernel_reason(lab: Lab, trc: dict[str, Any]) -> None:
    lab.exec(NS, trc["cli"], "curl", "-s", "--max-time", "2", f"http://{trc['srv_ip']}:9/",
             check=False)

    def dropped() -> list[dict[str, Any]]:
        return [r for r in trace_flows(lab, "--verdict", "DROPPED")
                if r["flow"]["l4"].get("TCP", {}).get("destination_port") == 9
                and (r["flow"].get("tulle") or {}).get("kernel_drop_reason")]

    records = wait_for(dropped, what="a kernel drop at port 9")
    f = records[-1]["flow"]
    assert records[-1]["node_name"] == "node2"
    names = _kernel_reason_names()
    assert f["drop_reason_desc"] == names[f["tulle"]["kernel_drop_reason"]] == "NO_SOCKET"
    assert f["destination"]["pod_name"] == trc["srv"] and f["source"]["pod_name"] == trc["cli"]
    assert f["tulle"]["kernel_drop_location"].startswith("tcp_v4_rcv+")
    # The client's side: a connection that never got past SYN_SENT.
    failed = [r["flow"] for r in trace_flows(lab)
              if (r["flow"].get("tulle") or {}).get("tcp", {}).get("last_state") == "SYN_SENT"
              and r["flow"]["l4"]["TCP"]["destination_port"] == 9]
    assert failed and failed[-1]["tulle"]["tcp"]["established"] is False


# Upload through a tbf qdisc on the client pod's own interface whose queue holds one packet:
# the excess is dropped on the way out and TCP must retransmit it. The qdisc goes away after.
UPLOAD = r"""
import json, socket, subprocess, sys
ip = sys.argv[1]
tc = ["tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "2mbit", "burst", "1600",
      "limit", "1600"]
subprocess.run(tc, check=True)
try:
    s = socket.create_connection((ip, 8080), timeout=20)
    body = b"x" * 300000
    s.sendall(b"POST /up HTTP/1.1\r\nHost: srv\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    s.recv(65536)
    port = s.getsockname()[1]
    out = subprocess.run(["ss", "-tin", "src", f":{port}"], capture_output=True, text=True).stdout
    s.close()
finally:
    subprocess.run(["tc", "qdisc", "del", "dev", "eth0", "root"], check=True)
print(json.dumps({"port": port, "ss": out}))
"""


def test_retransmits_caused_on_purpose_are_counted(lab: Lab, trc: dict[str, Any]) -> None:
    got = run_py(lab, NS, trc["cli"], UPLOAD, trc["srv_ip"], timeout=60)
    ss_retrans = re.search(r"\bretrans:\d+/(\d+)", got["ss"])
    records = wait_for(lambda: [r for r in closes(lab, got["port"]) if r["node_name"] == "node1"],
                       what="the uploader's close record")
    tcp = records[0]["flow"]["tulle"]["tcp"]
    counted = tcp["retransmits"]
    assert counted > 0, got["ss"]
    # The kernel's own total for the socket, read just before close, counts segments; the
    # tracepoint counts retransmitted packets, and a TSO packet may carry several segments.
    assert ss_retrans and 0 < counted <= int(ss_retrans.group(1)), got["ss"]
    # Read at close, after ss: equal, unless the FIN itself had to be sent again.
    assert int(ss_retrans.group(1)) <= tcp["retransmitted_segments"] <= int(
        ss_retrans.group(1)) + 2
    print(f"\nretransmits: traced {counted} packets, {tcp['retransmitted_segments']} segments;"
          f" ss total {ss_retrans.group(1)}")


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_trace_cli_and_observe_filters(lab: Lab, trc: dict[str, Any]) -> None:
    got = run_py(lab, NS, trc["cli"], CLIENT, trc["srv_ip"], 3)
    lab.exec(NS, trc["cli"], "curl", "-s", "--max-time", "2", f"http://{trc['srv_ip']}:9/",
             check=False)
    wait_for(lambda: len(closes(lab, got["port"])) == 2, what="close records")

    def connects() -> list[dict[str, Any]]:
        out = lab.tulle("trace", "connect", "-o", "json", "--last", "100", "-n", NS).stdout
        return [e for e in _json_lines(out) if e.get("source_port") == got["port"]]

    events = wait_for(lambda: len(connects()) == 2 and connects(), what="trace connect events")
    client = next(e for e in events if e["role"] == "client")
    assert client["event"] == "connect" and client["connect_latency_ns"] > 0
    assert client["source"]["pod_name"] == trc["cli"]
    assert client["destination"]["workload"] == {"kind": "Deployment", "name": "srv"}

    text = lab.tulle("trace", "rtt", "--last", "100", "--from-pod", f"{NS}/{trc['cli']}").stdout
    assert f"{NS}/{trc['cli']}:{got['port']} -> {NS}/{trc['srv']}:8080 client srtt" in text

    hist = lab.tulle("trace", "connect", "--histogram", "-n", NS).stdout
    assert f"{NS}/cli -> {NS}/srv (" in hist and "connect µs" in hist

    drops = _json_lines(lab.tulle("trace", "drops", "-o", "json", "--last", "50", "-n", NS,
                                  "--to-port", "9").stdout)
    assert drops and all(d["reason"] == "NO_SOCKET" for d in drops)

    # observe: the retransmit filter keeps only connections that retransmitted, and the RTT
    # threshold splits by the mean smoothed RTT.
    retrans = [r["flow"] for r in trace_flows(lab, "--retransmits")]
    assert all(f["tulle"]["tcp"]["retransmits"] > 0 for f in retrans)
    mine = [r for r in trace_flows(lab, "--rtt-over", "1us") if r["flow"].get("tulle", {})
            .get("tcp") and r["flow"]["l4"]["TCP"]["source_port"] == got["port"]]
    assert len(mine) == 2
    assert not [r for r in trace_flows(lab, "--rtt-over", "10s")
                if r["flow"]["l4"].get("TCP", {}).get("source_port") == got["port"]]


def test_trace_follow_prints_new_connections_as_they_close(lab: Lab, trc: dict[str, Any]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli.main", "trace", "connect", "-f", "-o", "json",
         "--from-pod", f"{NS}/{trc['cli']}", "--node-name", "node1"],
        env=lab.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)  # the follow request reaches the agents before the connection
        got = run_py(lab, NS, trc["cli"], CLIENT, trc["srv_ip"], 1)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout or ()],
                         daemon=True).start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                event = json.loads(lines.get(timeout=1))
            except queue.Empty:
                continue
            if event.get("source_port") == got["port"]:
                assert event["role"] == "client" and event["connect_latency_ns"] > 0
                return
        raise AssertionError("no followed event for the new connection")
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_lab_status_reports_the_hooks_in_use(lab: Lab) -> None:
    out = wait_for(lambda: (s := lab.tulle("lab", "status").stdout).count(
        "tracing on 3 hooks (RTT from sock_ops)") == 2 and s, what="both agents tracing")
    assert "missing" not in out


# A UDP socket with the smallest receive buffer that never reads: datagrams past the buffer
# are dropped by the kernel on arrival, with the socket's own reason.
FLOOD = r"""
import json, socket, sys
ip = sys.argv[1]
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
r.bind((ip, 0))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(50):
    s.sendto(b"x" * 1000, (ip, r.getsockname()[1]))
print(json.dumps({"port": r.getsockname()[1]}))
"""


def test_full_receive_queue_drop_has_the_kernel_reason(lab: Lab, trc: dict[str, Any]) -> None:
    got = run_py(lab, NS, trc["srv"], FLOOD, trc["srv_ip"])

    def dropped() -> list[dict[str, Any]]:
        return [r for r in trace_flows(lab, "--verdict", "DROPPED", "--protocol", "udp")
                if r["flow"]["l4"]["UDP"]["destination_port"] == got["port"]]

    names = _kernel_reason_names()
    records = wait_for(lambda: [r for r in dropped()
                                if r["flow"]["drop_reason_desc"] == "SOCKET_RCVBUFF"],
                       what="kernel drops at the full socket")
    for r in dropped():  # also the datagrams the closing socket had queued, unread
        assert r["flow"]["drop_reason_desc"] == names[r["flow"]["tulle"]["kernel_drop_reason"]]
    assert {r["node_name"] for r in records} == {"node2"}
    assert records[-1]["flow"]["destination"]["pod_name"] == trc["srv"]


# The same client through the Service: the client's socket keeps the ClusterIP it dialled.
VIA_SERVICE = CLIENT.replace("(ip, 8080)", "(ip, 80)")


def test_connection_through_a_service_names_it(lab: Lab, trc: dict[str, Any]) -> None:
    vip = lab.get("services", NS)[0]["spec"]["clusterIP"]
    got = wait_for(lambda: run_py(lab, NS, trc["cli"], VIA_SERVICE, vip, 2),
                   what="service reachable")
    records = wait_for(lambda: len(closes(lab, got["port"])) == 2 and closes(lab, got["port"]),
                       what="close records of the service connection")
    by_node = {r["node_name"]: r["flow"] for r in records}
    client = by_node["node1"]
    assert client["IP"]["destination"] == vip
    assert client["destination_service"] == {"name": "srv", "namespace": NS}
    assert client["l4"]["TCP"]["destination_port"] == 80
    server = by_node["node2"]  # the server's socket sees the pod address after translation
    assert server["IP"]["destination"] == trc["srv_ip"]
    assert server["destination"]["pod_name"] == trc["srv"]
    assert server["source"]["pod_name"] == trc["cli"]
