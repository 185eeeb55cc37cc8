"""The kernel fails closed, in a live lab (issue 9 item 9): a pod's IPv6 never gets through
(link-local or configured, to the node or to another pod), a 4 KB UDP datagram through a
ClusterIP arrives whole both ways (fragments follow their first fragment), and a pod
reaches itself through its own Service (hairpin)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from lab.topology import host_veth_name

from .conftest import Lab
from .test_datapath import (
    PY,
    apply,
    deployment,
    namespace,
    pods_of,
    ready_slices,
    run_py,
    service,
    wait_for,
)

pytestmark = pytest.mark.netns
NS = "failclosed"

UDP_BIG_SERVER = r"""
import os, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5353))
while True:
    data, peer = s.recvfrom(65535)
    s.sendto(os.environ["POD_NAME"].encode() + b":" + data, peer)
"""

UDP_BIG_ASK = r"""
import json, socket, sys
host, port, size, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ok, failed, pods = 0, [], set()
for i in range(n):
    payload = bytes((i + j) % 251 for j in range(size))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        s.sendto(payload, (host, port))
        pod, _, echoed = s.recv(65535).partition(b":")
        if echoed == payload:
            ok += 1
            pods.add(pod.decode())
        else:
            failed.append(len(echoed))
    except OSError as e:
        failed.append(str(e))
    s.close()
print(json.dumps({"ok": ok, "failed": failed, "pods": sorted(pods)}))
"""


def node_netns(lab: Lab, node: str) -> str:
    return f"tulle-{lab.name}-{node}"


def in_node(lab: Lab, node: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", node_netns(lab, node), *cmd],
                          capture_output=True, text=True, timeout=30, check=check)


@pytest.fixture(scope="module")
def pods(lab: Lab) -> dict[str, Any]:
    """Two echo pods on node1 (v6a, v6b), a UDP echo behind a ClusterIP on node2, a client on
    each node, and a one-replica Deployment with its own Service (selfie)."""
    apply(lab, namespace(NS),
          deployment(NS, "v6a", 1, node="node1"), deployment(NS, "v6b", 1, node="node1"),
          deployment(NS, "client2", 1, node="node2"),
          deployment(NS, "udpbig", 1, node="node2", command=[PY, "-c", UDP_BIG_SERVER],
                     ports=[{"name": "dns", "containerPort": 5353, "protocol": "UDP"}]),
          service(NS, "udpbig", port=53, target="dns", protocol="UDP"),
          deployment(NS, "selfie", 1), service(NS, "selfie"))
    lab.wait_pods_ready(NS, 5, timeout=90)
    wait_for(lambda: ready_slices(lab, NS, "udpbig", 1), what="udp endpoint")
    wait_for(lambda: ready_slices(lab, NS, "selfie", 1), what="selfie endpoint")
    return {app: pods_of(lab, NS, app)[0] for app in ("v6a", "v6b", "client2", "udpbig", "selfie")}


def name(pod: dict[str, Any]) -> str:
    return str(pod["metadata"]["name"])


def link_local(lab: Lab, node: str, dev: str) -> str:
    out = in_node(lab, node, "ip", "-6", "-o", "addr", "show", "dev", dev, "scope", "link").stdout
    match = re.search(r"inet6 (fe80::[0-9a-f:]+)/64", out)
    assert match, f"{dev} in {node} has no IPv6 link-local address: {out!r}"
    return match[1]


@pytest.fixture
def ipv6_pods(lab: Lab, pods: dict[str, Any]) -> Iterator[dict[str, str]]:
    """v6a (fd00:7::a) and v6b (fd00:7::b) routed to each other through node1, as a
    dual-stack node would route them; all undone afterwards."""
    addrs = {"v6a": "fd00:7::a", "v6b": "fd00:7::b"}
    veths = {app: host_veth_name(NS, name(pods[app])) for app in addrs}
    gateways = {app: link_local(lab, "node1", veths[app]) for app in addrs}
    in_node(lab, "node1", "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    try:
        for app, addr in addrs.items():
            in_node(lab, "node1", "ip", "-6", "route", "replace", f"{addr}/128", "dev", veths[app])
            lab.exec(NS, name(pods[app]), "ip", "-6", "addr", "add", f"{addr}/128", "dev", "eth0", "nodad")
            lab.exec(NS, name(pods[app]), "ip", "-6", "route", "replace", "fd00:7::/64",
                     "via", gateways[app], "dev", "eth0")
        yield {**addrs, "gateway_a": gateways["v6a"]}
    finally:
        for app, addr in addrs.items():
            lab.exec(NS, name(pods[app]), "ip", "-6", "route", "del", "fd00:7::/64", check=False)
            lab.exec(NS, name(pods[app]), "ip", "-6", "addr", "del", f"{addr}/128", "dev", "eth0",
                     check=False)
            in_node(lab, "node1", "ip", "-6", "route", "del", f"{addr}/128", check=False)
        in_node(lab, "node1", "sysctl", "-qw", "net.ipv6.conf.all.forwarding=0", check=False)


def drop_reasons(lab: Lab) -> list[str]:
    out = lab.tulle("observe", "--last", "1000", "--verdict", "DROPPED", "-o", "json").stdout
    return [json.loads(line)["flow"].get("drop_reason_desc", "") for line in out.splitlines() if line]


def test_a_pods_ipv6_never_gets_through(lab: Lab, pods: dict[str, Any], ipv6_pods: dict[str, str]) -> None:
    a = name(pods["v6a"])
    to_pod = lab.exec(NS, a, "ping", "-6", "-c", "2", "-W", "1", ipv6_pods["v6b"], check=False)
    assert to_pod.returncode != 0, to_pod.stdout
    to_node = lab.exec(NS, a, "ping", "-6", "-c", "2", "-W", "1", "-I", "eth0", ipv6_pods["gateway_a"],
                       check=False)
    assert to_node.returncode != 0, to_node.stdout
    udp = lab.exec(NS, a, PY, "-c", "import socket; s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); "
                   "s.sendto(b'x', ('fd00:7::b', 9))")
    assert udp.returncode == 0  # sent; and dropped, as the flows say:
    wait_for(lambda: "UNSUPPORTED_L3_PROTOCOL" in drop_reasons(lab), what="IPv6 drops recorded")
    # IPv4 (and the ARP it needs) still works for the same pod.
    honest = lab.exec(NS, a, "curl", "-s", "--max-time", "3", f"http://{pods['v6b']['status']['podIP']}:8080/")
    assert json.loads(honest.stdout)["pod"] == name(pods["v6b"])


@pytest.mark.parametrize("client", ["client2", "v6a"], ids=["same-node", "other-node"])
def test_a_4k_udp_datagram_through_a_cluster_ip_arrives_whole(lab: Lab, pods: dict[str, Any], client: str) -> None:
    result = run_py(lab, NS, name(pods[client]), UDP_BIG_ASK, f"udpbig.{NS}", 53, 4000, 5)
    assert result == {"ok": 5, "failed": [], "pods": [name(pods["udpbig"])]}


def test_a_pod_reaches_itself_through_its_own_service(lab: Lab, pods: dict[str, Any]) -> None:
    me = name(pods["selfie"])
    for _ in range(3):  # new connections, each hairpinned
        out = lab.exec(NS, me, "curl", "-s", "--max-time", "3", f"http://selfie.{NS}/")
        assert json.loads(out.stdout)["pod"] == me


ARP_SPOOF = r"""
import socket, struct, sys
claimed, target = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
mac = s.getsockname()[4]
arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, socket.inet_aton(claimed),
                  b"\0" * 6, socket.inet_aton(target))
for _ in range(3):
    s.send(b"\xff" * 6 + mac + b"\x08\x06" + arp)
print("{}")
"""


def test_a_pod_cannot_claim_another_address_by_arp(lab: Lab, pods: dict[str, Any]) -> None:
    attacker, victim = pods["v6a"], pods["v6b"]
    victim_ip = victim["status"]["podIP"]
    gateway = victim_ip.rsplit(".", 1)[0] + ".1"
    run_py(lab, NS, name(attacker), ARP_SPOOF, victim_ip, gateway)  # "who has the gateway? I am victim"
    veth = host_veth_name(NS, name(attacker))

    def recorded() -> bool:
        out = lab.tulle("observe", "--last", "1000", "--verdict", "DROPPED", "-o", "json").stdout
        flows = [json.loads(line)["flow"] for line in out.splitlines() if line]
        return any(f.get("drop_reason_desc") == "INVALID_SOURCE_IP"
                   and f.get("IP", {}).get("source") == victim_ip for f in flows)

    wait_for(recorded, what="the spoofed ARP recorded as a drop")
    learned = in_node(lab, "node1", "ip", "neigh", "show", "dev", veth).stdout
    assert victim_ip not in learned.split(), learned


UPLOAD = r"""
import json, socket, sys
body = b"x" * 60000
s = socket.create_connection((sys.argv[1], 80), timeout=5)
s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
data = b""
try:
    while chunk := s.recv(65536):
        data += chunk
except OSError as e:
    print(json.dumps({"error": str(e)}))
    raise SystemExit
print(json.dumps({"status": data.split(b" ")[1].decode() if data else None}))
"""


def test_path_mtu_discovery_works_for_a_pod_under_ingress_policy(lab: Lab, pods: dict[str, Any]) -> None:
    """A client that accepts no ingress uploads through a ClusterIP to a backend on the other
    node whose last hop has a smaller MTU: the backend's node answers "fragmentation needed"
    (from a remote-node address, which the policy does not admit); the error must reach the
    client, quoting the VIP it connected to, or the upload black-holes."""
    apply(lab, deployment(NS, "pmtuc", 1, node="node2"), deployment(NS, "pmtus", 1, node="node1"),
          service(NS, "pmtus"),
          {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "pmtuc-no-ingress", "namespace": NS},
           "spec": {"podSelector": {"matchLabels": {"app": "pmtuc"}}, "policyTypes": ["Ingress"],
                    "ingress": []}})
    lab.wait_pods_ready(NS, 7, timeout=90)
    wait_for(lambda: ready_slices(lab, NS, "pmtus", 1), what="pmtus endpoint")
    client, backend = pods_of(lab, NS, "pmtuc")[0], pods_of(lab, NS, "pmtus")[0]
    route = [f"{backend['status']['podIP']}/32", "dev", host_veth_name(NS, name(backend)), "scope", "link"]
    in_node(lab, "node1", "ip", "route", "replace", *route, "mtu", "lock", "1200")
    try:
        result = run_py(lab, NS, name(client), UPLOAD, f"pmtus.{NS}")
    finally:
        in_node(lab, "node1", "ip", "route", "replace", *route)
    assert result == {"status": "200"}
