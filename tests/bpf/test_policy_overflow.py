"""An endpoint whose policy did not fit the policy maps fails closed in that direction
(endpoints.h EP_F_*_OVERFLOW), with its own drop reason and flow."""

from __future__ import annotations

import ipaddress

import pytest
from scapy.layers.inet import TCP

from agent.datapath import maps

from .test_datapath import (
    BACKEND,
    CLIENT,
    TC_ACT_OK,
    TC_ACT_SHOT,
    Runner,
    client_endpoint,
    pkt,
    reason,
)

pytestmark = pytest.mark.bpf
NODE = "10.244.1.1"  # the node's own address: identity HOST


def test_ingress_overflow_denies_peers_with_its_reason_but_not_the_node(dp: Runner) -> None:
    client_endpoint(dp, flags=maps.EP_F_INGRESS_ENFORCED | maps.EP_F_INGRESS_OVERFLOW)
    maps.write_ipcache(dp.dp, {ipaddress.IPv4Address(NODE): 1})
    # Even a peer the (unwritten) policy might have allowed: nothing is half-enforced.
    out = dp.to_pod(pkt(BACKEND, CLIENT, TCP(sport=51000, dport=8080, flags="S")))
    assert out.verdict == TC_ACT_SHOT
    (ev,) = out.events
    assert ev.verdict == 2 and reason(ev) == "POLICY_MAP_OVERFLOW"
    probe = dp.to_pod(pkt(NODE, CLIENT, TCP(sport=51001, dport=8080, flags="S")))
    assert probe.verdict == TC_ACT_OK  # kubelet-style health checks still arrive
    # Its egress is untouched: only the direction that overflowed fails closed.
    assert dp.from_pod(pkt(CLIENT, BACKEND, TCP(sport=51002, dport=8080, flags="S"))).verdict == TC_ACT_OK


def test_egress_overflow_denies_new_connections_but_not_replies(dp: Runner) -> None:
    client_endpoint(dp, flags=maps.EP_F_EGRESS_OVERFLOW)
    accepted = dp.to_pod(pkt(BACKEND, CLIENT, TCP(sport=52000, dport=8080, flags="S")))
    assert accepted.verdict == TC_ACT_OK
    reply = dp.from_pod(pkt(CLIENT, BACKEND, TCP(sport=8080, dport=52000, flags="SA")))
    assert reply.verdict == TC_ACT_OK
    out = dp.from_pod(pkt(CLIENT, BACKEND, TCP(sport=52001, dport=8080, flags="S")))
    assert out.verdict == TC_ACT_SHOT and reason(out.events[0]) == "POLICY_MAP_OVERFLOW"
