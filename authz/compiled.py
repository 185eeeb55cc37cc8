"""AuthorizationPolicies compiled once per policy change into a matcher (pure): the same
verdicts as ``evaluate.evaluate`` (the reference, which reads the policy objects on every
request), for a fraction of the work per request.

``compile_policies(policies).evaluate(request)`` == ``evaluate(policies, request)``
(``tests/unit/authz/test_compiled.py`` checks it over generated policies and requests).

What compiling does once instead of per request (issue 14: the 20 rules of the policy
benchmark cost ~47-112 us per request in the reference, most of it walking objects):

- each field's values become one test ``(fact, hit, want)``: ``hit(facts[fact])`` must be
  ``want`` (False for the not-forms). Values are pre-parsed and pre-normalized
  (``fastmatch``): sets for exact values, prefix/suffix tuples, IP networks as integers;
- a rule is a conjunction of tests; a rule with several ``from`` (or ``to``) entries keeps
  them as one group of alternatives, one of which must hold;
- each rule has its L4 form ready (``Request.l7`` False: ztunnel's fail-closed reading, see
  ``evaluate``): ALLOW and AUDIT rules that read L7 attributes are dropped, DENY rules lose
  their L7 tests;
- which request attributes the tests read, so a request computes only those ``facts``, once
  (the caller's identity, parsed addresses, the host split from its port), not per rule;
- the verdicts that carry no AUDIT names are built once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import BuiltinFunctionType
from typing import Any, TypeVar

from agent.model.authz import Action, AuthorizationPolicy, Condition, Operation, Rule, Source
from authz import fastmatch
from authz.evaluate import Verdict, condition_needs_l7, key_of, rule_needs_l7
from authz.request import Request

_HEADER = re.compile(r"request\.headers\[(.+)\]")  # as evaluate reads a header key

# The request's facts, by position (a tuple: tests index it without a Python call).
PRINCIPAL, NAMESPACE, ACCOUNT, PEER_IP, DESTINATION_IP, PORT = range(6)
HOST, METHOD, PATH, HEADERS, SNI = range(6, 11)
_COMPUTED = (ACCOUNT, PEER_IP, DESTINATION_IP, HOST)  # work only when a test reads them

Test = tuple[int, Callable[[Any], bool], bool]
"""(fact, hit, want): holds when ``hit(facts[fact]) is want``."""


@dataclass(frozen=True, slots=True)
class Conjunction:
    """Every test holds, and in each group one alternative holds."""

    tests: tuple[Test, ...]
    groups: tuple[tuple[Conjunction, ...], ...] = ()


def holds(conjunction: Conjunction, facts: tuple[Any, ...]) -> bool:
    for fact, hit, want in conjunction.tests:
        if hit(facts[fact]) is not want:
            return False
    return all(any(holds(alt, facts) for alt in group) for group in conjunction.groups)


RuleList = tuple[tuple["CompiledPolicy", tuple[Test, ...], tuple[tuple[Conjunction, ...], ...]],
                 ...]
"""The rules of several policies in their order, flat: (policy, tests, groups)."""
ActionRules = tuple[RuleList, RuleList, RuleList]
"""(audits, denies, allows)."""


def _rule_list(policies: Iterable[CompiledPolicy], l7: bool) -> RuleList:
    return tuple((p, rule.tests, rule.groups) for p in policies
                 for rule in (p.on_l7 if l7 else p.on_l4))


def _matching(rules: RuleList, facts: tuple[Any, ...], first: bool) -> list[CompiledPolicy]:
    """The policies one of whose rules match (only the first when ``first``). One call for
    all of them, one flat loop: a call per policy or rule would cost more than its tests."""
    found: list[CompiledPolicy] = []
    for policy, tests, groups in rules:
        for fact, hit, want in tests:
            if hit(facts[fact]) is not want:
                break
        else:
            if (not groups or holds(Conjunction((), groups), facts)) and (
                    not found or found[-1] is not policy):  # a policy's rules are adjacent
                found.append(policy)
                if first:
                    return found
    return found


def _field(fact: int, values: tuple[str, ...], negated: tuple[str, ...],
           build: Callable[[tuple[str, ...]], Callable[[Any], bool]]) -> list[Test]:
    """One field and its not-form, as ``evaluate._field``: an unset one tests nothing."""
    tests: list[Test] = []
    if values:
        tests.append((fact, build(values), True))
    if negated:
        tests.append((fact, build(negated), False))
    return tests


def _source(s: Source) -> list[Test]:
    return [
        *_field(PRINCIPAL, s.principals, s.not_principals, fastmatch.string_test),
        *_field(NAMESPACE, s.namespaces, s.not_namespaces, fastmatch.string_test),
        *_field(ACCOUNT, s.service_accounts, s.not_service_accounts, fastmatch.exact_test),
        *_field(PEER_IP, s.ip_blocks, s.not_ip_blocks, fastmatch.ip_test),
        # No proxy header is trusted (Istio's numTrustedProxies 0): the remote is the peer.
        *_field(PEER_IP, s.remote_ip_blocks, s.not_remote_ip_blocks, fastmatch.ip_test),
    ]


def _operation(o: Operation, l4_only: bool) -> list[Test]:
    tests = _field(PORT, o.ports, o.not_ports, fastmatch.exact_test)
    if not l4_only:
        tests += _field(HOST, o.hosts, o.not_hosts, fastmatch.host_test)
        tests += _field(METHOD, o.methods, o.not_methods, fastmatch.string_test)
        tests += _field(PATH, o.paths, o.not_paths, fastmatch.string_test)
    return tests


_CONDITION_FACTS: dict[str, tuple[int, Callable[[tuple[str, ...]], Callable[[Any], bool]]]] = {
    "source.ip": (PEER_IP, fastmatch.ip_test),
    "remote.ip": (PEER_IP, fastmatch.ip_test),
    "destination.ip": (DESTINATION_IP, fastmatch.ip_test),
    "destination.port": (PORT, fastmatch.exact_test),
    "source.namespace": (NAMESPACE, fastmatch.string_test),
    "source.principal": (PRINCIPAL, fastmatch.string_test),
    "connection.sni": (SNI, fastmatch.string_test),
}


def _condition(c: Condition) -> list[Test]:
    header = _HEADER.fullmatch(c.key)
    if header is not None:
        name = header.group(1).lower()
        return _field(HEADERS, c.values, c.not_values,
                      lambda values: fastmatch.header_test(name, values))
    fact, build = _CONDITION_FACTS.get(c.key, (PORT, lambda _values: fastmatch.never))
    return _field(fact, c.values, c.not_values, build)


def _alternatives(parts: list[list[Test]], tests: list[Test],
                  groups: list[tuple[Conjunction, ...]]) -> None:
    """One ``from`` (or ``to``) entry joins the rule's tests; several become a group, which
    always holds (so is left out) when one of them tests nothing."""
    if len(parts) == 1:
        tests.extend(parts[0])
    elif parts and all(parts):
        groups.append(tuple(Conjunction(tuple(sorted(p, key=_cost))) for p in parts))


_COST = {HOST: 3, HEADERS: 4, PEER_IP: 2, DESTINATION_IP: 2}


def _cost(test: Test) -> int:
    """Cheapest first (the tests are pure, so their order is free): a set lookup or
    ``bool`` (a C call) before a Python test, strings before addresses, hosts, headers."""
    if isinstance(test[1], BuiltinFunctionType) or test[1] is bool:
        return 0
    return _COST.get(test[0], 1)


def compile_rule(rule: Rule, *, l4_only: bool) -> Conjunction:
    tests: list[Test] = []
    groups: list[tuple[Conjunction, ...]] = []
    _alternatives([_source(f.source) for f in rule.from_], tests, groups)
    _alternatives([_operation(t.operation, l4_only) for t in rule.to], tests, groups)
    for c in rule.when:
        if not (l4_only and condition_needs_l7(c)):
            tests += _condition(c)
    return Conjunction(tuple(sorted(tests, key=_cost)), tuple(groups))


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """One policy: its rules for an HTTP request and for an L4-only connection, and the
    verdict it gives when it decides and no AUDIT policy matched."""

    key: str
    on_l7: tuple[Conjunction, ...]
    on_l4: tuple[Conjunction, ...]
    verdict: Verdict


def compile_policy(policy: AuthorizationPolicy) -> CompiledPolicy:
    action = policy.spec.action
    key = key_of(policy)
    rules = policy.spec.rules
    on_l4 = []
    for rule in rules:
        if not rule_needs_l7(rule):
            on_l4.append(compile_rule(rule, l4_only=False))
        elif action is Action.DENY:  # fail closed: assumed to hold on its L4 parts
            on_l4.append(compile_rule(rule, l4_only=True))
        # an ALLOW or AUDIT rule that reads L7 cannot be proven on L4: matches nothing
    return CompiledPolicy(
        key,
        tuple(compile_rule(r, l4_only=False) for r in rules),
        tuple(on_l4),
        Verdict(action is not Action.DENY, (key,)),
    )


_ALLOWED = Verdict(True)


class CompiledPolicies:
    """``evaluate.evaluate`` for one fixed sequence of policies (the order is kept: the
    first matching DENY is named)."""

    def __init__(self, policies: Sequence[AuthorizationPolicy]) -> None:
        self.policies = tuple(policies)
        compiled = {a: [compile_policy(p) for p in self.policies if p.spec.action is a]
                    for a in Action}
        self._audits = tuple(compiled[Action.AUDIT])
        self._denies = tuple(compiled[Action.DENY])
        self._allows = tuple(compiled[Action.ALLOW])
        self._by_allow = Verdict(False, tuple(p.key for p in self._allows), (), by_allow=True)
        # (audits, denies, allows) as flat rule lists, for an L4-only request and for HTTP.
        self._rules: dict[bool, ActionRules] = {l7: (
            _rule_list(self._audits, l7), _rule_list(self._denies, l7),
            _rule_list(self._allows, l7)) for l7 in (False, True)}
        read = {t[0] for p in (*self._audits, *self._denies, *self._allows)
                for rules in (p.on_l7, p.on_l4) for t in _all_tests(rules)}
        self._reads = tuple(fact in read for fact in _COMPUTED)
        self.reads = frozenset(read)
        # The request headers any rule reads (lower-case): a caller builds only these.
        self.header_names = header_names(self.policies)

    def facts(self, request: Request) -> tuple[Any, ...]:
        """The request's attributes as the tests read them, computed once per request."""
        peer = request.peer
        account, peer_ip, destination_ip, host = self._reads
        return (
            peer.principal or "",
            peer.namespace or "",
            f"{peer.namespace}/{peer.service_account}" if account and peer.namespace is not None
            and peer.service_account is not None else "",
            fastmatch.address_fact(peer.ip) if peer_ip else None,
            fastmatch.address_fact(request.destination_ip) if destination_ip else None,
            str(request.port),
            fastmatch.host_fact(request.host) if host else ("", ""),
            request.method,
            request.path,
            request.headers,
            request.sni,
        )

    def evaluate(self, request: Request) -> Verdict:
        return decide(self._rules[request.l7], self.facts(request), self.by_allow)

    @property
    def http_rules(self) -> ActionRules:
        """(audits, denies, allows) for an HTTP request (what ``authz.residual`` narrows)."""
        return self._rules[True]

    @property
    def by_allow(self) -> Verdict | None:
        """The denial when ALLOW policies apply and none matched; None when none apply."""
        return self._by_allow if self._allows else None


R = TypeVar("R")
Matching = Callable[[R, tuple[Any, ...], bool], list[CompiledPolicy]]


def decide(rules: tuple[R, R, R], facts: tuple[Any, ...], by_allow: Verdict | None,
           matching: Matching[R] = _matching) -> Verdict:  # type: ignore[assignment]
    """``evaluate``'s order over (audits, denies, allows): AUDIT names recorded, the first
    matching DENY, then one matching ALLOW where any applies (``by_allow`` otherwise).
    ``matching``: the policies of a rule list that match (``authz.residual`` has its own)."""
    audits, denies, allows = rules
    audited = tuple(p.key for p in matching(audits, facts, False)) if audits else ()
    for p in matching(denies, facts, True):
        return Verdict(False, (p.key,), audited) if audited else p.verdict
    if by_allow is None:
        return Verdict(True, (), audited) if audited else _ALLOWED
    for p in matching(allows, facts, True):
        return Verdict(True, (p.key,), audited) if audited else p.verdict
    if audited:
        return Verdict(False, by_allow.policies, audited, by_allow=True)
    return by_allow


def _all_tests(rules: Iterable[Conjunction]) -> Iterable[Test]:
    for rule in rules:
        yield from rule.tests
        for group in rule.groups:
            yield from _all_tests(group)


def header_names(policies: Iterable[AuthorizationPolicy]) -> frozenset[str]:
    """The request headers (lower-case names) that any rule of ``policies`` reads: a
    request's verdict depends on these header fields and on no others."""
    return frozenset(
        header.group(1).lower() for p in policies for r in p.spec.rules
        for c in r.when if (header := _HEADER.fullmatch(c.key)) is not None)


def compile_policies(policies: Sequence[AuthorizationPolicy]) -> CompiledPolicies:
    """The matcher for the policies that apply to one destination (``applies``)."""
    return CompiledPolicies(policies)
