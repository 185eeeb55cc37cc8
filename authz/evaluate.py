"""AuthorizationPolicy's decision for one request, with Istio's semantics (pure).

From Istio's authorization-policy reference:
- a CUSTOM policy would come first (Tulle refuses CUSTOM);
- if any DENY policy matches the request, it is denied;
- else, if no ALLOW policy applies to the workload, it is allowed;
- else it is allowed only if an ALLOW policy matches;
- AUDIT policies change nothing; those that match are recorded.

A policy matches when one of its rules does; a policy without rules matches nothing (so an
ALLOW policy without rules, ``spec: {}``, denies everything it applies to, and
``rules: [{}]`` allows everything). Within a rule: one ``from`` AND one ``to`` AND every
``when``; within a source or operation, every set field AND'ed, the values of one field
OR'ed, a not-field matching when none of its values do.

Where only L4 is known (``Request.l7`` False: a plain TCP connection), a rule that reads an
L7 attribute fails closed, as Istio's ztunnel does: in an ALLOW policy it matches nothing,
in a DENY policy it matches everything the rest of its rule matches (``l7_attributes``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from agent.model.authz import Action, AuthorizationPolicy, Condition, Operation, Rule, Source
from authz.match import any_string, host_matches, ip_in, string_matches
from authz.request import Request

_HEADER = re.compile(r"request\.headers\[(.+)\]")
L7_KEYS = ("connection.sni",)


@dataclass(frozen=True, slots=True)
class Verdict:
    """``policies``: "namespace/name" of what decided a denial (the DENY policy that
    matched, or every ALLOW policy in force when none matched); of an allowance, the ALLOW
    policy that matched (empty when no ALLOW policy applies). ``audited``: the AUDIT
    policies that matched. ``by_allow``: denied because no ALLOW policy matched."""

    allowed: bool
    policies: tuple[str, ...] = ()
    audited: tuple[str, ...] = ()
    by_allow: bool = False

    @property
    def reason(self) -> str:
        if self.allowed:
            return "allowed" + (f" by {', '.join(self.policies)}" if self.policies else "")
        return f"denied by {', '.join(self.policies)}"


def key_of(policy: AuthorizationPolicy) -> str:
    return f"{policy.metadata.namespace}/{policy.metadata.name}"


def evaluate(policies: Sequence[AuthorizationPolicy], request: Request) -> Verdict:
    """The decision of the policies that apply to the request's destination (in the order
    given: the first matching DENY is named)."""
    audited = tuple(
        key_of(p) for p in policies if p.spec.action is Action.AUDIT and _matches(p, request)
    )
    for policy in policies:
        if policy.spec.action is Action.DENY and _matches(policy, request):
            return Verdict(False, (key_of(policy),), audited)
    allows = [p for p in policies if p.spec.action is Action.ALLOW]
    if not allows:
        return Verdict(True, (), audited)
    for policy in allows:
        if _matches(policy, request):
            return Verdict(True, (key_of(policy),), audited)
    return Verdict(False, tuple(key_of(p) for p in allows), audited, by_allow=True)


def _matches(policy: AuthorizationPolicy, request: Request) -> bool:
    deny = policy.spec.action is Action.DENY
    for rule in policy.spec.rules:
        if not request.l7 and rule_needs_l7(rule):
            # Fail closed: an ALLOW rule cannot be proven, a DENY rule is assumed to hold.
            if deny and _rule_matches(rule, request, l4_only=True):
                return True
            continue
        if _rule_matches(rule, request, l4_only=False):
            return True
    return False


def _rule_matches(rule: Rule, request: Request, *, l4_only: bool) -> bool:
    if rule.from_ and not any(_source(f.source, request) for f in rule.from_):
        return False
    if rule.to and not any(_operation(t.operation, request, l4_only) for t in rule.to):
        return False
    return all(
        _condition(c, request) for c in rule.when if not (l4_only and condition_needs_l7(c))
    )


def _field(values: tuple[str, ...], negated: tuple[str, ...], hit: object) -> bool:
    """One field and its not-form: unset matches; ``hit(values)`` says whether any matched."""
    assert callable(hit)
    if values and not hit(values):
        return False
    return not (negated and hit(negated))


def _source(s: Source, request: Request) -> bool:
    peer = request.peer
    return (
        _field(s.principals, s.not_principals, lambda v: any_string(v, peer.principal))
        and _field(s.namespaces, s.not_namespaces, lambda v: any_string(v, peer.namespace))
        and _field(s.service_accounts, s.not_service_accounts,
                   lambda v: peer.namespace is not None and peer.service_account is not None
                   and f"{peer.namespace}/{peer.service_account}" in v)
        and _field(s.ip_blocks, s.not_ip_blocks, lambda v: ip_in(v, peer.ip))
        # No proxy header is trusted (Istio's numTrustedProxies 0): the remote is the peer.
        and _field(s.remote_ip_blocks, s.not_remote_ip_blocks, lambda v: ip_in(v, peer.ip))
    )


def _operation(o: Operation, request: Request, l4_only: bool) -> bool:
    port = str(request.port)
    if not _field(o.ports, o.not_ports, lambda v: port in v):
        return False
    if l4_only:
        return True
    return (
        _field(o.hosts, o.not_hosts, lambda v: any(host_matches(p, request.host) for p in v))
        and _field(o.methods, o.not_methods, lambda v: any_string(v, request.method))
        and _field(o.paths, o.not_paths, lambda v: any_string(v, request.path))
    )


def _condition(c: Condition, request: Request) -> bool:
    return _field(c.values, c.not_values, lambda v: _condition_hit(c.key, v, request))


def _condition_hit(key: str, values: tuple[str, ...], request: Request) -> bool:
    peer = request.peer
    header = _HEADER.fullmatch(key)
    if header is not None:
        found = request.headers.get(header.group(1).lower(), ())
        return any(string_matches(p, v) for p in values for v in found)
    if key in ("source.ip", "remote.ip"):
        return ip_in(values, peer.ip)
    if key == "destination.ip":
        return ip_in(values, request.destination_ip)
    if key == "destination.port":
        return str(request.port) in values
    if key == "source.namespace":
        return any_string(values, peer.namespace)
    if key == "source.principal":
        return any_string(values, peer.principal)
    if key == "connection.sni":
        return any_string(values, request.sni)
    return False  # the converter refuses other keys; an unknown one never matches


def condition_needs_l7(c: Condition) -> bool:
    return c.key in L7_KEYS or _HEADER.fullmatch(c.key) is not None


def operation_needs_l7(o: Operation) -> bool:
    return bool(o.hosts or o.not_hosts or o.methods or o.not_methods or o.paths or o.not_paths)


def rule_needs_l7(rule: Rule) -> bool:
    return any(operation_needs_l7(t.operation) for t in rule.to) or any(
        condition_needs_l7(c) for c in rule.when
    )


def needs_l7(policy: AuthorizationPolicy) -> bool:
    """Whether the policy reads an L7 attribute (host, method, path, header, SNI): such a
    policy puts the workloads it selects behind the waypoint. Otherwise it is L4-only
    (identity, namespace, ServiceAccount, IP block, port)."""
    return any(rule_needs_l7(rule) for rule in policy.spec.rules)
