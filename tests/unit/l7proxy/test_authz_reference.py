"""``AuthzGate.check`` against the reference evaluator (``authz/evaluate.py``), endpoint by
endpoint: the gate's own shortcuts (residuals per connection, the verdict memo, headers
picked from the read fields only) never change a verdict. Attackers' requests included:
header names in other cases and non-ASCII bytes, unread headers around read ones, path
spellings that normalize to a denied path, a caller with no identity."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import l7proxy.authz
from agent.model.authz import AuthorizationPolicy
from authz import Destination, Peer, Request, applicable, evaluate, key_of
from gatewayapi import GatewayParent, ServiceParent
from gatewayapi.paths import PathRefused, normalize_path
from l7proxy.authz import AuthzGate, Call
from tests.unit.authz.helpers import policy, rule
from tests.unit.authz.test_compiled import policies
from tests.unit.l7proxy.test_authz_memo import CALLS, PODS

HEADERS = st.lists(st.tuples(
    st.sampled_from([b"x-a", b"X-A", b"x-B", b"X-\xc1", b"x-\xe1", b"host", b"y", b"x-ab"]),
    st.sampled_from([b"v1", b"V1", b"w1", b"", b"\xff"])), max_size=6)

HEADER_RULES = st.lists(st.builds(
    lambda key, values, paths: rule(when=[{"key": f"request.headers[{key}]", "values": values}],
                                    **({"operation": {"paths": paths}} if paths else {})),
    st.sampled_from(["x-a", "X-B", "x-ab", "Host"]),
    st.lists(st.sampled_from(["v1", "V1", "*1", "*", "w*"]), min_size=1, max_size=2),
    st.sampled_from([[], ["/admin"], ["*"]])), min_size=1, max_size=2)
HEADER_POLICIES = st.lists(st.builds(
    lambda i, action, rules: policy(f"h{i}", {"action": action, "rules": rules}),
    st.integers(0, 3), st.sampled_from(["ALLOW", "DENY", "AUDIT"]), HEADER_RULES),
    min_size=1, max_size=3, unique_by=lambda p: p.metadata.name)
"""Policies that read only headers (and a path): where picking the read fields matters."""


def _reference(found: list[AuthorizationPolicy], call: Call) -> tuple[bool, frozenset[str]]:
    """Allowed when every endpoint's applicable policies allow the request (the gate's
    contract: any endpoint may be picked); else the first denying endpoint's policies."""
    try:
        path = normalize_path(call.target.partition("?")[0])
    except PathRefused:
        return False, frozenset(key_of(p) for p in found)
    pods = {p.status.pod_ip: p for p in PODS}
    caller = pods.get(call.client[0])
    peer = (Peer.of_pod(call.client[0], "cluster.local", caller.metadata.namespace,
                        caller.spec.service_account) if caller else Peer(call.client[0]))
    parent = call.parent
    service = (parent.namespace, parent.name) if isinstance(parent, ServiceParent) else None
    gateway = (parent.namespace, parent.name) if isinstance(parent, GatewayParent) else None
    headers = Request.headers_of([(n.decode("latin-1"), v.decode("latin-1"))
                                  for n, v in call.headers])
    for ip, port in call.endpoints or [("", parent.port if parent is not None else 0)]:
        pod = pods.get(ip)
        where = Destination(pod=(pod.metadata.namespace, dict(pod.metadata.labels))
                            if pod else None, service=service, gateway=gateway)
        chosen = sorted(applicable(found, where), key=key_of)
        if not chosen:
            continue
        verdict = evaluate(chosen, Request(peer, ip, port, call.authority, call.method, path,
                                           headers, call.sni))
        if not verdict.allowed:
            return False, frozenset(verdict.policies)
    return True, frozenset()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(policies(), HEADER_POLICIES), st.lists(st.tuples(CALLS, HEADERS), min_size=1, max_size=6),
       st.lists(st.integers(0, 5), max_size=12))
def test_the_gate_decides_as_the_reference_evaluator(
        found: list[AuthorizationPolicy], drawn: list[tuple[Call, list[tuple[bytes, bytes]]]],
        repeats: list[int]) -> None:
    """Through the memo's fills, clears and bypasses too (a memo of 2, bypassed for 3)."""
    gate = AuthzGate("cluster.local")
    gate.swap(found, PODS)
    calls = [call._replace(headers=headers) for call, headers in drawn]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(l7proxy.authz, "VERDICTS_KEPT", 2)
        patch.setattr(l7proxy.authz, "VERDICTS_BYPASSED", 3)
        for call in calls + [calls[i % len(calls)] for i in repeats]:
            got = gate.check(call)
            allowed, denying = _reference(found, call)
            assert (got is None or got.allowed) is allowed, call
            if not allowed:
                assert got is not None and frozenset(got.policies) == denying, call
