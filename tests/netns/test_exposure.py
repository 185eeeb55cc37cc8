"""What a pod can reach on its node: not the observer API (4244) nor the agent's (9965) or
the waypoint's (9966) metrics, on any node address; the node itself still scrapes and
observes, and `tulle observe` through the relay still works. The L7 flow intake socket is
0600 in a 0700 directory."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from typing import Any

import pytest

from lab import components
from lab.state import LabPaths
from lab.topology import DNS_ADDRESS, plan_lab

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, run_py, wait_for

pytestmark = pytest.mark.netns
NS = "exposure"
PORTS = (4244, 9965, 9966)

# Connect to every (address, port); report which ones accepted.
PROBE = r"""
import json, socket, sys
targets = json.loads(sys.argv[1])
open_ = []
for host, port in targets:
    s = socket.socket()
    s.settimeout(1.0)
    try:
        s.connect((host, port))
        open_.append([host, port])
    except OSError:
        pass
    finally:
        s.close()
print(json.dumps(open_))
"""


@pytest.fixture(scope="module")
def pod(lab: Lab) -> str:
    apply(lab, namespace(NS), deployment(NS, "prober", 1, node="node1"))
    lab.wait_pods_ready(NS, 1, timeout=90)
    return str(pods_of(lab, NS, "prober")[0]["metadata"]["name"])


def node_addresses(lab: Lab) -> list[str]:
    plan = plan_lab(lab.name, 2)
    out = [str(DNS_ADDRESS)]
    for node in plan.nodes:
        out += [str(node.gateway_ip), str(node.waypoint_ip), str(node.fabric_ip)]
    return out


def in_node(lab: Lab, node: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net=/var/run/netns/tulle-{lab.name}-{node}", "--",
                           *argv], capture_output=True, text=True, timeout=30, env=lab.env)


def test_pods_reach_no_observer_or_metrics_port_on_any_node_address(lab: Lab, pod: str) -> None:
    targets = [[address, port] for address in node_addresses(lab) for port in PORTS]
    reachable: Any = run_py(lab, NS, pod, PROBE, json.dumps(targets))
    assert reachable == [], f"a pod reached {reachable}"


def test_the_node_still_scrapes_and_observes(lab: Lab, pod: str) -> None:
    for port, family in ((9965, "tulle_"), (9966, "tulle_waypoint_flows_dropped_total")):
        got = in_node(lab, "node1", "curl", "-sf", "--max-time", "5",
                      f"http://127.0.0.1:{port}/metrics")
        assert got.returncode == 0 and family in got.stdout, (port, got.stderr)
    status = in_node(lab, "node1", sys.executable, "-m", "agent.cli.main", "status",
                     "--server", "127.0.0.1:4244")
    assert status.returncode == 0, status.stderr
    relay = lab.tulle("observe", "--last", "5", "-o", "json")
    assert relay.stdout.strip(), "tulle observe through the relay printed nothing"


def test_the_l7_intake_socket_is_private(lab: Lab) -> None:
    paths = LabPaths.for_lab(lab.name)
    for node in ("node1", "node2"):
        sock = components.l7_intake_socket(paths, node)
        wait_for(sock.exists, what=f"{sock}")
        assert stat.S_ISSOCK(sock.stat().st_mode)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700


def test_why_loopback_the_node_fabric_address_is_pod_reachable(lab: Lab, pod: str) -> None:
    """The kernel delivers a packet for any local address whatever interface it came in on,
    so a listener on the node's fabric IP is open to the node's pods: the lab binds the node
    netns's loopback (127.0.0.1, a martian from a pod) instead."""
    fabric = str(plan_lab(lab.name, 2).node("node1").fabric_ip)
    listener = subprocess.Popen(
        ["nsenter", f"--net=/var/run/netns/tulle-{lab.name}-node1", "--", sys.executable, "-c",
         "import socket, sys, time\n"
         f"s = socket.create_server(({fabric!r}, 19965))\n"
         "print('up', flush=True)\n"
         "s.settimeout(20)\n"
         "s.accept()\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout is not None and listener.stdout.readline().strip() == "up"
        reachable = run_py(lab, NS, pod, PROBE, json.dumps([[fabric, 19965]]))
        assert reachable == [[fabric, 19965]]
    finally:
        listener.kill()
        listener.wait(5)
