"""GRPCRoute: rule compilation, matching, precedence and the lookup index (pure).

Spec (GRPCRouteRule.matches, GRPCMethodMatch, GRPCHeaderMatch): a gRPC request's path is
``/<service>/<method>`` (gRPC over HTTP/2, "Path"); a method match compares the service and
the method, each exactly (case-sensitive) or by regular expression (here RE2, whole
value), an unset one matching anything; header matches compare as HTTPRoute's (names
case-insensitive, the first of equivalent names only). A rule with no matches matches
every gRPC request. Across the GRPCRoutes of a listener (or Service port), precedence goes
to the match with the most characters in a matching non-wildcard hostname, then in a
matching hostname, then in the service, then in the method, then the most header matches;
then the oldest route, then "{namespace}/{name}", then rule and match order. Tulle counts
a regular expression's characters as written and, at equal counts, ranks Exact first.
GRPCRoutes and HTTPRoutes are never merged: a listener keeps one index of each
(``tables.py``), and gRPC requests (content-type application/grpc) look here first.

Rules compile as HTTPRoute's do (``rules.py``: filters, weighted backends, mirrors), with
no timeouts (GRPCRoute has none) and, as GRPCRoute has no retry stanza, gRPC's transparent
retries (gRFC A6): a try that never reached a backend (connection refused, HTTP/2
REFUSED_STREAM) is tried again, up to ``TRANSPARENT_RETRIES`` times; a response or a reset
after the request went out never is.
"""

from __future__ import annotations

from collections.abc import Iterator

from agent.model.grpcroute import GRPCMatchType, GRPCRoute, GRPCRouteMatch, GRPCRouteRule
from agent.model.httproute import StringMatchType
from agent.model.regex import LinearPattern, compile_linear
from gatewayapi.backends import Grants, ServiceIndex, WeightedChoice
from gatewayapi.headers import Headers
from gatewayapi.hostnames import HostKey, is_wildcard, wildcard_suffixes
from gatewayapi.match import StringTest, _string_test
from gatewayapi.precedence import RouteOrder
from gatewayapi.retry import RetryPolicy
from gatewayapi.rules import (
    NO_FAULTS,
    CompiledRule,
    Faults,
    RuleReport,
    first_refused,
    prepare_rule,
    session_policy,
)
from gatewayapi.types import NO_TIMEOUTS

GRPC_CONTENT_TYPE = "application/grpc"
TRANSPARENT_RETRIES = 2
TRANSPARENT = RetryPolicy(attempts=TRANSPARENT_RETRIES, codes=frozenset())
"""No status is retried; ``RetryPolicy`` always retries failures before the request was
sent, and a backend timeout only where a rule sets one (GRPCRoute cannot)."""


def is_grpc(headers: Headers) -> bool:
    """Whether a request is gRPC: content-type application/grpc, optionally followed by
    "+<format>" or parameters (gRPC over HTTP/2, "Content-Type")."""
    value = headers.get("content-type")
    if value is None:
        return False
    value = value.strip().lower()
    return value == GRPC_CONTENT_TYPE or value.startswith(
        (GRPC_CONTENT_TYPE + "+", GRPC_CONTENT_TYPE + ";")
    )


def split_method(path: str) -> tuple[str, str] | None:
    """(service, method) of a gRPC request path ``/<service>/<method>``, or None."""
    if not path.startswith("/"):
        return None
    service, slash, method = path[1:].partition("/")
    if not slash or not service or not method or "/" in method:
        return None
    return service, method


# --- rules -----------------------------------------------------------------------------


def _refused_regex(matches: tuple[GRPCRouteMatch, ...]) -> str:
    """Why the first regular expression RE2 refuses is refused ("" if none); admission
    refuses these already, routes built in code get here unchecked."""
    regex = GRPCMatchType.REGULAR_EXPRESSION
    for match in matches:
        patterns: list[str] = []
        if match.method is not None and match.method.type is regex:
            patterns += [p for p in (match.method.service, match.method.method) if p]
        patterns += [h.value for h in match.headers if h.type is regex]
        if refused := first_refused(patterns):
            return refused
    return ""


def compile_grpc_rule(
    route: GRPCRoute,
    index: int,
    rule: GRPCRouteRule,
    services: ServiceIndex,
    grants: Grants,
    faults: Faults = NO_FAULTS,
) -> RuleReport:
    report, ref_, steps, backends = prepare_rule(
        route, index, rule.name, rule.filters, rule.backend_refs, _refused_regex(rule.matches),
        services, grants, faults,
    )
    if report.dropped:
        return report
    report.rule = CompiledRule(
        ref=ref_,
        matches=(),
        filters=steps,
        backends=tuple(backends),
        choice=WeightedChoice([b.weight for b in backends]),
        timeouts=NO_TIMEOUTS,
        retry=TRANSPARENT,
        prefix=None,
        session=session_policy(rule.session_persistence, ref_),
    )
    return report


def compile_grpc_route_rules(
    route: GRPCRoute, services: ServiceIndex, grants: Grants, faults: Faults = NO_FAULTS
) -> list[RuleReport]:
    return [
        compile_grpc_rule(route, i, rule, services, grants, faults)
        for i, rule in enumerate(route.spec.rules)
    ]


def rule_matches(rule: GRPCRouteRule) -> tuple[GRPCRouteMatch, ...]:
    """The rule's matches; none means one match-everything match."""
    return rule.matches or (GRPCRouteMatch(),)


# --- matching --------------------------------------------------------------------------

_Part = tuple[str | None, LinearPattern | None]
"""(exact value or None, regex or None); both None: anything."""


def _part(kind: GRPCMatchType, value: str | None) -> _Part:
    if not value:
        return (None, None)
    if kind is GRPCMatchType.REGULAR_EXPRESSION:
        return (None, compile_linear(value))
    return (value, None)


def _part_accepts(part: _Part, text: str) -> bool:
    exact, regex = part
    if exact is not None:
        return text == exact
    return regex is None or regex.fullmatch(text)


class GrpcEntry:
    """One (rule, match) pair of a GRPCRoute, compiled, with its precedence key."""

    __slots__ = ("rule", "match_index", "service", "method", "headers", "key")

    def __init__(
        self,
        match: GRPCRouteMatch,
        rule: CompiledRule,
        match_index: int,
        order: RouteOrder,
        host_key: HostKey = (0, 0),
    ) -> None:
        self.rule = rule
        self.match_index = match_index
        method = match.method
        kind = method.type if method is not None else GRPCMatchType.EXACT
        service_text = (method.service or "") if method is not None else ""
        method_text = (method.method or "") if method is not None else ""
        self.service = _part(kind, service_text)
        self.method = _part(kind, method_text)
        seen: set[str] = set()
        headers: list[StringTest] = []
        for h in match.headers:  # of equivalent names only the first counts
            if h.name.lower() not in seen:
                seen.add(h.name.lower())
                headers.append(_string_test(h.name.lower(), StringMatchType(h.type.value), h.value))
        self.headers = tuple(headers)
        regex = kind is GRPCMatchType.REGULAR_EXPRESSION
        self.key = (
            (-host_key[0], -host_key[1]),
            -len(service_text),
            regex and bool(service_text),
            -len(method_text),
            regex and bool(method_text),
            -len(self.headers),
            order,
            rule.ref.rule_index,
            match_index,
        )

    def accepts(self, service: str, method: str, headers: Headers) -> bool:
        if not _part_accepts(self.service, service) or not _part_accepts(self.method, method):
            return False
        for name, exact, regex in self.headers:
            value = headers.combined(name)
            if value is None:
                return False
            if exact is not None:
                if value != exact:
                    return False
            elif regex is not None and not regex.fullmatch(value):
                return False
        return True

    def __repr__(self) -> str:
        return f"GrpcEntry({self.rule.ref}, match={self.match_index})"


class GrpcIndex:
    """The GRPCRoute entries of one listener (or Service port): a list per hostname
    pattern (exact hosts, wildcard suffixes, the catch-all), each in precedence order."""

    __slots__ = ("exact", "wild", "any")

    def __init__(
        self,
        exact: dict[str, list[GrpcEntry]],
        wild: dict[str, list[GrpcEntry]],
        any_: list[GrpcEntry],
    ) -> None:
        self.exact = exact
        self.wild = wild
        self.any = any_

    def _buckets(self, host: str) -> Iterator[list[GrpcEntry]]:
        bucket = self.exact.get(host)
        if bucket:
            yield bucket
        for suffix in wildcard_suffixes(host) if self.wild else ():
            bucket = self.wild.get(suffix)
            if bucket:
                yield bucket
        if self.any:
            yield self.any

    def find(self, host: str, path: str, headers: Headers) -> GrpcEntry | None:
        """The entry that answers a request to ``host`` for ``path``; None when the path
        is not ``/<service>/<method>`` or nothing matches."""
        parts = split_method(path)
        if parts is None:
            return None
        service, method = parts
        for bucket in self._buckets(host):
            for entry in bucket:
                if entry.accepts(service, method, headers):
                    return entry
        return None


class GrpcIndexBuilder:
    def __init__(self) -> None:
        self._entries: dict[str | None, list[GrpcEntry]] = {}

    def add(
        self,
        pattern: str | None,
        host_key: HostKey,
        match: GRPCRouteMatch,
        rule: CompiledRule,
        match_index: int,
        order: RouteOrder,
    ) -> None:
        entry = GrpcEntry(match, rule, match_index, order, host_key)
        self._entries.setdefault(pattern, []).append(entry)

    def build(self) -> GrpcIndex:
        exact: dict[str, list[GrpcEntry]] = {}
        wild: dict[str, list[GrpcEntry]] = {}
        any_: list[GrpcEntry] = []
        for pattern, entries in self._entries.items():
            entries.sort(key=lambda e: e.key)
            if pattern is None:
                any_ = entries
            elif is_wildcard(pattern):
                wild[pattern[2:]] = entries
            else:
                exact[pattern] = entries
        return GrpcIndex(exact, wild, any_)
