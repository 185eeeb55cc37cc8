"""Attacks on the waypoint's front door in the kernel (issue 9 review), held: no protocol
reaches a waypoint address except the L7 redirect, a reused client port does not turn a
direct dial into a redirected one, and a UDP Service port beside an L7 TCP port stays L4."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP

from .test_datapath import (
    BACKEND,
    CLIENT,
    TC_ACT_OK,
    TC_ACT_SHOT,
    VIP,
    Runner,
    l7_service,
    pkt,
    reason,
    service,
)
from .test_waypoint_policy import LOCAL_WAYPOINT, REMOTE_WAYPOINT, waypoints  # noqa: F401

pytestmark = pytest.mark.bpf


@pytest.mark.parametrize("waypoint", [LOCAL_WAYPOINT[0], REMOTE_WAYPOINT], ids=["local", "remote"])
@pytest.mark.parametrize("l4", [UDP(sport=5353, dport=15001), UDP(sport=5353, dport=9966),
                                ICMP(type=8), TCP(sport=47200, dport=9966, flags="S")],
                         ids=["udp-15001", "udp-metrics", "icmp-echo", "tcp-metrics"])
def test_nothing_but_the_redirect_reaches_a_waypoint_address(
        waypoints: Runner, waypoint: str, l4: object) -> None:  # noqa: F811
    out = waypoints.from_pod(pkt(CLIENT, waypoint, l4))
    assert out.verdict == TC_ACT_SHOT
    assert [reason(ev) for ev in out.events] == ["WAYPOINT_NOT_REDIRECTED"]


def test_a_port_once_redirected_does_not_open_a_direct_dial(waypoints: Runner) -> None:  # noqa: F811
    """A client port whose earlier connection was redirected (and closed) cannot be reused
    for a new connection straight to the waypoint: conntrack does not carry a new SYN."""
    l7_service(waypoints, [(BACKEND, 8080)])
    sport = 47300
    out = waypoints.from_pod(pkt(CLIENT, VIP, TCP(sport=sport, dport=80, flags="S")))
    assert out.verdict == TC_ACT_OK and out.packet[IP].dst == LOCAL_WAYPOINT[0]
    waypoints.from_pod(pkt(CLIENT, VIP, TCP(sport=sport, dport=80, flags="R")))
    again = waypoints.from_pod(pkt(CLIENT, LOCAL_WAYPOINT[0],
                                   TCP(sport=sport, dport=LOCAL_WAYPOINT[1], flags="S")))
    assert again.verdict == TC_ACT_SHOT
    assert [reason(ev) for ev in again.events] == ["WAYPOINT_NOT_REDIRECTED"]


def test_udp_on_an_l7_port_number_stays_l4(waypoints: Runner) -> None:  # noqa: F811
    """The L7 flag is per protocol: UDP to the same VIP and port goes to a backend, judged
    by the kernel as any L4 flow, never to the waypoint."""
    l7_service(waypoints, [(BACKEND, 8080)])
    service(waypoints, [(BACKEND, 5353)], proto=17)
    out = waypoints.from_pod(pkt(CLIENT, VIP, UDP(sport=40000, dport=80)))
    assert out.verdict == TC_ACT_OK
    assert (out.packet[IP].dst, out.packet[UDP].dport) == (BACKEND, 5353)
