"""The compiled policies narrowed to one connection (pure): what is left to decide per HTTP
request once the connection's facts are known.

A waypoint connection has one caller (its identity follows from the client address), and a
request's destination endpoint, port and SNI repeat from request to request. Every test on
those facts (principals, namespaces, ServiceAccounts, ipBlocks, ports, ``source.*``,
``destination.*``, ``connection.sni``) is decided once here: a rule with a failing one is
dropped, a passing one is left out. What remains reads only the request's own method, host,
path and headers. In issue 14's benchmark, 20 rules become 10 rules of one
or two tests each.

``narrow(compiled, connection).evaluate(method, authority, path, headers)`` ==
``compiled.evaluate(Request(...))`` == ``evaluate.evaluate(policies, Request(...))`` for an
HTTP request (``tests/unit/authz/test_residual.py`` checks it over generated policies,
connections and requests). A residual is a value computed from the policies: the caller
keeps it only as long as those policies (``AuthzGate.swap`` drops them all).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from authz import fastmatch, prefilter
from authz.compiled import (
    ACCOUNT,
    DESTINATION_IP,
    HEADERS,
    HOST,
    METHOD,
    NAMESPACE,
    PATH,
    PEER_IP,
    PORT,
    PRINCIPAL,
    SNI,
    CompiledPolicies,
    Conjunction,
    RuleList,
    Test,
    decide,
)
from authz.evaluate import Verdict
from authz.request import Peer, Request

_PER_REQUEST = frozenset({HOST, METHOD, PATH, HEADERS})
_NO_HOST = ("", "")
_NO_HEADERS: Mapping[str, tuple[str, ...]] = {}
Groups = tuple[tuple[Conjunction, ...], ...]


@dataclass(frozen=True, slots=True)
class Connection:
    """What a request shares with the others of its connection to one endpoint."""

    peer: Peer
    destination_ip: str
    port: int
    sni: str = ""


def _narrow_tests(tests: tuple[Test, ...], facts: tuple[Any, ...],
                  keep: frozenset[int]) -> tuple[Test, ...] | None:
    """The tests on ``keep`` facts left, or None when a test of another fact fails."""
    left: list[Test] = []
    for test in tests:
        fact, hit, want = test
        if fact in keep:
            left.append(test)
        elif hit(facts[fact]) is not want:
            return None
    return tuple(left)


def _narrow_groups(groups: Groups, facts: tuple[Any, ...], keep: frozenset[int]) -> Groups | None:
    """Each group of alternatives narrowed: left out when one alternative holds whole,
    None (the rule fails) when none can hold."""
    left: list[tuple[Conjunction, ...]] = []
    for group in groups:
        alternatives: list[Conjunction] = []
        for alternative in group:
            narrowed = _narrow(alternative, facts, keep)
            if narrowed is None:
                continue
            if not narrowed.tests and not narrowed.groups:
                break  # this alternative holds for every request: so does the group
            alternatives.append(narrowed)
        else:
            if not alternatives:
                return None
            left.append(tuple(alternatives))
    return tuple(left)


def _narrow(conjunction: Conjunction, facts: tuple[Any, ...],
            keep: frozenset[int] = _PER_REQUEST) -> Conjunction | None:
    tests = _narrow_tests(conjunction.tests, facts, keep)
    if tests is None:
        return None
    groups = _narrow_groups(conjunction.groups, facts, keep)
    return None if groups is None else Conjunction(tests, groups)


def _narrow_rules(rules: RuleList, facts: tuple[Any, ...],
                  keep: frozenset[int] = _PER_REQUEST) -> RuleList:
    left = []
    for policy, tests, groups in rules:
        narrowed = _narrow(Conjunction(tests, groups), facts, keep)
        if narrowed is not None:
            left.append((policy, narrowed.tests, narrowed.groups))
    return tuple(left)


_CONNECTION_FACTS = (PRINCIPAL, NAMESPACE, ACCOUNT, PEER_IP, DESTINATION_IP, PORT, SNI)


def connection_facts(compiled: CompiledPolicies, connection: Connection) -> tuple[Any, ...]:
    """The connection's facts the policies read (hashable): connections that agree on them
    narrow to the same residual (one per caller identity, say, when no rule reads
    addresses), so a caller may keep one residual for all of them."""
    facts = compiled.facts(Request(connection.peer, connection.destination_ip,
                                   connection.port, sni=connection.sni))
    reads = compiled.reads
    return tuple(facts[i] if i in reads else None for i in _CONNECTION_FACTS)


LINES_KEPT = 64
"""Request lines (method, authority) a residual keeps its rules narrowed for (a service
sees a few methods times a few authorities); past that, others are judged by the rules
narrowed to the connection only, as fast as before the lines: a client varying its Host
header cannot make requests cost more, nor the memory grow past 64 lines per residual
(~0.6 KB each with issue 14's 20 rules, measured with tracemalloc)."""
_LINE_FACTS = frozenset({PATH, HEADERS})


class Residual:
    """The per-request part of one connection's policies."""

    __slots__ = ("policies", "header_names", "_narrowed", "_rules", "_by_allow",
                 "_reads_host", "_lines")

    def __init__(self, compiled: CompiledPolicies, connection: Connection) -> None:
        self.policies = compiled.policies
        facts = compiled.facts(Request(connection.peer, connection.destination_ip,
                                       connection.port, sni=connection.sni))
        audits, denies, allows = compiled.http_rules
        self._narrowed = (_narrow_rules(audits, facts), _narrow_rules(denies, facts),
                          _narrow_rules(allows, facts))
        self._rules = (prefilter.flatten(self._narrowed[0]),
                       prefilter.flatten(self._narrowed[1]),
                       prefilter.flatten(self._narrowed[2]))
        self._by_allow = compiled.by_allow
        read = {fact for rules in self._rules for _, fact, _, _, fact2, _, _, more in rules
                for fact in (fact, fact2, *(t[0] for t in _all_tests(more)))}
        self._reads_host = HOST in read
        self.header_names = compiled.header_names if HEADERS in read else frozenset()
        """The lower-case names of the headers a rule still reads: ``evaluate`` needs
        only those (``pick_headers``)."""
        self._lines: dict[tuple[str, str], prefilter.Line] = {}

    def evaluate(self, method: str, authority: str, path: str,
                 headers: Mapping[str, tuple[str, ...]] = _NO_HEADERS) -> Verdict:
        """The verdict for one HTTP request on this connection: ``path`` as normalized
        for routing (no query), ``headers`` by lower-case name (``pick_headers``)."""
        line = self._lines.get((method, authority))
        if line is None and len(self._lines) < LINES_KEPT:
            line = self._lines[method, authority] = self._line(method, authority)
        if line is not None:  # method and host decided: the path and headers are left
            return line.decide(path, headers)
        host = fastmatch.host_fact(authority) if self._reads_host else _NO_HOST
        # The compiled tests index the facts by position; the connection's are decided.
        facts = (True, None, None, None, None, None, host, method, path, headers)
        return decide(self._rules, facts, self._by_allow, prefilter.flat_matching)

    def _line(self, method: str, authority: str) -> prefilter.Line:
        """The rules narrowed further to one request line (its method and host decided,
        as the connection's facts were), staged (``authz.prefilter``)."""
        host = fastmatch.host_fact(authority) if self._reads_host else _NO_HOST
        facts = (True, None, None, None, None, None, host, method, None, None)
        audits, denies, allows = (_narrow_rules(rules, facts, _LINE_FACTS)
                                  for rules in self._narrowed)
        return prefilter.Line(audits, denies, allows, self._by_allow)


def _all_tests(more: Conjunction | None) -> list[Test]:
    if more is None:
        return []
    out = list(more.tests)
    for group in more.groups:
        for alternative in group:
            out += _all_tests(alternative)
    return out


def narrow(compiled: CompiledPolicies, connection: Connection) -> Residual:
    return Residual(compiled, connection)


def pick_headers(raw: Sequence[tuple[bytes, bytes]],
                 names: frozenset[str]) -> dict[str, tuple[str, ...]]:
    """``Request.headers_of`` of the raw fields, keeping only ``names`` (lower-case): the
    other headers are not decoded."""
    out: dict[str, tuple[str, ...]] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        if key in names:
            out[key] = (*out.get(key, ()), value.decode("latin-1"))
    return out


def header_fields(raw: Sequence[tuple[bytes, bytes]],
                  names: frozenset[str]) -> tuple[tuple[bytes, bytes], ...]:
    """The raw fields whose lower-case name is in ``names``, in order (hashable): requests
    with the same fields get the same ``pick_headers`` for ``names`` and for any subset of
    it, so a verdict may be kept per them."""
    return header_key(names)(raw)


RawFields = Sequence[tuple[bytes, bytes]]


def header_key(names: frozenset[str]) -> Callable[[RawFields], tuple[tuple[bytes, bytes], ...]]:
    """``header_fields`` for fixed ``names``, made once (per policy change) and called per
    request."""
    if not names:
        return lambda raw: ()
    if all(name.isascii() for name in names):
        # Decoded as latin-1, a byte lower-cases to ASCII only if it is ASCII: for ASCII
        # names, bytes.lower() (ASCII only) picks the same fields with no decoding.
        ascii_names = frozenset(name.encode("ascii") for name in names)
        return lambda raw: tuple([f for f in raw if f[0].lower() in ascii_names])
    return lambda raw: tuple([f for f in raw if f[0].decode("latin-1").lower() in names])
