"""Attacks on the waypoint's policy check (issue 9 review): what a pod could ask the
waypoint to dial that it could not reach directly."""

from __future__ import annotations

import pytest

from agent.datapath.policy_waypoint import connection_policy

from .test_policy_waypoint import NAMESPACES, PODS

B = ("10.244.2.6", 40000)


@pytest.mark.parametrize("backend", ["127.0.0.1", "127.1.2.3", "0.0.0.0", "169.254.20.10",
                                     "224.0.0.1"])
def test_the_nodes_own_special_addresses_are_never_a_backend(backend: str) -> None:
    """No policy at all, yet the waypoint (inside the node) must not dial the node's
    loopback listeners (metrics, observer) or link-local services for a pod."""
    judge = connection_policy(PODS, NAMESPACES, [])
    assert judge.allows(B, ("10.244.1.5", 8080))  # control: an ordinary pod is allowed
    assert not judge.allows(B, (backend, 9966))
