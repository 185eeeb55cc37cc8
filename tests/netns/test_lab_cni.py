"""A lab built with `--cni chain`: its kubelet runs Debian's ptp + host-local, then tulle-cni,
as a node's container runtime does, instead of building pods' veths itself.

One two-node lab of its own: a pod starts only once ADD has configured its interface, has
host-local's address, is policed by the agent on the veth ptp made (ADD waited for the
agent's mark, which the agent wrote from the record before the API had the pod's address; a
NetworkPolicy deny works on it, across nodes), and deleting it runs DEL (host-local's lease
and the mark are gone);
`lab down` leaves nothing, and nothing went to /var/lib/cni.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cni import store
from cni.record import record_key
from lab import components, lifecycle, network
from lab.cni_runtime import NETWORK, ipam_dir, tulle_state_dir
from lab.state import LabPaths
from lab.topology import plan_lab

from .conftest import Lab, new_lab_env
from .test_datapath import apply, deployment, namespace, pods_of, service, wait_for

pytestmark = [pytest.mark.root, pytest.mark.netns]

NS = "cnichain"
# The server's first line of output is eth0's IPv4 address as the container found it at start.
SHOW_ETH0 = "ip -4 -o addr show dev eth0; exec {py} -m lab.echo.server --port 8080"


@pytest.fixture(scope="module")
def chain_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    name = "test" + secrets.token_hex(3)
    state = tmp_path_factory.mktemp("tulle-cni-state")
    mp = pytest.MonkeyPatch()
    mp.setenv("TULLE_STATE_DIR", str(state))
    try:
        lifecycle.up(name, 2, lambda _m: None, cni="chain")
        yield Lab(name, new_lab_env(state, name))
    finally:
        removed = lifecycle.down(name, lambda _m: None)
        mp.undo()
        assert any(item.startswith("state ") for item in removed)
        assert not (state / name).exists()  # host-local's leases and tulle-cni's records too
        assert network.lab_namespaces(f"tulle-{name}-") == []


def _link(netns: str, ifname: str) -> dict[str, Any] | None:
    out = subprocess.run(["ip", "-j", "-n", netns, "link", "show"], capture_output=True,
                         text=True, check=True).stdout
    return next((link for link in json.loads(out) if link["ifname"] == ifname), None)


def _curl(lab: Lab, pod: str, url: str) -> bool:
    proc = lab.exec(NS, pod, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                    "--max-time", "1.5", url, check=False)
    return proc.returncode == 0 and proc.stdout.strip() == "200"


def test_pods_get_their_network_from_the_chain_and_are_policed(chain_lab: Lab) -> None:
    lab = chain_lab
    paths = LabPaths.for_lab(lab.name)
    plan = plan_lab(lab.name, 2)
    assert json.loads(paths.lab_file.read_text())["cni"] == "chain"
    srv = deployment(NS, "srv", 1, node="node1",
                     command=["sh", "-c", SHOW_ETH0.format(py=sys.executable)])
    apply(lab, namespace(NS), srv, service(NS, "srv"), deployment(NS, "cli", 1, node="node2"))
    lab.wait_pods_ready(NS, 2, timeout=120)
    [server] = pods_of(lab, NS, "srv")
    [client] = pods_of(lab, NS, "cli")
    uid, ip = server["metadata"]["uid"], ipaddress.IPv4Address(server["status"]["podIP"])

    # host-local's address on node1's range, leased to this pod under the lab's state dir
    node1 = plan.node("node1")
    assert ip in node1.pod_cidr and ip not in (node1.gateway_ip, node1.waypoint_ip)
    lease = ipam_dir(paths, "node1") / NETWORK / str(ip)
    assert uid in lease.read_text()
    assert not Path("/var/lib/cni/networks", NETWORK).exists()
    # The container started after ADD: its first look at eth0 found the address there.
    log = paths.pod_log(NS, server["metadata"]["name"], "srv").read_text()
    assert f"inet {ip}/24" in log.splitlines()[0], log

    # tulle-cni recorded ptp's host veth, the agent's programs are on that veth, and the
    # agent marked the record: ADD (attachTimeout 10) returned on that mark, before the
    # kubelet wrote podIP, so the agent took the address from the record
    state_dir = tulle_state_dir(paths, "node1")
    rec = store.read_record(state_dir, record_key(NETWORK, uid, "eth0"))
    assert rec is not None and rec.pod is not None and rec.pod.name == server["metadata"]["name"]
    assert rec.ips == (f"{ip}/24",)
    assert _link(node1.netns, rec.host_ifname) is not None
    probe = network.DatapathProbe()
    try:
        assert probe(node1, rec.host_ifname)
    finally:
        probe.close()
    assert store.wait_attached(state_dir, rec, 0)
    assert json.loads(store.agent_path(state_dir).read_text())["node"] == "node1"
    agent_log = components.component_log(paths, "agent", "node1").read_text()
    assert f"marked {rec.key} ({ip}/24) attached on ifindex {rec.host_ifindex}" in agent_log
    # no ADD of this test's pods ran out waiting for the agent (error 11)
    assert [e for e in lab.get("events", NS) if e.get("reason") == "FailedCreatePodSandBox"] == []

    # Across nodes by pod IP (the fabric routes), and by name (DNS, the Service's ClusterIP)
    cli = client["metadata"]["name"]
    assert _curl(lab, cli, f"http://{ip}:8080/")
    assert _curl(lab, cli, f"http://srv.{NS}/")
    apply(lab, {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "deny", "namespace": NS},
                "spec": {"podSelector": {"matchLabels": {"app": "srv"}},
                         "policyTypes": ["Ingress"]}})
    wait_for(lambda: not _curl(lab, cli, f"http://{ip}:8080/"), timeout=30,
             what="the NetworkPolicy denies the client")
    assert not _curl(lab, cli, f"http://srv.{NS}/")

    # Deleting the pod runs DEL: the lease, the record and ptp's veth are gone
    lab.tulle("delete", "deployment", "srv", "-n", NS)
    wait_for(lambda: not lease.exists(), timeout=60, what="host-local's lease released")
    assert store.read_record(state_dir, record_key(NETWORK, uid, "eth0")) is None
    assert store.read_mark(state_dir, rec.key) is None
    assert _link(node1.netns, rec.host_ifname) is None
