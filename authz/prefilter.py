"""A residual's rule lists as the waypoint runs them per request (pure): flat rules, and a
prefilter that answers "no rule of this list can match" with one or two tests.

After ``authz.residual`` has decided the connection's facts, and the request line's method
and host (``Residual.evaluate``), most rules left test one attribute: a path pattern or a
request header. In issue 14's benchmark, 5 DENY rules are left for a GET, each a single
path or header test that the usual request fails, so the loop over them is the whole cost.
Each such rule has a *key*: one of its tests that must hold for it to match, a positive
Istio string match on the path or on one header. The keys of a list are merged into one
test of the path (exact values in a set, prefixes and suffixes as tuples: one C call or
one short function) and one per header name. When none of the merged tests holds, no keyed
rule can match; the rules without a key are then the only ones left to test. When one holds,
the whole list is tested in its order, exactly as without the prefilter, so the first
matching DENY or ALLOW policy named is the same (``tests/unit/authz/test_prefilter.py``
checks it against the reference evaluator over generated policies and requests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from authz import fastmatch
from authz.compiled import (
    HEADERS,
    PATH,
    CompiledPolicy,
    Conjunction,
    RuleList,
    Test,
    decide,
    holds,
)
from authz.evaluate import Verdict

Hit = Callable[[Any], bool]
FlatRule = tuple[CompiledPolicy, int, Hit, bool, int, Hit, bool, Conjunction | None]
"""(policy, fact, hit, want, fact2, hit2, want2, more): the rule's first two tests inline
(most rules left have one or two), the rest of it in ``more`` (None: nothing more). A
missing test is ``ALWAYS`` (the facts' first slot is True)."""
ALWAYS: Test = (0, bool, True)
Staged = tuple[tuple[FlatRule, ...], tuple[FlatRule, ...] | None, Hit | None,
               tuple[tuple[str, Hit], ...]]
"""(rules, unkeyed, path test, header tests): ``unkeyed`` None means no prefilter (too few
keyed rules to pay for it); else the rules without a key, tested alone when the merged path
test and every merged header test fail."""
_ALLOWED = Verdict(True)
MIN_KEYED = 2
"""A prefilter costs a test or two per request: worth it from two keyed rules."""


def flatten(rules: RuleList) -> tuple[FlatRule, ...]:
    out: list[FlatRule] = []
    for policy, tests, groups in rules:
        first, second, *rest = (*tests, ALWAYS, ALWAYS)[:max(2, len(tests))]
        more = Conjunction(tuple(rest), groups) if rest or groups else None
        out.append((policy, *first, *second, more))
    return tuple(out)


def flat_matching(rules: tuple[FlatRule, ...], facts: tuple[Any, ...],
                  first: bool) -> list[CompiledPolicy]:
    """``compiled._matching`` over flat rules: no inner loop, no call for the common
    rule of one or two tests."""
    found: list[CompiledPolicy] = []
    for policy, fact, hit, want, fact2, hit2, want2, more in rules:
        if hit(facts[fact]) is want and hit2(facts[fact2]) is want2 and (
                more is None or holds(more, facts)) and (
                not found or found[-1] is not policy):  # a policy's rules are adjacent
            found.append(policy)
            if first:
                return found
    return found


def _tests(rule: FlatRule) -> Iterable[Test]:
    _, fact, hit, want, fact2, hit2, want2, more = rule
    yield fact, hit, want
    yield fact2, hit2, want2
    if more is not None:
        yield from more.tests  # its groups' tests need not hold: no key there


def _key(rule: FlatRule) -> tuple[str, fastmatch.Patterns] | None:
    """("", patterns) for a path key, (header name, patterns) for a header key; None when
    the rule has no positive path or header string test (it is then always tested)."""
    header_key = None
    for fact, hit, want in _tests(rule):
        if not want:
            continue
        if fact == PATH and (patterns := fastmatch.patterns_of(hit)) is not None:
            return "", patterns  # the path first: one test, no header lookup
        if fact == HEADERS and header_key is None:
            header_key = fastmatch.header_of(hit)
    return header_key


def stage(rules: RuleList) -> Staged:
    flat = flatten(rules)
    keyed: dict[str, list[fastmatch.Patterns]] = {}
    unkeyed: list[FlatRule] = []
    for rule in flat:
        key = _key(rule)
        if key is None:
            unkeyed.append(rule)
        else:
            keyed.setdefault(key[0], []).append(key[1])
    if sum(len(found) for found in keyed.values()) < MIN_KEYED:
        return flat, None, None, ()
    path = keyed.pop("", None)
    path_test = fastmatch.patterns_test(fastmatch.merge_patterns(path)) if path else None
    headers = tuple((name, fastmatch.patterns_test(fastmatch.merge_patterns(found)))
                    for name, found in sorted(keyed.items()))
    return flat, tuple(unkeyed), path_test, headers


def staged_matching(staged: Staged, facts: tuple[Any, ...],
                    first: bool) -> list[CompiledPolicy]:
    """``flat_matching`` of the staged rules: the same policies, in the same order."""
    rules, unkeyed, path_test, header_tests = staged
    if unkeyed is not None and not (path_test is not None and path_test(facts[PATH])) and (
            not header_tests or not _any_header(header_tests, facts[HEADERS])):
        if not unkeyed:
            return []
        rules = unkeyed  # no keyed rule can match
    return flat_matching(rules, facts, first)


def _any_header(tests: tuple[tuple[str, Hit], ...],
                headers: Mapping[str, tuple[str, ...]]) -> bool:
    for name, test in tests:
        for value in headers.get(name, ()):
            if test(value):
                return True
    return False


Simple = tuple[CompiledPolicy, str, Callable[[str], bool], bool]
"""A rule of one Istio string test: (policy, header name or "" for the path, the test of one
value (``fastmatch.patterns_test``: mostly one C call), want)."""
Gate = tuple[str, Callable[[str], bool]]
"""A part of the DENY rules' merged tests: (header name or "" for the path, a test of one
value: ``fastmatch.split_test``'s parts, each one C call)."""


def _simple(rules: tuple[FlatRule, ...]) -> tuple[Simple, ...] | None:
    """The rules as ``Simple`` when each is one path or header string test; else None."""
    out: list[Simple] = []
    for policy, fact, hit, want, fact2, hit2, _, more in rules:
        if (fact2, hit2) != ALWAYS[:2] or more is not None:
            return None
        if fact == PATH and fastmatch.patterns_of(hit) is not None:
            out.append((policy, "", hit, want))
        elif fact == HEADERS and (header := fastmatch.header_of(hit)) is not None:
            out.append((policy, header[0], fastmatch.patterns_test(header[1]), want))
        else:
            return None
    return tuple(out)


def _any(test: Callable[[str], bool], values: tuple[str, ...]) -> bool:
    for value in values:
        if test(value):
            return True
    return False


class Line:
    """One request line's rules (the connection's, its method and host decided): the
    staged lists, and when every DENY and ALLOW rule left is one path or header string test
    and no AUDIT rule is left (issue 14's benchmark: all of them), the same decision in one
    call: no call per rule but its test's, the DENY rules' tests merged into a few C calls
    that most requests fail."""

    __slots__ = ("staged", "by_allow", "_denies", "_gates", "_allows")

    def __init__(self, audits: RuleList, denies: RuleList, allows: RuleList,
                 by_allow: Verdict | None) -> None:
        self.staged = (stage(audits), stage(denies), stage(allows))
        self.by_allow = by_allow
        deny_rules = _simple(self.staged[1][0])
        allow_rules = _simple(self.staged[2][0])
        simple = not audits and deny_rules is not None and allow_rules is not None
        self._denies = deny_rules if simple else None
        self._allows = allow_rules or ()
        # The DENY rules' tests merged per path and header name (only their positive tests:
        # a not-form rule leaves no gate, so every DENY rule is then tested).
        merged: dict[str, list[fastmatch.Patterns]] = {}
        for rule in self.staged[1][0] if simple else ():
            key = _key(rule)
            if key is None:  # a not-form (each rule is its one test: ``_simple``)
                merged.clear()
                break
            merged.setdefault(key[0], []).append(key[1])
        self._gates: tuple[Gate, ...] | None = tuple(
            (name, test) for name, found in sorted(merged.items())
            for test in fastmatch.split_test(fastmatch.merge_patterns(found))
        ) if merged else None

    def decide(self, path: str, headers: Mapping[str, tuple[str, ...]]) -> Verdict:
        """``compiled.decide`` over the staged lists, for the request's path and headers."""
        denies = self._denies
        if denies is None:
            return decide(self.staged, (True, None, None, None, None, None, None, None,
                                        path, headers), self.by_allow, staged_matching)
        gates = self._gates
        if denies and gates is not None:
            for name, test in gates:
                if not name:
                    if test(path):
                        break
                elif name in headers and _any(test, headers[name]):
                    break
            else:
                denies = ()  # no DENY rule's test can hold
        for policy, name, test, want in denies:
            if (test(path) if not name else name in headers and _any(
                    test, headers[name])) is want:
                return policy.verdict
        if self.by_allow is None:
            return _ALLOWED
        for policy, name, test, want in self._allows:
            if (test(path) if not name else name in headers and _any(
                    test, headers[name])) is want:
                return policy.verdict
        return self.by_allow

