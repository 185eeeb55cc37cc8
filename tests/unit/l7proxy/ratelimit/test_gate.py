"""Which buckets a request is charged to: the total per targeted Service, one per caller
identity (its ServiceAccount's SPIFFE ID, as authz derives it), an override's rate for its
ServiceAccounts, one shared bucket for callers without identity; the oldest policy of a
Service wins; the 429's fields."""

from __future__ import annotations

from typing import Any

from agent.model.convert import from_dict
from agent.model.core import Service
from agent.model.ratelimit import HTTPLocalRateLimitPolicy
from authz import Peer
from gatewayapi import BackendTarget
from l7proxy.ratelimit import RateLimitGate, plans

TD = "cluster.local"
PODS = {  # ip -> (namespace, ServiceAccount)
    "10.0.0.1": ("shop", "a"),
    "10.0.0.2": ("shop", "b"),
    "10.0.0.3": ("shop", "a"),  # a second pod of a
    "10.0.0.4": ("shop", "vip"),
    "10.0.0.5": ("jobs", "vip"),  # the same name in another namespace
}
WEB = BackendTarget("shop", "web", 80)
OTHER = BackendTarget("shop", "other", 80)


def peer(ip: str) -> Peer:
    found = PODS.get(ip)
    return Peer(ip) if found is None else Peer.of_pod(ip, TD, *found)


def service(name: str) -> Service:
    svc = from_dict({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": name, "namespace": "shop"},
                     "spec": {"ports": [{"port": 80}]}})
    assert isinstance(svc, Service)
    return svc


def policy(name: str, created: str = "2026-12-01T00:00:00Z", targets: tuple[str, ...] = ("web",),
           **spec: Any) -> HTTPLocalRateLimitPolicy:
    p = from_dict({
        "apiVersion": "policy.tulle.io/v1alpha1", "kind": "HTTPLocalRateLimitPolicy",
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": created},
        "spec": {"targetRefs": [{"kind": "Service", "name": t} for t in targets], **spec},
    })
    assert isinstance(p, HTTPLocalRateLimitPolicy)
    return p


def gate(*policies: HTTPLocalRateLimitPolicy) -> tuple[RateLimitGate, list[float]]:
    clock = [100.0]
    g = RateLimitGate(peer, clock=lambda: clock[0])
    g.swap(policies, [service("web"), service("other")])
    return g, clock


def passed(g: RateLimitGate, ip: str, n: int, target: BackendTarget = WEB) -> int:
    return sum(g.check((ip, 40000), target) is None for _ in range(n))


def test_each_identity_has_its_own_budget() -> None:
    g, _ = gate(policy("web", identity={"requestsPerSecond": 3}))
    assert passed(g, "10.0.0.1", 10) == 3
    assert passed(g, "10.0.0.2", 10) == 3  # b is not held back by a
    assert passed(g, "10.0.0.3", 10) == 0  # another pod of a: the same identity


def test_an_override_lifts_the_limit_for_its_service_account_only() -> None:
    g, _ = gate(policy("web", identity={"requestsPerSecond": 2}, overrides=[
        {"requestsPerSecond": 6, "clientRefs": [{"kind": "ServiceAccount", "name": "vip"}]}]))
    assert passed(g, "10.0.0.4", 10) == 6
    assert passed(g, "10.0.0.5", 10) == 2  # jobs/vip is not shop/vip
    assert passed(g, "10.0.0.1", 10) == 2


def test_an_override_without_an_identity_limit_limits_only_its_accounts() -> None:
    g, _ = gate(policy("web", overrides=[
        {"requestsPerSecond": 2, "clientRefs": [{"kind": "ServiceAccount", "name": "b"}]}]))
    assert passed(g, "10.0.0.2", 10) == 2
    assert passed(g, "10.0.0.1", 50) == 50


def test_the_total_holds_over_every_caller() -> None:
    g, clock = gate(policy("web", total={"requestsPerSecond": 5},
                           identity={"requestsPerSecond": 3}))
    assert passed(g, "10.0.0.1", 10) == 3
    assert passed(g, "10.0.0.2", 10) == 2  # the total's last two
    limited = g.check(("10.0.0.4", 1), WEB)
    assert limited is not None and limited.verdict.limit == 5
    assert limited.policy == "shop/web"
    clock[0] += 1.0  # a second later, the budgets are back
    assert passed(g, "10.0.0.4", 10) == 3


def test_callers_without_identity_share_one_bucket() -> None:
    g, _ = gate(policy("web", identity={"requestsPerSecond": 2}))
    assert passed(g, "192.0.2.1", 5) == 2
    assert passed(g, "192.0.2.2", 5) == 0  # an unknown address gets no fresh budget


def test_each_target_and_only_targets_are_limited() -> None:
    g, _ = gate(policy("web", targets=("web", "other"), total={"requestsPerSecond": 2}))
    assert passed(g, "10.0.0.1", 5) == 2
    assert passed(g, "10.0.0.1", 5, OTHER) == 2
    assert passed(g, "10.0.0.1", 5, BackendTarget("shop", "free", 80)) == 5


def test_the_oldest_policy_of_a_service_applies() -> None:
    newer = policy("newer", "2026-12-02T00:00:00Z", total={"requestsPerSecond": 1})
    older = policy("older", "2026-12-01T00:00:00Z", total={"requestsPerSecond": 4})
    assert plans([newer, older], [service("web")])[("shop", "web")].policy == "shop/older"
    g, _ = gate(newer, older)
    assert passed(g, "10.0.0.1", 10) == 4


def test_a_swap_keeps_the_budgets_spent() -> None:
    p = policy("web", identity={"requestsPerSecond": 3})
    g, _ = gate(p)
    assert passed(g, "10.0.0.1", 10) == 3
    g.swap([p], [service("web"), service("other"), service("new")])
    assert passed(g, "10.0.0.1", 10) == 0
    g.swap([], [service("web")])  # policy deleted: no limit
    assert passed(g, "10.0.0.1", 10) == 10


def test_the_answer_carries_retry_after_and_ratelimit_fields() -> None:
    g, clock = gate(policy("web", identity={"requestsPerSecond": 2}))
    passed(g, "10.0.0.1", 2)
    clock[0] += 0.25
    limited = g.check(("10.0.0.1", 1), WEB)
    assert limited is not None
    headers = dict(limited.headers())
    assert headers[b"retry-after"] == b"1"  # 0.25 s, in whole seconds, at least 1
    assert headers[b"ratelimit-limit"] == b"2"
    assert headers[b"ratelimit-remaining"] == b"0"
    assert headers[b"ratelimit-reset"] == b"1"  # 0.75 s until both are back, rounded up
    assert headers[b"content-type"] == b"text/plain"


def test_a_total_alone_limits_every_caller_together() -> None:
    """The plan whose one bucket does not depend on the caller (built once): callers of
    any identity, or none, share it; a second later it is full again."""
    g, clock = gate(policy("web", total={"requestsPerSecond": 4}))
    assert passed(g, "10.0.0.1", 3) == 3
    assert passed(g, "192.0.2.9", 3) == 1  # no identity: the same bucket
    limited = g.check(("10.0.0.4", 1), WEB)
    assert limited is not None and limited.verdict.limit == 4 and limited.policy == "shop/web"
    assert passed(g, "10.0.0.1", 3, OTHER) == 3  # another Service: not targeted
    clock[0] += 1.0
    assert passed(g, "10.0.0.2", 10) == 4
