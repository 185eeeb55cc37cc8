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
from authz.compiled import HEADERS, PATH, CompiledPolicy, Conjunction, RuleList, Test, holds

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
