"""One endpoint's oversized policy is reported for its object and fails closed, while every
other endpoint's policy still syncs: the pure fit, and the applier against a fake map that
refuses inserts past N (as the kernel does with E2BIG / ENOSPC)."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest

from agent.datapath import applier as applier_mod
from agent.datapath import maps
from agent.datapath.applier import Applier
from agent.datapath.desired import ClusterView, DesiredDatapath, LocalEndpoint
from agent.datapath.fit import (
    CIDR_TABLE,
    IDENTITY_TABLE,
    Overflow,
    fit_policy,
    overflow_error,
    selecting_policies,
    service_error,
)
from agent.datapath.policy_plan import CidrRule, Direction, PortRule
from agent.datapath.services import Backend, ServiceEntry, ServiceKey, ServicePlan
from agent.model.convert import from_dict

IN, OUT = Direction.INGRESS, Direction.EGRESS
HUGE, SMALL, OTHER = IPv4Address("10.244.1.2"), IPv4Address("10.244.1.3"), IPv4Address("10.244.1.4")
IFINDEX = {HUGE: 10, SMALL: 11, OTHER: 12}
HTTP = (PortRule(6, 80, 80),)


def rules(ep: IPv4Address, count: int, direction: Direction = IN) -> dict[Any, Any]:
    return {(ep, 1000 + i, direction): HTTP for i in range(count)}


def test_the_big_unit_is_left_out_and_the_rest_fit() -> None:
    wanted = rules(HUGE, 10) | rules(SMALL, 2) | rules(OTHER, 3, OUT)
    cidr = {(HUGE, IN, IPv4Network("10.0.0.0/8")): CidrRule(False, HTTP)}
    fit = fit_policy(wanted, cidr, {IDENTITY_TABLE: 8, CIDR_TABLE: 8})
    assert set(fit.overflows) == {(HUGE, IN)}
    assert fit.overflows[(HUGE, IN)].reason == "needs 10 policy_v1 entries, 3 of 8 left"
    assert set(fit.identity_rules) == set(rules(SMALL, 2)) | set(rules(OTHER, 3, OUT))
    assert fit.cidr_rules == {}  # a unit is written whole or not at all


def test_a_full_cidr_table_fails_only_its_unit() -> None:
    cidr = {(SMALL, OUT, IPv4Network(f"10.{i}.0.0/16")): CidrRule(False, HTTP) for i in range(3)}
    fit = fit_policy(rules(HUGE, 1), cidr, {IDENTITY_TABLE: 8, CIDR_TABLE: 2})
    assert set(fit.overflows) == {(SMALL, OUT)} and set(fit.identity_rules) == set(rules(HUGE, 1))


# -- the applier against maps that refuse inserts ------------------------------------------


class Struct:
    """Stands in for BCC's ctypes keys and leaves: nested fields appear on first use."""

    def __init__(self, value: Any = None) -> None:
        if value is not None:
            self.value = value
        self._items: dict[int, Any] = {}
        self.rules = [Struct(0) for _ in range(16)] if value is None else []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        child = Struct.__new__(Struct)
        child._items = {}
        setattr(self, name, child)
        return child

    def __setitem__(self, index: int, value: Any) -> None:
        self._items[index] = value

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items.values())

    def _id(self) -> tuple[Any, ...]:
        return tuple(
            sorted((k, v) for k, v in vars(self).items() if k != "rules" and not k.startswith("_"))
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Struct) and self._id() == other._id()

    def __hash__(self) -> int:
        return hash(self._id())


class FakeMap:
    """Declares `max_entries` but holds at most `holds` entries: inserts past it are refused
    with BCC's message for E2BIG."""

    def __init__(self, max_entries: int = 65536, holds: int | None = None) -> None:
        self.max_entries = max_entries
        self.holds = holds if holds is not None else max_entries
        self.data: dict[Struct, Any] = {}

    def Key(self, value: Any = None) -> Struct:  # noqa: N802 (BCC's spelling)
        return Struct(value)

    def Leaf(self, value: Any = None) -> Struct:  # noqa: N802
        return Struct(value)

    def items(self) -> list[tuple[Struct, Any]]:
        return list(self.data.items())

    def keys(self) -> list[Struct]:
        return list(self.data)

    def __setitem__(self, key: Struct, leaf: Any) -> None:
        if key not in self.data and len(self.data) >= self.holds:
            raise Exception("Could not update table: Argument list too long")
        self.data[key] = leaf

    def __delitem__(self, key: Struct) -> None:
        del self.data[key]


class FakeDatapath:
    from_pod_fd = to_pod_fd = -1
    programs_loaded = True  # attach.attach is stubbed

    def __init__(self, **tables: FakeMap) -> None:
        self.tables = tables

    def table(self, name: str) -> FakeMap:
        return self.tables.setdefault(name, FakeMap())


@pytest.fixture(autouse=True)
def wired(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(applier_mod.attach, "veth_for", lambda _ipr, ip: IFINDEX[ip])
    monkeypatch.setattr(applier_mod.attach, "attach", lambda *_a: None)
    yield


def desired(identity_rules: dict[Any, Any], enforced: int = maps.EP_F_INGRESS_ENFORCED) -> DesiredDatapath:
    endpoints = {
        ip: LocalEndpoint("ns-" + name, name, ip, 300 + i, enforced)
        for i, (ip, name) in enumerate(((HUGE, "huge"), (SMALL, "small"), (OTHER, "other")))
    }
    return DesiredDatapath(endpoints=endpoints, identity_rules=identity_rules)


def endpoint_flags(dp: FakeDatapath) -> dict[int, int]:
    return {k.value: v.flags for k, v in dp.table("endpoints_v1").items()}


def policy_endpoints(dp: FakeDatapath) -> set[IPv4Address]:
    return {maps.from_be32(k.ep_ip) for k in dp.table("policy_v1").keys()}


def test_planned_overflow_fails_closed_for_its_endpoint_only() -> None:
    dp = FakeDatapath(policy_v1=FakeMap(max_entries=8))
    applier = Applier(dp, lambda: None)  # type: ignore[arg-type,return-value]
    applier.apply(desired(rules(HUGE, 10) | rules(SMALL, 2) | rules(OTHER, 3)))
    assert set(applier.overflows) == {(HUGE, IN)}
    assert policy_endpoints(dp) == {SMALL, OTHER}
    flags = endpoint_flags(dp)
    assert flags[IFINDEX[HUGE]] & maps.EP_F_INGRESS_OVERFLOW
    assert not flags[IFINDEX[SMALL]] & maps.EP_F_INGRESS_OVERFLOW
    # Once it fits again (the policy shrank), it is written and the flag goes.
    applier.apply(desired(rules(HUGE, 3) | rules(SMALL, 2) | rules(OTHER, 3)))
    assert applier.overflows == {} and policy_endpoints(dp) == {HUGE, SMALL, OTHER}
    assert not endpoint_flags(dp)[IFINDEX[HUGE]] & maps.EP_F_INGRESS_OVERFLOW


def test_a_kernel_refusal_takes_out_the_whole_unit_and_names_the_error() -> None:
    dp = FakeDatapath(policy_v1=FakeMap(max_entries=100, holds=5))  # e.g. memory, not size
    applier = Applier(dp, lambda: None)  # type: ignore[arg-type,return-value]
    applier.apply(desired(rules(SMALL, 2) | rules(HUGE, 4)))
    assert set(applier.overflows) == {(HUGE, IN)}
    assert "Argument list too long" in applier.overflows[(HUGE, IN)].reason
    assert policy_endpoints(dp) == {SMALL}  # HUGE's 3 written entries were taken out again
    assert applier.applied.identity_rules == rules(SMALL, 2)
    assert endpoint_flags(dp)[IFINDEX[HUGE]] & maps.EP_F_INGRESS_OVERFLOW


def test_stale_entries_leave_before_new_ones_arrive() -> None:
    dp = FakeDatapath(policy_v1=FakeMap(max_entries=4))
    applier = Applier(dp, lambda: None)  # type: ignore[arg-type,return-value]
    applier.apply(desired(rules(SMALL, 4)))
    applier.apply(desired({(OTHER, 2000 + i, IN): HTTP for i in range(4)}))
    assert applier.overflows == {} and policy_endpoints(dp) == {OTHER}


def test_the_report_names_the_policies_that_select_the_endpoint() -> None:
    def netpol(name: str, selector: dict[str, str], types: list[str]) -> Any:
        return from_dict({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                          "metadata": {"name": name, "namespace": "shop"},
                          "spec": {"podSelector": {"matchLabels": selector}, "policyTypes": types}})

    policies = [netpol("big", {"app": "web"}, ["Ingress"]), netpol("out", {"app": "web"}, ["Egress"]),
                netpol("db", {"app": "db"}, ["Ingress"])]
    assert selecting_policies(policies, "shop", {"app": "web"}, IN) == ["shop/big"]
    assert selecting_policies(policies, "other", {"app": "web"}, IN) == []


def test_the_health_error_names_the_pod_direction_and_policies() -> None:

    pod = from_dict({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "huge", "namespace": "ns-huge", "labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "c"}]}})
    policy = from_dict({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                        "metadata": {"name": "giant", "namespace": "ns-huge"},
                        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})
    view = ClusterView(pods=(pod,), policies=(policy,))  # type: ignore[arg-type]
    text = overflow_error(Overflow(HUGE, IN, "needs 10 policy_v1 entries, 3 of 8 left"), view,
                          desired({}))
    assert "ingress policy of pod ns-huge/huge (10.244.1.2)" in text
    assert "needs 10 policy_v1 entries" in text and "POLICY_MAP_OVERFLOW" in text
    assert text.endswith("NetworkPolicies: ns-huge/giant")



def test_a_service_that_does_not_fit_is_reported_and_the_others_still_sync() -> None:

    def entry(vip: str, count: int) -> ServiceEntry:
        key = ServiceKey(IPv4Address(vip), 80, 6)
        backends = tuple(Backend(IPv4Address(f"10.244.2.{i + 1}"), 8080) for i in range(count))
        return ServiceEntry(key, "shop", f"svc-{vip[-1]}", "http", backends, 0, (0, 1, 2))

    first, big, last = entry("10.96.0.1", 3), entry("10.96.0.2", 4), entry("10.96.0.3", 1)
    dp = FakeDatapath(lb_backends_v1=FakeMap(holds=5))
    applier = Applier(dp, lambda: None)  # type: ignore[arg-type,return-value]
    plan = ServicePlan(entries={e.key: e for e in (first, big, last)})
    applier.apply(DesiredDatapath(services=plan))
    assert set(applier.refused_services) == {big.key}
    written = {maps.from_be32(k.vip) for k in dp.table("lb_services_v1").keys()}
    assert written == {first.key.vip, last.key.vip}
    assert len(dp.table("lb_backends_v1").data) == 4  # big's partial backends taken back
    assert big.key.vip not in {maps.from_be32(k.vip) for k in dp.table("lb_maglev_v1").keys()}
    text = service_error(big.key, applier.refused_services[big.key], DesiredDatapath(services=plan))
    assert text.startswith("lb map overflow: Service shop/svc-2 10.96.0.2:80 did not fit")
