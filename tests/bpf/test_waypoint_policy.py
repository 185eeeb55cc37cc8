"""Policy around the waypoint in the kernel (issue 9 item 2): a waypoint is reached only by
the datapath's L7 redirect, and only the local waypoint's own (marked) packets carry its
identity into a pod."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from agent.datapath import maps
from agent.datapath.identity import WAYPOINT as WAYPOINT_ID
from agent.datapath.maglev import maglev_table
from agent.datapath.origdst import WAYPOINT_MARK
from agent.datapath.policy_ports import PortRule
from agent.datapath.testrun import SkBuff, test_run

from .test_datapath import (
    BACKEND,
    BACKEND_ID,
    CLIENT,
    IFINDEX,
    INGRESS,
    TC_ACT_OK,
    TC_ACT_SHOT,
    TCP_P,
    VIP,
    Outcome,
    Runner,
    client_endpoint,
    l7_service,
    pkt,
    reason,
)

pytestmark = pytest.mark.bpf

LOCAL_WAYPOINT = ("10.244.1.254", 15001)
REMOTE_WAYPOINT = "10.244.2.254"


@pytest.fixture
def waypoints(dp: Runner) -> Iterator[Runner]:  # noqa: F811
    client_endpoint(dp)
    maps.write_ipcache(dp.dp, {ipaddress.IPv4Address(LOCAL_WAYPOINT[0]): WAYPOINT_ID,
                               ipaddress.IPv4Address(REMOTE_WAYPOINT): WAYPOINT_ID})
    maps.write_waypoint(dp.dp, (ipaddress.IPv4Address(LOCAL_WAYPOINT[0]), LOCAL_WAYPOINT[1]))
    try:
        yield dp
    finally:
        maps.write_waypoint(dp.dp, None)


def to_pod_marked(r: Runner, packet: Any, mark: int) -> Outcome:
    ctx = SkBuff()
    ctx.ifindex = IFINDEX
    ctx.mark = mark
    r.events.clear()
    result = test_run(r.dp.to_pod_fd, bytes(packet), ctx=ctx)
    r.dp.bpf.ring_buffer_consume()
    return Outcome(result.retval, Ether(result.data_out), list(r.events))


@pytest.mark.parametrize("waypoint", [LOCAL_WAYPOINT[0], REMOTE_WAYPOINT], ids=["local", "remote"])
def test_a_pod_cannot_dial_a_waypoint_directly(waypoints: Runner, waypoint: str) -> None:
    out = waypoints.from_pod(pkt(CLIENT, waypoint, TCP(sport=47000, dport=15001, flags="S")))
    assert out.verdict == TC_ACT_SHOT
    (ev,) = out.events
    assert reason(ev) == "WAYPOINT_NOT_REDIRECTED"


def test_the_redirect_still_reaches_the_waypoint(waypoints: Runner) -> None:
    l7_service(waypoints, [(BACKEND, 8080)])
    out = waypoints.from_pod(pkt(CLIENT, VIP, TCP(sport=47001, dport=80, flags="S")))
    assert out.verdict == TC_ACT_OK
    assert (out.packet[IP].dst, out.packet[TCP].dport) == LOCAL_WAYPOINT
    # ... and the rest of that connection follows conntrack.
    ack = waypoints.from_pod(pkt(CLIENT, VIP, TCP(sport=47001, dport=80, flags="A")))
    assert ack.verdict == TC_ACT_OK and ack.packet[IP].dst == LOCAL_WAYPOINT[0]


def _ingress_enforced_pod(r: Runner) -> None:
    # The pod (at CLIENT on the test veth) admits only BACKEND_ID on 8080.
    client_endpoint(r, flags=maps.EP_F_INGRESS_ENFORCED)
    maps.write_policy_rule(r.dp, ipaddress.IPv4Address(CLIENT), BACKEND_ID, INGRESS,
                           [PortRule(TCP_P, 8080, 8080)])
    maps.write_ipcache(r.dp, {ipaddress.IPv4Address(LOCAL_WAYPOINT[0]): WAYPOINT_ID,
                              ipaddress.IPv4Address(REMOTE_WAYPOINT): WAYPOINT_ID})


def test_only_the_marked_local_waypoint_carries_waypoint_identity(waypoints: Runner) -> None:
    _ingress_enforced_pod(waypoints)
    syn = TCP(sport=41000, dport=8080, flags="S")
    impostor = to_pod_marked(waypoints, pkt(LOCAL_WAYPOINT[0], CLIENT, syn), mark=0)
    assert impostor.verdict == TC_ACT_SHOT and reason(impostor.events[0]) == "POLICY_DENIED"
    assert impostor.events[0].src_identity == 2  # WORLD: whoever bound the address
    own = to_pod_marked(waypoints, pkt(LOCAL_WAYPOINT[0], CLIENT, TCP(sport=41001, dport=8080,
                                                                       flags="S")), WAYPOINT_MARK)
    assert own.verdict == TC_ACT_OK


def test_a_remote_waypoint_is_trusted_like_the_fabric(waypoints: Runner) -> None:
    _ingress_enforced_pod(waypoints)
    out = to_pod_marked(waypoints, pkt(REMOTE_WAYPOINT, CLIENT, TCP(sport=41002, dport=8080,
                                                                     flags="S")), mark=0)
    assert out.verdict == TC_ACT_OK


def test_consumer_only_port_redirects_only_listed_clients(waypoints: Runner) -> None:
    """LB_F_L7_CLIENTS (issue 9 item 3): a Service port with only consumer routes goes to the
    waypoint for the clients the agent listed (pods in those routes' namespaces); every
    other client keeps plain L4 to a backend."""
    bs = [(ipaddress.IPv4Address(BACKEND), 8080)]
    maps.write_service(waypoints.dp, ipaddress.IPv4Address(VIP), 80, TCP_P, bs,
                       maglev_table([f"{BACKEND}:8080"]), 0, None, maps.LB_F_L7_CLIENTS)
    listed = (ipaddress.IPv4Address(VIP), 80, TCP_P, ipaddress.IPv4Address(CLIENT))
    other = pkt(CLIENT, VIP, TCP(sport=48000, dport=80, flags="S"))
    out = waypoints.from_pod(other)
    assert (out.packet[IP].dst, out.packet[TCP].dport) == (BACKEND, 8080)
    maps.write_l7_client(waypoints.dp, listed)
    try:
        out = waypoints.from_pod(pkt(CLIENT, VIP, TCP(sport=48001, dport=80, flags="S")))
        assert (out.packet[IP].dst, out.packet[TCP].dport) == LOCAL_WAYPOINT
        assert maps.read_l7_clients(waypoints.dp) == {listed}
    finally:
        maps.delete_l7_client(waypoints.dp, listed)
