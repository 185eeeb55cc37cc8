"""``AuthzGate.check`` remembers verdicts per (caller address, parent, endpoints, SNI,
method, authority, target, the header fields a rule reads): a remembered verdict is the one
a gate with no memory gives, whatever the order and repetition of calls; requests that
differ in any of those are judged anew; ``swap`` (policies or pods) forgets them all; an
AUDIT match is logged on every request; the memory is bounded. Attackers' requests
included: another path spelling, a read header in another case, another caller on the
same connection shape, a long target."""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import l7proxy.authz
from agent.model.authz import AuthorizationPolicy
from agent.model.convert import from_dict
from agent.model.core import Pod
from authz.residual import header_fields, pick_headers
from gatewayapi import GatewayParent, ServiceParent
from l7proxy.authz import AuthzGate, Call
from tests.unit.authz.helpers import policy, rule
from tests.unit.authz.test_compiled import policies


def _pod(name: str, namespace: str, ip: str, account: str = "web") -> Pod:
    found = from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [{"name": "c", "image": "x"}], "serviceAccountName": account},
        "status": {"phase": "Running", "podIP": ip},
    })
    assert isinstance(found, Pod)
    return found


# endpoints of "shop" (the generated policies' namespace) and callers of several identities
PODS = [_pod("api", "shop", "10.1.0.5"), _pod("api2", "shop", "10.1.0.6"),
        _pod("fe", "front", "10.2.0.1"), _pod("db", "back", "10.2.0.2", "db")]
CALLS = st.builds(
    Call,
    client=st.tuples(st.sampled_from(["10.2.0.1", "10.2.0.2", "10.9.9.9", "10.1.0.5"]),
                     st.sampled_from([40000, 40001])),
    parent=st.sampled_from([None, ServiceParent("shop", "api", 80),
                            GatewayParent("shop", "gw", 8080)]),
    endpoints=st.sampled_from([(("10.1.0.5", 80),), (("10.1.0.5", 80), ("10.1.0.6", 8080)),
                               [("10.1.0.6", 8080)], ()]),
    method=st.sampled_from(["GET", "POST", "get"]),
    authority=st.sampled_from(["api.shop", "API.SHOP:8080", "x.shop"]),
    target=st.sampled_from(["/", "/admin", "/x/../admin", "/api/v1?q=1", "/x/.env",
                            "/%2e%2e/admin", "/a//admin"]),
    headers=st.lists(st.tuples(st.sampled_from([b"x-a", b"X-A", b"X-B", b"x-b", b"x-c"]),
                               st.sampled_from([b"v1", b"V1", b"w1", b""])), max_size=3),
    sni=st.sampled_from(["", "api.shop"]),
)


def _fresh(found: list[AuthorizationPolicy], pods: list[Pod], call: Call) -> object:
    gate = AuthzGate("cluster.local")
    gate.swap(found, pods)
    return gate.check(call)


FIELDS = st.sampled_from(Call._fields)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), policies(), st.lists(CALLS, min_size=1, max_size=4),
       st.lists(st.tuples(st.integers(0, 3), FIELDS, CALLS), max_size=6),
       st.lists(st.integers(0, 9), min_size=1, max_size=14), st.integers(0, 14))
def test_a_remembered_verdict_is_the_verdict_judged_anew(
        first: list[AuthorizationPolicy], then: list[AuthorizationPolicy], calls: list[Call],
        neighbours: list[tuple[int, str, Call]], order: list[int], swap_at: int) -> None:
    """Calls drawn from a few and from their neighbours (a call with one field of another:
    the same request but for its SNI, its caller, a header...), repeated in any order,
    through one gate: each gets what a gate that never saw a call gives; after a ``swap``
    to other policies (and a caller's pod gone), each gets the new policies' verdict."""
    pool = calls + [calls[i % len(calls)]._replace(**{field: getattr(other, field)})
                    for i, field, other in neighbours]
    gate = AuthzGate("cluster.local")
    gate.swap(first, PODS)
    found, pods = first, PODS
    for step, index in enumerate(order):
        if step == swap_at:
            found, pods = then, PODS[:-1]
            gate.swap(found, pods)
        call = pool[index % len(pool)]
        assert gate.check(call) == _fresh(found, pods, call), (step, call)


GATEWAY = GatewayParent("shop", "gw", 8080)
DENY_DEBUG = policy("deny-debug", {"action": "DENY", "rules": [
    rule(when=[{"key": "request.headers[X-Debug]", "values": ["*"]}])]})
DENY_ADMIN = policy("deny-admin", {"action": "DENY",
                                   "rules": [rule(operation={"paths": ["/admin"]})]})
FRONT_ONLY = policy("front-only", {"rules": [rule(source={"namespaces": ["front"]})]})


def _call(target: str = "/x", headers: tuple[tuple[bytes, bytes], ...] = (),
          client: str = "10.2.0.1", method: str = "GET") -> Call:
    return Call((client, 40000), GATEWAY, (("10.1.0.5", 80),), method, "api.shop", target,
                list(headers))


def _gate(*found: AuthorizationPolicy) -> AuthzGate:
    gate = AuthzGate("cluster.local")
    gate.swap(found, PODS)
    return gate


def test_keep_alive_requests_that_differ_each_get_their_own_verdict() -> None:
    gate = _gate(DENY_DEBUG, DENY_ADMIN, FRONT_ONLY)
    sequence = [
        (_call(), True), (_call("/admin"), False), (_call(), True),
        (_call("/x/../admin"), False),  # another spelling of the denied path
        (_call(headers=((b"X-DEBUG", b"1"),)), False),  # the read header, another case
        (_call(headers=((b"x-debug", b"on"),)), False),
        (_call(headers=((b"user-agent", b"a"),)), True),  # a header no rule reads
        (_call(client="10.2.0.2"), False),  # another caller: not in the ALLOW list
        (_call(client="10.9.9.9"), False),  # no pod, no identity
        (_call(), True),
    ]
    for call, allowed in sequence:
        verdict = gate.check(call)
        assert (verdict is None) is allowed, call


NEIGHBOURS = {  # a field of the allowed call, changed to one that a policy below denies
    "sni": "api.shop", "method": "POST", "authority": "admin.shop",
    "endpoints": (("10.1.0.5", 80), ("10.2.0.2", 80)),  # a pod of "back": denied there
    "parent": GatewayParent("shop", "gw2", 8080), "client": ("10.2.0.2", 40000),
    "target": "/admin?x=1", "headers": [(b"X-Debug", b"1")],
}
DENY_EACH = [
    DENY_DEBUG, DENY_ADMIN, FRONT_ONLY,
    policy("deny-sni", {"action": "DENY", "rules": [
        rule(when=[{"key": "connection.sni", "values": ["api.shop"]}])]}),
    policy("deny-post", {"action": "DENY", "rules": [rule(operation={"methods": ["POST"]})]}),
    policy("deny-host", {"action": "DENY", "rules": [rule(operation={"hosts": ["admin.*"]})]}),
    policy("deny-all-in-back", {"action": "DENY", "rules": [{}]}, "back"),
    policy("deny-gw2", {"targetRefs": [{"group": "gateway.networking.k8s.io",
                                        "kind": "Gateway", "name": "gw2"}],
                        "action": "DENY", "rules": [{}]}),
]


@pytest.mark.parametrize("field", sorted(NEIGHBOURS))
@pytest.mark.parametrize("neighbour_first", [False, True])
def test_each_fact_of_the_key_separates_verdicts(field: str, neighbour_first: bool) -> None:
    """Two calls that differ in one field only (the SNI, the parent, the endpoints...),
    in either order on one gate: each gets its own verdict."""
    gate = _gate(*DENY_EACH)
    call = _call()
    neighbour = call._replace(**{field: NEIGHBOURS[field]})
    for _ in range(2):
        for c in (neighbour, call) if neighbour_first else (call, neighbour):
            verdict = gate.check(c)
            assert (verdict is None) is (c is call), (field, c)


def test_a_header_no_rule_reads_does_not_split_the_memory() -> None:
    gate = _gate(DENY_DEBUG, FRONT_ONLY)
    for agent in (b"a", b"b", b"c"):
        assert gate.check(_call(headers=((b"user-agent", agent), (b"x-request-id", agent)))) is None
    assert len(gate._verdicts) == 1


def test_a_policy_or_pod_change_applies_to_the_next_request() -> None:
    gate = _gate(FRONT_ONLY)
    call = _call()
    assert gate.check(call) is None
    gate.swap([DENY_ADMIN, policy("nobody", {})], PODS)  # an ALLOW without rules: deny all
    denied = gate.check(call)
    assert denied is not None and not denied.allowed
    gate.swap([FRONT_ONLY], PODS)
    assert gate.check(call) is None
    # the caller's address now holds a pod of another namespace: no longer allowed
    gate.swap([FRONT_ONLY], [_pod("api", "shop", "10.1.0.5"), _pod("x", "evil", "10.2.0.1")])
    denied = gate.check(call)
    assert denied is not None and denied.by_allow


def test_an_audit_match_is_logged_on_every_request(caplog: pytest.LogCaptureFixture) -> None:
    audit = policy("audit-admin", {"action": "AUDIT",
                                   "rules": [rule(operation={"paths": ["/admin"]})]})
    gate = _gate(audit)
    with caplog.at_level(logging.INFO, logger="tulle.waypoint.authz"):
        for _ in range(3):
            verdict = gate.check(_call("/admin"))
            assert verdict is not None and verdict.allowed
            assert verdict.audited == ("shop/audit-admin",)
        assert gate.check(_call("/x")) is None
    assert sum("audit-admin" in r.getMessage() for r in caplog.records) == 3


def test_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """An attacker sending ever new paths (or huge ones) cannot grow it: it starts over
    past VERDICTS_KEPT, and a request longer than VERDICT_KEY_CHARS is not kept (it is
    still judged)."""
    monkeypatch.setattr(l7proxy.authz, "VERDICTS_KEPT", 8)
    gate = _gate(DENY_ADMIN, FRONT_ONLY)
    for i in range(50):
        assert gate.check(_call(f"/p{i}")) is None
        assert len(gate._verdicts) <= 8
    gate.swap([DENY_ADMIN, DENY_DEBUG, FRONT_ONLY], PODS)
    long = "/admin/" + "a" * l7proxy.authz.VERDICT_KEY_CHARS
    assert gate.check(_call(long)) is None
    assert gate.check(_call("/admin")) is not None
    assert gate.check(_call(headers=((b"x-debug", b"v" * 5000),))) is not None
    assert len(gate._verdicts) == 1  # only /admin was kept



def test_a_memo_that_never_answers_is_bypassed_then_tried_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests that never repeat fill the memo with no hit: the next VERDICTS_BYPASSED
    requests are judged without it (none kept, each still gets its verdict, a denied path
    included), then the memo is used again and a repeated request is judged once. A few
    hits per fill keep it in use."""
    monkeypatch.setattr(l7proxy.authz, "VERDICTS_KEPT", 8)
    monkeypatch.setattr(l7proxy.authz, "FUTILE_HITS", 4)  # needs 2 hits per 8 kept
    monkeypatch.setattr(l7proxy.authz, "VERDICTS_BYPASSED", 5)
    gate = _gate(DENY_ADMIN, FRONT_ONLY)
    judged: list[str] = []
    judge = gate._judge
    monkeypatch.setattr(gate, "_judge", lambda call, fields: (
        judged.append(call.target), judge(call, fields))[1])
    for i in range(9):  # 8 kept, no hit; the 9th finds it full and futile
        assert gate.check(_call(f"/p{i}")) is None
    assert gate._verdicts == {} and len(judged) == 9
    judged.clear()
    for target in ["/r", "/r", "/admin", "/admin", "/r"]:  # bypassed: each judged
        assert (gate.check(_call(target)) is None) is (target == "/r")
    assert judged == ["/r", "/r", "/admin", "/admin", "/r"] and gate._verdicts == {}
    judged.clear()
    for _ in range(3):  # back in use: judged once
        assert gate.check(_call("/admin")) is not None
    assert judged == ["/admin"]
    # 2 hits in a fill of 8 (one per FUTILE_HITS x 2 = 8 kept): it stays in use
    judged.clear()
    for i in range(7):
        gate.check(_call(f"/q{i}"))
    gate.check(_call("/q0"))
    gate.check(_call("/x"))  # full: cleared, not bypassed (3 hits: 2 on /admin, 1 on /q0)
    assert gate._bypass == 0
    assert gate.check(_call("/x")) is None and judged[-1] == "/x" and judged.count("/x") == 1
    gate.swap([DENY_ADMIN], PODS)
    assert gate._bypass == 0 and gate._hits == 0


RAW = st.lists(st.tuples(st.sampled_from([b"x-a", b"X-A", b"x-\xc0", b"X-\xe0", b"x-b", b"y"]),
                         st.sampled_from([b"1", b"", b"\xff"])), max_size=5)
NAMES = st.frozensets(st.sampled_from(["x-a", "x-\xe0", "x-b", "z"]))


@settings(max_examples=300, deadline=None)
@given(RAW, RAW, NAMES, NAMES)
def test_header_fields_are_what_pick_headers_reads(raw: list[tuple[bytes, bytes]],
                                                   other: list[tuple[bytes, bytes]],
                                                   names: frozenset[str],
                                                   subset: frozenset[str]) -> None:
    """The fields kept decide ``pick_headers`` for the names and any subset of them (a
    residual reads a subset), non-ASCII names included (latin-1 case folding); two
    requests with the same fields pick the same headers."""
    subset &= names
    fields = header_fields(raw, names)
    assert pick_headers(fields, subset) == pick_headers(raw, subset)
    assert pick_headers(fields, names) == pick_headers(raw, names)
    if header_fields(other, names) == fields:
        assert pick_headers(other, subset) == pick_headers(raw, subset)


def test_a_host_network_pods_address_names_the_host_not_the_pod() -> None:
    """A hostNetwork pod's podIP is its node's, which every process on the node uses: a
    policy allowing that pod's namespace must not allow the node's other processes."""
    node_ip = "10.240.0.11"
    monitor = from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "monitor", "namespace": "front"},
        "spec": {"containers": [{"name": "c", "image": "x"}], "serviceAccountName": "mon",
                 "hostNetwork": True},
        "status": {"phase": "Running", "podIP": node_ip},
    })
    assert isinstance(monitor, Pod) and monitor.spec.host_network
    gate = AuthzGate("cluster.local")
    gate.swap([FRONT_ONLY], [*PODS, monitor])
    from_host = gate.check(_call(client=node_ip))
    assert from_host is not None and not from_host.allowed  # judged as an unknown caller
    from_front = gate.check(_call(client="10.2.0.1"))  # a real pod of namespace front
    assert from_front is None or from_front.allowed


def test_residuals_narrowed_per_client_address_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Policies reading the peer address narrow one residual per client address: a client
    spraying source addresses cannot grow them past NARROWED_KEPT, and verdicts hold."""
    monkeypatch.setattr(l7proxy.authz, "NARROWED_KEPT", 4)
    by_block = policy("by-block", {"rules": [rule(source={"ipBlocks": ["10.2.0.0/24"]})]})
    gate = _gate(by_block)
    for i in range(1, 40):
        verdict = gate.check(_call(f"/p{i}", client=f"10.2.{i % 2}.{i}"))
        allowed = verdict is None or verdict.allowed
        assert allowed == (i % 2 == 0), i  # 10.2.0.x is in the block, 10.2.1.x is not
        assert len(gate._narrowed) <= 5
