"""LoadBalancer addresses in a live lab: a LoadBalancer Service gets an address from the
seeded pool (the fabric's top /27) and, from a plain netns on the lab fabric (a machine
outside the cluster: no Tulle, no routes to pods), the address resolves by ARP to the MAC of
the node the election picks among the Ready Nodes; the other node stays silent."""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent.announce.election import elect
from lab.network import FABRIC_BRIDGE, NODE_UPLINK
from lab.topology import LB_POOL_CIDR, plan_lab
from tests.netns.conftest import Lab

pytestmark = [pytest.mark.root, pytest.mark.netns]
OUTSIDE_IP = "10.240.0.220"  # above every node (10 + N), below the pool


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def outside(lab: Lab) -> Iterator[str]:
    """A plain netns on the lab's fabric bridge, removed with its veth afterwards."""
    plan = plan_lab(lab.name, 2)
    ns = f"tulle-test-out{secrets.token_hex(3)}"
    port = f"o{secrets.token_hex(3)}"
    ip("netns", "add", ns)
    try:
        ip("-n", plan.fabric_netns, "link", "add", port, "type", "veth", "peer", "name",
           "eth0", "netns", ns)
        ip("-n", plan.fabric_netns, "link", "set", port, "master", FABRIC_BRIDGE, "up")
        ip("-n", ns, "addr", "add", f"{OUTSIDE_IP}/24", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
        yield ns
    finally:
        subprocess.run(["ip", "-n", plan.fabric_netns, "link", "del", port], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def wait_for(check: Any, timeout: float = 30, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not seen within {timeout}s: {what}")


def neighbour(ns: str, address: str) -> str | None:
    subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", address],
                   capture_output=True)
    found = re.search(r"lladdr (\S+)", ip("-n", ns, "neigh", "show", address, "dev", "eth0"))
    return found.group(1) if found else None


def test_a_load_balancer_address_from_the_pool_answers_arp_from_its_elected_node(
    lab: Lab, outside: str
) -> None:
    lab.apply(json.dumps({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "lb-arp", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "none"}, "ports": [{"port": 80}]},
    }))
    try:
        def address() -> str | None:
            svc = next(s for s in lab.get("services") if s["metadata"]["name"] == "lb-arp")
            ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            return ingress[0]["ip"] if ingress else None

        lb_ip = wait_for(address, what="status.loadBalancer.ingress")
        assert ipaddress.ip_address(lb_ip) in LB_POOL_CIDR
        # Both agents run and report their Nodes Ready (the lab fixture waits for them).
        winner = elect(lb_ip, ["node1", "node2"])
        plan = plan_lab(lab.name, 2)
        macs = {
            n.name: re.search(r"link/ether (\S+)",
                              ip("-n", n.netns, "link", "show", NODE_UPLINK)).group(1)
            for n in plan.nodes
        }
        assert wait_for(lambda: neighbour(outside, lb_ip) == macs[winner],
                        what=f"{lb_ip} at {winner}'s MAC") is True
    finally:
        lab.tulle("delete", "service", "lb-arp", "-n", "default", check=False)
