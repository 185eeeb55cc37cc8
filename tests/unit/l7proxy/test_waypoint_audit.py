"""AUDIT AuthorizationPolicies in the waypoint (Istio: AUDIT only records): a request an
AUDIT policy matches is served, and its flow's verdict is Hubble's AUDIT, naming the policy
in ``ingress_denied_by`` (where Cilium's parser names the policies of an AUDIT verdict).
``tulle observe --verdict AUDIT`` finds it and the printers show it; the record survives
the waypoint-to-agent encoding; a request both audited and denied is DROPPED."""

from __future__ import annotations

import json

import pytest

from agent.flows.codec import flow_to_json
from agent.flows.filters import FlowFilter, compile_filter
from agent.flows.flow import Verdict
from agent.flows.l7flow import L7FlowBuilder
from agent.flows.l7record import encode_batch, read_batch
from agent.flows.policyjson import policies_to_json
from agent.flows.printer import format_compact, format_dict
from authz import steered_services
from tests.unit.authz.helpers import policy, rule
from tests.unit.l7proxy.test_waypoint_authz import ANON, EVIL, FRONT, _run

AUDIT_ADMIN = policy("audit-admin", {"selector": {"matchLabels": {"app": "web"}},
                                     "action": "AUDIT",
                                     "rules": [rule(operation={"paths": ["/admin/*"]})]},
                     "default")
DENY_EVIL = policy("no-evil", {"action": "DENY",
                               "rules": [rule(source={"namespaces": ["evil"]})]}, "default")


def test_an_audited_request_is_served_and_its_flow_says_audit() -> None:
    answers, flows, echoed = _run([(FRONT, "GET", "/admin/users"), (FRONT, "GET", "/x")],
                                  [AUDIT_ADMIN])
    assert [status for status, _ in answers] == [200, 200] and len(echoed) == 2
    audited, plain = flows
    assert audited.verdict == Verdict.AUDIT and audited.drop_reason_desc == ""
    assert [(p.namespace, p.name, p.kind) for p in audited.ingress_denied_by] == [
        ("default", "audit-admin", "AuthorizationPolicy")]
    assert plain.verdict == Verdict.FORWARDED and plain.ingress_denied_by == ()
    # observe --verdict AUDIT picks it, --verdict FORWARDED does not
    assert compile_filter(FlowFilter(verdict=("AUDIT",)))(audited)
    assert not compile_filter(FlowFilter(verdict=("AUDIT",)))(plain)
    assert not compile_filter(FlowFilter(verdict=("FORWARDED",)))(audited)
    # the printers: compact (with --print-policy-names) and JSON in Hubble's shape
    line = format_compact(audited, policy_names=True)
    assert " AUDIT BY audit-admin (AuthorizationPolicy) " in line, line
    assert "    VERDICT: AUDIT BY audit-admin" in format_dict(audited, policy_names=True)
    body = json.loads(json.dumps(flow_to_json(audited)))
    assert body["verdict"] == "AUDIT"
    assert body["ingress_denied_by"] == [{"name": "audit-admin", "namespace": "default",
                                          "kind": "AuthorizationPolicy"}]


def test_an_audited_and_denied_request_is_dropped_naming_the_deny() -> None:
    answers, [flow], echoed = _run([(EVIL, "GET", "/admin/users")], [AUDIT_ADMIN, DENY_EVIL])
    assert answers == [(403, b"RBAC: access denied")] and echoed == []
    assert flow.verdict == Verdict.DROPPED and flow.drop_reason_desc == "POLICY_DENY"
    assert [p.name for p in flow.ingress_denied_by] == ["no-evil"]


def test_a_caller_without_identity_is_audited_too() -> None:
    """An AUDIT rule with no source matches every caller, identity or not."""
    [(status, _)], [flow], _ = _run([(ANON, "GET", "/admin/x")], [AUDIT_ADMIN])
    assert status == 200 and flow.verdict == Verdict.AUDIT


def record(names: object, drop: str = "") -> tuple[object, ...]:
    return (1, 2, 200, "GET", "http://web/admin", "HTTP/1.1", "", "", "", drop,
            ("10.0.0.1", 4000), ("10.0.0.2", 80), "", None, names, None)


def test_the_audited_names_survive_the_waypoint_to_agent_encoding() -> None:
    line = encode_batch([record(((), ("default/np",), ("default/audit-admin",)))])  # type: ignore[list-item]
    [decoded] = list(read_batch(json.loads(line)))
    assert not isinstance(decoded, ValueError)
    flow = L7FlowBuilder("n1").flow(decoded)
    assert flow.verdict == Verdict.AUDIT
    assert [p.name for p in flow.ingress_allowed_by] == ["np"]  # NetworkPolicy still named
    assert policies_to_json(flow)["ingress_denied_by"][0]["name"] == "audit-admin"
    # An empty audited list is an ordinary forwarded flow; a malformed one is refused.
    [plain] = list(read_batch(json.loads(encode_batch([record(((), (), ()))]))))  # type: ignore[list-item]
    assert not isinstance(plain, ValueError)
    assert L7FlowBuilder().flow(plain).verdict == Verdict.FORWARDED
    for bad in ([[], [], [1]], [[], [], [], []]):
        [error] = list(read_batch(json.loads(encode_batch([record(bad)]))))  # type: ignore[list-item]
        assert isinstance(error, ValueError) and "policy names" in str(error)


def test_an_audit_policy_steers_its_services_to_the_waypoint() -> None:
    """Only the waypoint writes the AUDIT flow, so an L4-only AUDIT policy steers too."""
    from agent.model.convert import from_dict

    svc = from_dict({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": "web", "namespace": "default"},
                     "spec": {"clusterIP": "10.96.0.10", "selector": {"app": "web"},
                              "ports": [{"port": 80}]}})
    l4_audit = policy("audit-front", {"action": "AUDIT",
                                      "rules": [rule(source={"namespaces": ["front"]})]},
                      "default")
    assert steered_services([l4_audit], [svc]) == {("default", "web")}  # type: ignore[list-item]


@pytest.mark.parametrize("verdict", ["AUDIT", "audit"])
def test_observe_takes_the_audit_verdict(verdict: str) -> None:
    assert compile_filter(FlowFilter(verdict=(verdict,)))  # no FilterError
