"""A waypoint restart under mTLS tunnels (issue 11): SIGKILL node1's waypoint (by the PID in
the lab's process record) while an enrolled client pod on node1 has a request in flight to a
STRICT echo pod on node2. The in-flight connection fails and the client's retry succeeds; a
connection opened right after the kill succeeds, since the lab holds the waypoint's listening
sockets (lab/listeners.py) and it waits in the accept queue for the restarted waypoint. The
client's timeout is generous; the time it took is printed (`bench/mtls/restart.py` reports
it over several rounds), never asserted."""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict

import pytest

from bench.mtls.restart import run_round, setup
from lab import labstatus
from lab.state import LabPaths
from lab.topology import NodePlan

from .conftest import Lab

pytestmark = pytest.mark.netns


# A process in the node's netns trying to bind the waypoint's ports (an attacker, or a stray
# second waypoint without the lock).
TAKE_PORT = r"""
import errno, json, socket, sys
out = {}
for port in (15001, 15007, 15008):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        s.bind((sys.argv[1], port))
        s.listen(1)
        out[str(port)] = "bound"
    except OSError as e:
        out[str(port)] = errno.errorcode.get(e.errno, str(e.errno))
    s.close()
print(json.dumps(out))
"""


def _node(lab: Lab, node: str) -> NodePlan:
    plan = labstatus.load_plan(LabPaths.for_lab(lab.name))
    assert plan is not None
    return next(n for n in plan.nodes if n.name == node)


def lab_waypoint_ip(lab: Lab, node: str) -> str:
    return str(_node(lab, node).waypoint_ip)


def _in_node(lab: Lab, node: str, script: str, *args: str) -> dict[str, str]:
    out = subprocess.run(["nsenter", f"--net=/var/run/netns/{_node(lab, node).netns}", "--",
                          "/usr/bin/python3", "-c", script, *args],
                         capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out))


def _listeners(lab: Lab, node: str) -> str:
    return subprocess.run(["ip", "netns", "exec", _node(lab, node).netns, "ss", "-Hltn"],
                          capture_output=True, text=True, check=True).stdout


def test_a_waypoint_restart_fails_only_in_flight_tunnels(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    s = setup(lab)
    r = run_round(lab, s)
    with capsys.disabled():
        print(f"\nwaypoint restart: {json.dumps(asdict(r))}")
    assert r.restarted_pid != r.killed_pid
    assert not r.inflight_ok, f"the in-flight request survived its waypoint's death: {r}"
    assert r.retry_ok, f"the client's retry of the in-flight request failed: {r}"
    assert r.new_ok, f"a connection opened right after the kill failed: {r}"
    # The held sockets are the restarted waypoint's: nothing else listens on those ports,
    # and no other process in the node's netns can take one over (even with SO_REUSEPORT).
    listening = _listeners(lab, "node1")
    for port in (15001, 15007, 15008):
        assert listening.count(f":{port} ") == 1, listening
    taken = _in_node(lab, "node1", TAKE_PORT, lab_waypoint_ip(lab, "node1"))
    assert taken == {"15001": "EADDRINUSE", "15007": "EADDRINUSE", "15008": "EADDRINUSE"}

