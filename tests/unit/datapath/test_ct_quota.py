"""The CT GC's bookkeeping for per-endpoint conntrack quotas (pure plan, fake map)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from agent.datapath import maps
from agent.datapath.conntrack_gc import (
    CLOSED_GRACE_NS,
    CT_EGRESS,
    CT_F_CLOSED,
    CT_SERVICE,
    TCP_IDLE_NS,
    plan_gc,
)
from agent.datapath.flowevents import CT_F_TUNNEL

NOW = 100 * 10**12
A, B = 0x0201F40A, 0x0701F40A  # be32 10.244.1.2 and 10.244.1.7 as BPF stores them
CT_INGRESS = 2


def entry(idle: int = 0, closed: bool = False) -> Any:
    return SimpleNamespace(last_seen_ns=NOW - idle, flags=CT_F_CLOSED if closed else 0,
                           backend_addr=0, backend_port=0)


def key(saddr: int, sport: int, direction: int = CT_EGRESS) -> Any:
    t = SimpleNamespace(saddr=saddr, sport=sport, daddr=9, dport=80, proto=6)
    return SimpleNamespace(dir=direction, tuple=t)


def test_counts_are_a_census_of_the_open_egress_entries_that_stay() -> None:
    entries = [
        (key(A, 1), entry()),
        (key(A, 2), entry()),
        (key(A, 3), entry(idle=CLOSED_GRACE_NS + 1, closed=True)),  # goes
        (key(A, 4), entry(idle=TCP_IDLE_NS + 1)),  # expires
        (key(A, 5), entry(closed=True)),  # closed, in its grace: stays, but is not live
        (key(B, 1), entry()),
        (key(B, 2, CT_INGRESS), entry()),  # accepted, not opened: not B's quota
        (key(B, 3, CT_SERVICE), entry()),  # service entries ride on their egress entry
    ]
    plan = plan_gc(entries, NOW)
    assert plan.quota_counts == {A: 2, B: 1}
    assert [k.tuple.sport for k in plan.doomed] == [3, 4]
    assert [k.tuple.sport for k, _ in plan.expired] == [4]


def test_a_tunnelled_connection_keeps_its_service_entry() -> None:
    """A connection sent to the waypoint's tunnel (bpf/lib/mtls.h) is keyed on the waypoint's
    address; the service entry that chose its backend stays while it is open, however idle."""
    tunnelled = SimpleNamespace(last_seen_ns=NOW, flags=CT_F_TUNNEL, backend_addr=7,
                                backend_port=8080)
    egress = SimpleNamespace(dir=CT_EGRESS, tuple=SimpleNamespace(
        saddr=A, sport=1, daddr=0xFE01F40A, dport=15007, proto=6))
    svc = SimpleNamespace(dir=CT_SERVICE, tuple=SimpleNamespace(
        saddr=A, sport=1, daddr=9, dport=80, proto=6))
    steering = SimpleNamespace(last_seen_ns=NOW - CLOSED_GRACE_NS - 1, flags=0, backend_addr=7,
                               backend_port=8080)
    assert plan_gc([(egress, tunnelled), (svc, steering)], NOW).doomed == []
    plain = SimpleNamespace(last_seen_ns=NOW, flags=0, backend_addr=7, backend_port=8080)
    assert plan_gc([(egress, plain), (svc, steering)], NOW).doomed == [svc]


def test_closed_connections_in_their_grace_are_no_quota() -> None:
    """Issue 16: a pod closing each connection after one request keeps thousands of closed
    entries for the grace period; counting them held its new connections back."""
    entries = [(key(A, port), entry(idle=CLOSED_GRACE_NS - 1, closed=True)) for port in range(50)]
    plan = plan_gc(entries + [(key(A, 99), entry())], NOW)
    assert plan.quota_counts == {A: 1}
    assert plan.doomed == []  # they still stay for their grace


def test_an_endpoint_whose_entries_all_went_has_no_count() -> None:
    plan = plan_gc([(key(A, 1), entry(idle=TCP_IDLE_NS + 1))], NOW)
    assert plan.quota_counts == {}


class FakeTable:
    def __init__(self, values: dict[int, int]) -> None:
        self.values = dict(values)

    def Key(self, value: int) -> Any:  # noqa: N802 (BCC's spelling)
        return SimpleNamespace(value=value)

    def Leaf(self, value: int) -> Any:  # noqa: N802
        return value

    def keys(self) -> list[Any]:
        return [self.Key(v) for v in self.values]

    def __setitem__(self, k: Any, v: int) -> None:
        self.values[k.value] = v

    def __delitem__(self, k: Any) -> None:
        del self.values[k.value]


class FakeDatapath:
    def __init__(self, **tables: FakeTable) -> None:
        self.tables = tables

    def table(self, name: str) -> FakeTable:
        return self.tables[name]


def test_writing_counts_replaces_drifted_values_and_frees_gone_endpoints() -> None:
    quota = FakeTable({A: 900, B: 4})  # A drifted up (LRU evictions); B has no entries left
    maps.write_ct_quota_counts(FakeDatapath(ct_quota_v1=quota), {A: 3})  # type: ignore[arg-type]
    assert quota.values == {A: 3}


def test_a_negative_quota_is_refused_by_name() -> None:
    config = FakeTable({})
    with pytest.raises(ValueError, match="conntrack endpoint quota"):
        maps.write_ct_endpoint_quota(FakeDatapath(tulle_config_v1=config), -1)  # type: ignore[arg-type]
    maps.write_ct_endpoint_quota(FakeDatapath(tulle_config_v1=config), 500)  # type: ignore[arg-type]
    assert config.values == {maps.CFG_CT_ENDPOINT_QUOTA: 500}


def test_a_nodeport_connection_keeps_its_service_entry() -> None:
    """From outside (bpf/lib/nodeport.h): the CT_NODEPORT entry is keyed on the tuple toward
    the backend, from the client or (SNAT) from the node with the client in backend_*; the
    client->node:nodePort service entry that chose the backend stays while it is open."""
    from agent.datapath.conntrack_gc import CT_F_SNAT, CT_NODEPORT

    client, node, backend = 0x0200F00A, 0x0B00F00A, 7
    svc = SimpleNamespace(dir=CT_SERVICE, tuple=SimpleNamespace(
        saddr=client, sport=40000, daddr=node, dport=30080, proto=6))
    steering = SimpleNamespace(last_seen_ns=NOW - CLOSED_GRACE_NS - 1, flags=0,
                               backend_addr=backend, backend_port=8080)
    direct = SimpleNamespace(dir=CT_NODEPORT, tuple=SimpleNamespace(
        saddr=client, sport=40000, daddr=backend, dport=8080, proto=6))
    snat = SimpleNamespace(dir=CT_NODEPORT, tuple=SimpleNamespace(
        saddr=node, sport=40000, daddr=backend, dport=8080, proto=6))
    open_ = SimpleNamespace(last_seen_ns=NOW, flags=0, backend_addr=0, backend_port=0)
    snat_open = SimpleNamespace(last_seen_ns=NOW, flags=CT_F_SNAT, backend_addr=client,
                                backend_port=40000)
    assert plan_gc([(direct, open_), (svc, steering)], NOW).doomed == []
    assert plan_gc([(snat, snat_open), (svc, steering)], NOW).doomed == []
    closed = SimpleNamespace(last_seen_ns=NOW, flags=CT_F_CLOSED, backend_addr=0, backend_port=0)
    assert plan_gc([(direct, closed), (svc, steering)], NOW).doomed == [svc]
    assert plan_gc([(svc, steering)], NOW).doomed == [svc]
