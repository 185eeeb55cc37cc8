"""Matching precedence and the lookup index built from it.

Spec (HTTPRouteRule.matches, HTTPRouteSpec.hostnames, Listener.allowedRoutes): across the
routes of one listener, precedence goes to the match with

1. the most specific hostname (exact, then the longest wildcard, then none),
2. an Exact path, then the PathPrefix with the most characters,
3. a method, then the most header matches, then the most query parameter matches,
4. then the oldest route (creationTimestamp), then "{namespace}/{name}" alphabetically,
5. and within a route the first rule, in list order (then the first match).

RegularExpression paths are implementation-specific; Tulle ranks them after Exact and
before every PathPrefix, longer patterns first.

The index follows the same order so a lookup touches only plausible entries: a bucket per
hostname pattern (dict for exact hosts, dict of wildcard suffixes walked longest first,
then the catch-all), inside it a group per route-hostname specificity, and inside that a
dict of exact paths, the regex list, and a dict of prefix keys walked from the longest
prefix of the request path down to "/". Each list is already sorted by the tiebreakers.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from agent.model.httproute import HTTPRouteMatch, PathMatchType
from gatewayapi.headers import Headers
from gatewayapi.hostnames import HostKey, is_wildcard, wildcard_suffixes
from gatewayapi.match import CompiledMatch, _LazyQuery, prefix_candidates, prefix_key

if TYPE_CHECKING:
    from gatewayapi.rules import CompiledRule

RouteOrder = tuple[bool, str, str]
"""(no timestamp, ISO creation time, "namespace/name"): older first, then alphabetical."""


def route_order(created: datetime | None, namespace: str, name: str) -> RouteOrder:
    stamp = created.isoformat() if created is not None else ""
    return (created is None, stamp, f"{namespace}/{name}")


class Entry:
    """One (rule, match) pair placed in an index."""

    __slots__ = ("match", "rule", "match_index", "key")

    def __init__(
        self,
        match: HTTPRouteMatch,
        rule: CompiledRule,
        match_index: int,
        order: RouteOrder,
    ) -> None:
        self.match = CompiledMatch(match)
        self.rule = rule
        self.match_index = match_index
        compiled = self.match
        self.key = (
            compiled.method is None,
            -len(compiled.headers),
            -len(compiled.query),
            order,
            rule.ref.rule_index,
            match_index,
        )

    def __repr__(self) -> str:
        return f"Entry({self.rule.ref}, match={self.match_index})"


class PathIndex:
    """The entries of one hostname group, indexed by path."""

    __slots__ = ("exact", "regex", "prefix")

    def __init__(self) -> None:
        self.exact: dict[str, list[Entry]] = {}
        self.regex: list[tuple[int, Entry]] = []
        self.prefix: dict[str, list[Entry]] = {}

    def add(self, path_type: PathMatchType, value: str, entry: Entry) -> None:
        if path_type is PathMatchType.EXACT:
            self.exact.setdefault(value, []).append(entry)
        elif path_type is PathMatchType.PATH_PREFIX:
            self.prefix.setdefault(prefix_key(value), []).append(entry)
        else:
            self.regex.append((len(value), entry))

    def seal(self) -> PathIndex:
        for group in (*self.exact.values(), *self.prefix.values()):
            group.sort(key=lambda e: e.key)
        self.regex.sort(key=lambda item: (-item[0], item[1].key))
        return self

    def find(self, path: str, method: str, headers: Headers, query: _LazyQuery) -> Entry | None:
        group = self.exact.get(path) if self.exact else None
        if group:
            for entry in group:
                if entry.match.accepts(method, headers, query):
                    return entry
        for _, entry in self.regex:
            regex = entry.match.path_regex
            if regex is not None and regex.fullmatch(path):
                if entry.match.accepts(method, headers, query):
                    return entry
        prefix = self.prefix
        if prefix:
            for key in prefix_candidates(path):
                group = prefix.get(key)
                if group:
                    for entry in group:
                        if entry.match.accepts(method, headers, query):
                            return entry
        return None

    def entries(self) -> Iterator[Entry]:
        for group in self.exact.values():
            yield from group
        for _, entry in self.regex:
            yield entry
        for group in self.prefix.values():
            yield from group


Bucket = tuple[PathIndex, ...]
"""The groups of one hostname pattern, most specific route hostname first."""


class HostIndex:
    """Entries of one listener (or one Service port), indexed by hostname then path."""

    __slots__ = ("exact", "wild", "any", "size")

    def __init__(self, exact: dict[str, Bucket], wild: dict[str, Bucket], any_: Bucket) -> None:
        self.exact = exact
        self.wild = wild
        self.any = any_
        self.size = sum(
            1
            for bucket in (*exact.values(), *wild.values(), any_)
            for group in bucket
            for _ in group.entries()
        )

    def buckets(self, host: str) -> Iterator[Bucket]:
        """The buckets whose pattern matches ``host``, most specific first."""
        if self.exact:
            bucket = self.exact.get(host)
            if bucket:
                yield bucket
        if self.wild:
            for suffix in wildcard_suffixes(host):
                bucket = self.wild.get(suffix)
                if bucket:
                    yield bucket
        if self.any:
            yield self.any

    def find(
        self, host: str, path: str, method: str, headers: Headers, query: _LazyQuery
    ) -> Entry | None:
        for bucket in self.buckets(host):
            for group in bucket:
                entry = group.find(path, method, headers, query)
                if entry is not None:
                    return entry
        return None


class IndexBuilder:
    """Collects (hostname pattern, route-hostname key, match) placements, then seals."""

    def __init__(self) -> None:
        self._groups: dict[str | None, dict[HostKey, PathIndex]] = {}

    def add(
        self,
        pattern: str | None,
        host_key: HostKey,
        match: HTTPRouteMatch,
        rule: CompiledRule,
        match_index: int,
        order: RouteOrder,
    ) -> None:
        groups = self._groups.setdefault(pattern, {})
        index = groups.get(host_key)
        if index is None:
            index = groups[host_key] = PathIndex()
        index.add(match.path.type, match.path.value, Entry(match, rule, match_index, order))

    def build(self) -> HostIndex:
        exact: dict[str, Bucket] = {}
        wild: dict[str, Bucket] = {}
        any_: Bucket = ()
        for pattern, groups in self._groups.items():
            bucket = tuple(groups[k].seal() for k in sorted(groups, reverse=True))
            if pattern is None:
                any_ = bucket
            elif is_wildcard(pattern):
                wild[pattern[2:]] = bucket
            else:
                exact[pattern] = bucket
        return HostIndex(exact, wild, any_)
