"""Where a request's time went (`tulle trace request`), in a live lab, checked against
references Tulle did not compute: the echo server's ``?delay=`` (the backend's own time)
and a link shaped with ``tc tbf`` inside the client pod (the kernel queues the client's
packets behind a bulk upload: a known network delay), each next to the client's own
stopwatch. Tolerances are stated where they are asserted."""

from __future__ import annotations

import json
import statistics
from typing import Any

import pytest

from .conftest import Lab
from .test_datapath import PY, apply, deployment, namespace, pods_of, run_py, service, wait_for

pytestmark = pytest.mark.netns
NS = "rsp"
MS = 1_000_000
PARTS = ("client_network_ns", "proxy_ns", "upstream_connect_ns", "upstream_network_ns",
         "backend_ns")


@pytest.fixture(scope="module")
def rsp(lab: Lab) -> dict[str, Any]:
    """An echo backend on node2 behind a GAMMA route (so through node1's waypoint), a
    client pod on node1, and a sink pod for the tbf test's bulk upload."""
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "echo", "namespace": NS},
             "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "echo",
                                      "port": 80}],
                      "rules": [{"backendRefs": [{"name": "echo", "port": 80}]}]}}
    apply(lab, namespace(NS), deployment(NS, "echo", 1, node="node2"),
          deployment(NS, "sink", 1, node="node2"),  # takes the bulk upload, not the backend
          deployment(NS, "client", 1, node="node1"), service(NS, "echo"), route)
    lab.wait_pods_ready(NS, 3, timeout=90)
    client = pods_of(lab, NS, "client")[0]["metadata"]["name"]
    sink_ip = pods_of(lab, NS, "sink")[0]["status"]["podIP"]

    def routed() -> bool:
        # a request the waypoint served shows up with its split
        lab.exec(NS, client, "curl", "-s", "--max-time", "2", "http://echo.rsp/ready",
                 check=False)
        return bool(requests(lab, "/ready"))

    wait_for(routed, timeout=40, what="a routed request with its split")
    return {"client": client, "sink_ip": sink_ip}


def requests(lab: Lab, marker: str) -> list[dict[str, Any]]:
    """`tulle trace request -o json` objects whose URL holds `marker`."""
    out = lab.tulle("trace", "request", "-o", "json", "--last", "1000", "-n", NS).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [r for r in rows if marker in r.get("url", "")]


def collect(lab: Lab, marker: str, count: int) -> list[dict[str, Any]]:
    rows = wait_for(lambda: len(found := requests(lab, marker)) >= count and found,
                    timeout=20, what=f"{count} requests {marker}")
    for r in rows:  # the arithmetic holds for every request
        assert sum(r[p] for p in PARTS) == r["total_ns"], r
        # the total: the client's RTT (within client_network_ns) plus the waypoint's span
        assert 0 <= r["total_ns"] - r["latency_ns"] <= r["client_network_ns"], r
    return list(rows)


def _show(rows: list[dict[str, Any]]) -> list[str]:
    return [" ".join([r["url"].split("/", 3)[-1], *(f"{r[p] / 1e6:.3f}" for p in
                                                     ("total_ns", *PARTS))]) for r in rows]


def median(rows: list[dict[str, Any]], field: str) -> float:
    return statistics.median(r[field] for r in rows)


# A client in the client pod: keep-alive GETs over one connection, each timed from its
# first byte sent to its last byte read (the client's own stopwatch).
CLIENT = r"""
import json, re, socket, subprocess, sys, threading, time
host, paths = sys.argv[1], json.loads(sys.argv[2])
shape_to = sys.argv[3] if len(sys.argv) > 3 else ""

def get(s, path):
    t = time.monotonic_ns()
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        body += s.recv(65536)
    return time.monotonic_ns() - t

def run(paths):
    s = socket.create_connection((host, 80), timeout=20)
    try:
        return {p: get(s, p) for p in paths}
    finally:
        s.close()

if not shape_to:
    print(json.dumps(run(paths)))
    sys.exit(0)

# Shaped: eth0 leaves at 8 Mbit/s through tbf (its queue holds 256 KB, never full here),
# and a bulk upload to another pod keeps about its send buffer (~32 KB: ~30 ms) queued,
# so every packet the client sends waits behind it. Removed afterwards.
base = run(paths["base"])
subprocess.run(["tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "8mbit",
                "burst", "8kb", "limit", "256kb"], check=True)
stop = threading.Event()
def upload():
    u = socket.socket()
    u.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    u.settimeout(5)
    u.connect((shape_to, 8080))
    u.sendall(b"POST /upload HTTP/1.1\r\nHost: echo\r\nContent-Length: 1000000000\r\n\r\n")
    chunk = b"x" * 16384
    while not stop.is_set():
        try:
            u.send(chunk)
        except socket.timeout:
            pass
    u.close()
try:
    t = threading.Thread(target=upload)
    t.start()
    time.sleep(1.0)
    shaped = run(paths["shaped"])
finally:
    stop.set()
    t.join(10)
    subprocess.run(["tc", "qdisc", "del", "dev", "eth0", "root"], check=True)
print(json.dumps({"base": base, "shaped": shaped}))
"""


def test_the_backends_delay_is_backend_time_and_nowhere_else(lab: Lab, rsp: dict[str, Any]
                                                             ) -> None:
    paths = [f"/delay/{kind}?i={i}" + ("&delay=200ms" if kind == "slow" else "")
             for i in range(8) for kind in ("plain", "slow")]
    stopwatch = run_py(lab, NS, rsp["client"], CLIENT, "echo.rsp", json.dumps(paths))
    rows = collect(lab, "/delay/", len(paths))
    plain = [r for r in rows if "/plain" in r["url"]]
    slow = [r for r in rows if "/slow" in r["url"]]
    # The echo sleeps 200 ms before answering (asyncio timers may fire up to 1 ms early).
    assert all(r["backend_ns"] >= 199 * MS for r in slow), _show(slow)
    added = median(slow, "backend_ns") - median(plain, "backend_ns")
    assert 199 * MS <= added <= 220 * MS, (added, slow)
    # Nowhere else: each other part moves by less than 2.5% of the delay.
    for part in PARTS[:-1]:
        assert median(slow, part) <= median(plain, part) + 5 * MS, (part, _show(plain),
                                                                    _show(slow))
    # The total is what the client's stopwatch saw, within 10 ms (the client's own
    # scheduling; the machine is shared).
    for r in slow:
        path = r["url"].split("echo.rsp", 1)[1]
        assert abs(stopwatch[path] - r["total_ns"]) <= 10 * MS, (stopwatch[path], r)


def test_a_link_shaped_with_tbf_raises_the_network_part_and_nothing_else(
        lab: Lab, rsp: dict[str, Any]) -> None:
    paths = {"base": [f"/tbf/base?i={i}" for i in range(10)],
             "shaped": [f"/tbf/shaped?i={i}" for i in range(10)]}
    got = run_py(lab, NS, rsp["client"], CLIENT, "echo.rsp", json.dumps(paths), rsp["sink_ip"],
                 timeout=90)
    rows = collect(lab, "/tbf/", 20)
    base = [r for r in rows if "/base" in r["url"]]
    shaped = [r for r in rows if "/shaped" in r["url"]]
    # The reference: the client's stopwatch (its requests wait in the queue too).
    queued = (statistics.median(got["shaped"].values())
              - statistics.median(got["base"].values()))
    assert queued >= 5 * MS, got
    raised = median(shaped, "client_network_ns") - median(base, "client_network_ns")
    # The client connection's RTT carries the queue (the client's ACKs wait in it).
    # Both see the queue once (the stopwatch: the request waits in it; the RTT: the
    # client's ACKs do). The kernel's minimum RTT of a connection opened behind the queue is
    # the queue's low point: between a third of the stopwatch's median and one and a half.
    assert queued / 3 <= raised <= queued * 1.5, (queued, raised, _show(base), _show(shaped))
    for part in ("proxy_ns", "upstream_connect_ns", "upstream_network_ns", "backend_ns"):
        assert median(shaped, part) <= median(base, part) + 3 * MS, (part, _show(base),
                                                                     _show(shaped))


# --- the client's own time is not the backend's ----------------------------------------------

# POST with its body sent `late` seconds after the head (the echo answers once it has the
# body), over a fresh connection; prints the client's stopwatch (ns) and the status.
LATE_BODY_CLIENT = r"""
import json, socket, sys, time
host, path, late = sys.argv[1], sys.argv[2], float(sys.argv[3])
s = socket.create_connection((host, 80), timeout=20)
t = time.monotonic_ns()
s.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\n\r\n".encode())
time.sleep(late)
s.sendall(b"hello")
data = b""
while b"\r\n\r\n" not in data:
    data += s.recv(65536)
print(json.dumps({"ns": time.monotonic_ns() - t, "status": int(data.split()[1])}))
"""

BIG_BYTES = 4 << 20
# A backend that answers every request with BIG_BYTES (then closes the connection).
BIG_SERVER = r"""
import socket, threading
BODY = b"x" * (4 << 20)
def serve(c):
    try:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = c.recv(65536)
            if not chunk:
                return
            data += chunk
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                  % len(BODY) + BODY)
    except OSError:
        pass
    finally:
        c.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080))
s.listen(64)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

# GET with a small receive buffer, reading 16 KB every 2 ms (~8 MB/s: the response takes
# ~0.5 s, most of it held up by the client, not the backend); prints the stopwatch (ns).
SLOW_READER = r"""
import json, re, socket, sys, time
host, path = sys.argv[1], sys.argv[2]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
s.settimeout(20)
s.connect((host, 80))
t = time.monotonic_ns()
s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
data = b""
while b"\r\n\r\n" not in data:
    data += s.recv(16384)
head, _, body = data.partition(b"\r\n\r\n")
length, got = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1)), len(body)
while got < length:
    chunk = s.recv(16384)
    if not chunk:
        break
    got += len(chunk)
    time.sleep(0.002)
print(json.dumps({"ns": time.monotonic_ns() - t, "got": got, "length": length}))
"""


def test_a_request_body_the_client_sends_late_is_not_backend_time(
        lab: Lab, rsp: dict[str, Any]) -> None:
    for i in range(3):
        got = run_py(lab, NS, rsp["client"], LATE_BODY_CLIENT, "echo.rsp",
                     f"/late/{i}", "0.2")
        assert got["status"] == 200, got
    rows = collect(lab, "/late/", 3)
    for r in rows:  # the 200 ms the client kept its body is the client's side (less the
        # time the head took to go upstream: the wait counts from then)
        assert r["client_network_ns"] >= 190 * MS, _show(rows)
        assert r["backend_ns"] < 50 * MS, _show(rows)


def test_a_response_the_client_reads_slowly_is_not_backend_time(lab: Lab, rsp: dict[str, Any]
                                                                ) -> None:
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "big", "namespace": NS},
             "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "big",
                                      "port": 80}],
                      "rules": [{"backendRefs": [{"name": "big", "port": 80}]}]}}
    apply(lab, deployment(NS, "big", 1, node="node2", command=[PY, "-c", BIG_SERVER]),
          service(NS, "big"), route)
    lab.wait_pods_ready(NS, 4, timeout=90)

    def routed() -> bool:
        lab.exec(NS, rsp["client"], "curl", "-s", "-o", "/dev/null", "--max-time", "5",
                 "http://big.rsp/ready", check=False)
        return bool(requests(lab, "big.rsp/ready"))

    wait_for(routed, timeout=40, what="a routed request to the big backend")
    stopwatch = [run_py(lab, NS, rsp["client"], SLOW_READER, "big.rsp", f"/slow/{i}")
                 for i in range(2)]
    assert all(s["got"] == s["length"] == BIG_BYTES for s in stopwatch), stopwatch
    rows = collect(lab, "/slow/", 2)
    reading = min(s["ns"] for s in stopwatch)
    assert reading >= 300 * MS, stopwatch  # the client held the response up
    for r in rows:
        # Nearly all of the reading fell inside the waypoint's span (the buffers on the way
        # hold ~150 KB of the 4 MB): the client's side, and little of it the backend's.
        assert r["client_network_ns"] >= reading // 2, (reading, _show(rows))
        assert r["backend_ns"] < reading // 4, (reading, _show(rows))
