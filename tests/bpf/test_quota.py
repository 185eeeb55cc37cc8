"""Per-endpoint conntrack quota (bpf/lib/quota.h) through BPF_PROG_TEST_RUN: a pod over its
quota is refused new connections with a reason and a flow, while other pods and its own
established connections carry on; the CT GC's census gives quota back."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator

import pytest
from scapy.layers.inet import TCP, UDP

from agent.datapath import maps
from agent.datapath.controller import DatapathController
from agent.flows.store import FlowRing

from .test_datapath import (
    BACKEND,
    CLIENT,
    OTHER,
    TC_ACT_OK,
    TC_ACT_SHOT,
    UDP_P,
    VIP,
    Runner,
    client_endpoint,
    pkt,
    reason,
    service,
)

pytestmark = pytest.mark.bpf
QUOTA = 3
TENANT_B = "10.244.1.7"  # a second pod on the node (same test veth, its own endpoint entry)
OVER = "CT_ENDPOINT_QUOTA_EXCEEDED"


@pytest.fixture
def dp(runner: Runner) -> Iterator[Runner]:
    runner.reset()
    runner.dp.table("ct_quota_v1").clear()
    maps.write_ct_endpoint_quota(runner.dp, QUOTA)
    yield runner
    maps.write_ct_endpoint_quota(runner.dp, 0)


def syn(src: str, sport: int, dst: str = BACKEND) -> object:
    return pkt(src, dst, TCP(sport=sport, dport=8080, flags="S"))


def as_tenant(r: Runner, ip: str) -> None:
    client_endpoint(r, ip=ip, identity=300 if ip == CLIENT else 301)
    maps.write_ipcache(r.dp, {ipaddress.IPv4Address(TENANT_B): 301})


def test_an_endpoint_over_its_quota_is_refused_while_another_still_connects(dp: Runner) -> None:
    as_tenant(dp, CLIENT)
    for sport in range(41000, 41000 + QUOTA):
        assert dp.from_pod(syn(CLIENT, sport)).verdict == TC_ACT_OK
    over = dp.from_pod(syn(CLIENT, 41100))
    assert over.verdict == TC_ACT_SHOT
    (ev,) = over.events
    assert ev.verdict == 2 and reason(ev) == OVER  # a DROPPED flow naming the quota
    # Its connections that exist keep flowing: the quota only refuses new ones.
    ack = dp.from_pod(pkt(CLIENT, BACKEND, TCP(sport=41000, dport=8080, flags="A")))
    assert ack.verdict == TC_ACT_OK
    # Another pod on the node is unaffected by A's exhaustion.
    as_tenant(dp, TENANT_B)
    for sport in range(42000, 42000 + QUOTA):
        assert dp.from_pod(syn(TENANT_B, sport, dst=OTHER)).verdict == TC_ACT_OK
    counts = {maps.from_be32(k.value): v.value for k, v in dp.dp.table("ct_quota_v1").items()}
    assert counts == {ipaddress.IPv4Address(CLIENT): QUOTA, ipaddress.IPv4Address(TENANT_B): QUOTA}


def test_over_quota_service_traffic_creates_no_service_entry(dp: Runner) -> None:
    as_tenant(dp, CLIENT)
    service(dp, [(BACKEND, 5353)], proto=UDP_P)
    for sport in range(43000, 43000 + QUOTA):
        ok = dp.from_pod(pkt(CLIENT, VIP, UDP(sport=sport, dport=80) / b"x"))
        assert ok.verdict == TC_ACT_OK
    entries = sum(1 for _ in dp.dp.table("ct_v1").keys())
    over = dp.from_pod(pkt(CLIENT, VIP, UDP(sport=43100, dport=80) / b"x"))
    assert over.verdict == TC_ACT_SHOT and reason(over.events[0]) == OVER
    assert sum(1 for _ in dp.dp.table("ct_v1").keys()) == entries


def test_gc_census_returns_quota_for_removed_entries(dp: Runner) -> None:
    as_tenant(dp, CLIENT)
    for sport in range(44000, 44000 + QUOTA):
        dp.from_pod(syn(CLIENT, sport))
    assert dp.from_pod(syn(CLIENT, 44100)).verdict == TC_ACT_SHOT
    # One connection ends (RST) and ages past the closed grace; an LRU eviction takes another
    # behind BPF's back (deleted here without telling the count).
    dp.from_pod(pkt(CLIENT, BACKEND, TCP(sport=44000, dport=8080, flags="R")))
    table = dp.dp.table("ct_v1")
    evicted = next(k for k in table.keys() if k.dir == 1 and maps.from_be16(k.tuple.sport) == 44001)
    del table[evicted]
    gc = DatapathController("n1", dp.dp, FlowRing(64), ct_endpoint_quota=QUOTA)  # type: ignore[arg-type]
    try:
        later = time.clock_gettime_ns(time.CLOCK_MONOTONIC) + 11 * 10**9
        gc.gc_once(later)
    finally:
        gc.close_netlink()
    counts = {maps.from_be32(k.value): v.value for k, v in dp.dp.table("ct_quota_v1").items()}
    assert counts == {ipaddress.IPv4Address(CLIENT): 1}
    assert dp.from_pod(syn(CLIENT, 44101)).verdict == TC_ACT_OK
    assert dp.from_pod(syn(CLIENT, 44102)).verdict == TC_ACT_OK
    assert dp.from_pod(syn(CLIENT, 44103)).verdict == TC_ACT_SHOT


def test_the_default_quota_is_an_eighth_of_conntrack(dp: Runner) -> None:
    maps.write_ct_endpoint_quota(dp.dp, 0)
    as_tenant(dp, CLIENT)
    table = dp.dp.table("ct_quota_v1")
    key = table.Key(maps.be32(CLIENT))
    table[key] = table.Leaf(dp.dp.table("ct_v1").max_entries // 8 - 1)
    assert dp.from_pod(syn(CLIENT, 45000)).verdict == TC_ACT_OK
    assert dp.from_pod(syn(CLIENT, 45001)).verdict == TC_ACT_SHOT


def test_the_agents_configured_quota_is_the_one_enforced(dp: Runner) -> None:
    maps.write_ct_endpoint_quota(dp.dp, 0)
    agent = DatapathController("n1", dp.dp, FlowRing(64), ct_endpoint_quota=1)  # type: ignore[arg-type]
    agent.close_netlink()
    as_tenant(dp, CLIENT)
    assert dp.from_pod(syn(CLIENT, 46000)).verdict == TC_ACT_OK
    assert dp.from_pod(syn(CLIENT, 46001)).verdict == TC_ACT_SHOT


# -- closes give quota back at once (issue 16) ---------------------------------------------


def quota_count(r: Runner) -> int | None:
    table = r.dp.table("ct_quota_v1")
    leaf = table.get(table.Key(maps.be32(CLIENT)))
    return None if leaf is None else int(leaf.value)


def one_request(r: Runner, sport: int, closer: str) -> int:
    """A whole `Connection: close` exchange through the Service; `closer` names the packet
    that ends it: the client's last FIN, the backend's last FIN, or a reset."""
    def up(flags: str) -> int:
        return r.from_pod(pkt(CLIENT, VIP, TCP(sport=sport, dport=80, flags=flags))).verdict

    def down(flags: str) -> int:
        return r.to_pod(pkt(BACKEND, CLIENT, TCP(sport=8080, dport=sport, flags=flags))).verdict

    verdicts = [up("S"), down("SA"), up("A")]
    if closer == "client-fin":  # the server closes first (nginx after Connection: close)
        verdicts += [down("FA"), up("FA")]
    elif closer == "backend-fin":
        verdicts += [up("FA"), down("FA")]
    else:
        verdicts += [up("R")]
    return max(verdicts)  # TC_ACT_OK is 0: any other verdict shows


def test_closed_connections_give_their_quota_back_without_a_gc(dp: Runner) -> None:
    """Issue 16: one pod opening and closing connections far past its quota, never more than
    one open at a time, is never refused (before, it was refused at the quota's count of
    opens until the next GC census, every 10 s)."""
    as_tenant(dp, CLIENT)
    service(dp, [(BACKEND, 8080)])
    closers = ["client-fin", "backend-fin", "reset"]
    for i in range(QUOTA * 5):
        assert one_request(dp, 47000 + i, closers[i % 3]) == TC_ACT_OK, i
    assert quota_count(dp) == 0


def test_a_reused_port_is_charged_again_and_given_back_again(dp: Runner) -> None:
    as_tenant(dp, CLIENT)
    service(dp, [(BACKEND, 8080)])
    for _ in range(QUOTA * 2):  # the closed entry's tuple reopened by each new SYN
        assert one_request(dp, 47500, "client-fin") == TC_ACT_OK
    assert quota_count(dp) == 0


def test_repeated_closing_packets_give_back_nothing_more(dp: Runner) -> None:
    """The attacker's test: resets and FINs resent on closed connections must not buy a pod
    connections past its quota."""
    as_tenant(dp, CLIENT)
    service(dp, [(BACKEND, 8080)])
    assert one_request(dp, 48000, "reset") == TC_ACT_OK
    for sport in range(48100, 48100 + QUOTA):
        assert dp.from_pod(syn(CLIENT, sport)).verdict == TC_ACT_OK
    for _ in range(4):
        dp.from_pod(pkt(CLIENT, VIP, TCP(sport=48000, dport=80, flags="R")))
        dp.from_pod(pkt(CLIENT, VIP, TCP(sport=48000, dport=80, flags="FA")))
        dp.to_pod(pkt(BACKEND, CLIENT, TCP(sport=8080, dport=48000, flags="R")))
    assert quota_count(dp) == QUOTA
    over = dp.from_pod(syn(CLIENT, 48200))
    assert over.verdict == TC_ACT_SHOT and reason(over.events[0]) == OVER


def test_a_count_the_census_left_below_zero_admits(dp: Runner) -> None:
    """A close racing the GC's census write can take a count below zero (as u64: huge); it
    must admit, not refuse the pod until the next census."""
    as_tenant(dp, CLIENT)
    table = dp.dp.table("ct_quota_v1")
    table[table.Key(maps.be32(CLIENT))] = table.Leaf(2**64 - 1)
    assert dp.from_pod(syn(CLIENT, 48300)).verdict == TC_ACT_OK
    assert quota_count(dp) == 0
