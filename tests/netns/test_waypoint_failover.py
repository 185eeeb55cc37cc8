"""Waypoint failure is bounded: SIGKILL node1's waypoint while a pod on node1 calls an L4
Service and an L7 Service (HTTPRoute). L4 sees no failure; L7 fails at most for the request in
flight at the kill (the standby takes over on the held listening sockets; tests/netns/
test_waypoint_restart.py) and succeeds after the lab restarts the killed one. The measured times are printed (and
`bench/waypoint_failover.py` reports them over several rounds); no timing is asserted."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from bench.waypoint_failover import run_round, setup

from .conftest import Lab

pytestmark = pytest.mark.netns


def test_killing_the_waypoint_spares_l4_and_l7_recovers(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    s = setup(lab)
    r = run_round(lab, s, duration=8.0, kill_after=2.0)
    with capsys.disabled():
        print(f"\nwaypoint failover: {json.dumps(asdict(r))}")
    assert r.l4_requests > 50 and r.l4_failures == 0, r
    assert r.l7_ok_after_restart > 10, r  # L7 works again through the restarted waypoint
    assert r.outage_s == r.outage_s, f"no L7 success after the kill: {r}"  # not NaN
