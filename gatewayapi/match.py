"""Request matching: paths, headers, query parameters and methods.

Spec (HTTPPathMatch, PathMatchType): Exact is a case-sensitive comparison of the whole
path; PathPrefix matches element by element, ignoring one trailing "/" in the prefix
(``/abc`` matches ``/abc``, ``/abc/`` and ``/abc/def`` but not ``/abcd``);
RegularExpression is implementation-specific: here RE2 (linear time), full match. Header
names compare case-insensitively, values exactly or by regular expression (full match)
against the combined field value; query parameter names compare exactly, against the
first (percent-decoded) value. Regexes are compiled once, when routes compile; paths are
normalized before they get here (``paths.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qsl

from agent.model.httproute import (
    HeaderMatch,
    HTTPRouteMatch,
    PathMatchType,
    QueryParamMatch,
    StringMatchType,
)
from agent.model.regex import LinearPattern, compile_linear
from gatewayapi.headers import Headers

# --- paths -----------------------------------------------------------------------------


def prefix_key(value: str) -> str:
    """A PathPrefix value without its (ignored) trailing slash; "/" becomes ""."""
    return value[:-1] if value.endswith("/") else value


def prefix_matches(prefix: str, path: str) -> bool:
    """Element-wise PathPrefix match (``prefix`` as written in the route)."""
    key = prefix_key(prefix)
    if not key:
        return path.startswith("/")
    return path == key or path.startswith(key + "/")


def prefix_candidates(path: str) -> Iterator[str]:
    """Every prefix key that ``path`` matches, longest first: "/a/b/" and "/a/b" give
    "/a/b", "/a", "". Together with a dict of prefix keys this is a trie walk. A target
    that is not a path ("*") matches no prefix."""
    if not path.startswith("/"):
        return
    key = path[:-1] if path.endswith("/") else path
    while key:
        yield key
        key = key[: key.rfind("/")]
    yield ""


# --- queries ---------------------------------------------------------------------------


def parse_query(query: str) -> dict[str, str]:
    """Query parameters by exact name, each with its first value, percent-decoded."""
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        params.setdefault(name, value)
    return params


# --- compiled matches ------------------------------------------------------------------

StringTest = tuple[str, str | None, LinearPattern | None]
"""(name, exact value or None, regex or None)."""


def _string_test(name: str, kind: StringMatchType, value: str) -> StringTest:
    if kind is StringMatchType.REGULAR_EXPRESSION:
        return (name, None, compile_linear(value))
    return (name, value, None)


class CompiledMatch:
    """One HTTPRouteMatch, compiled: everything but the path (which the index handles)."""

    __slots__ = ("method", "headers", "query", "path_regex")

    def __init__(self, match: HTTPRouteMatch) -> None:
        self.method: str | None = match.method.value if match.method is not None else None
        self.headers: tuple[StringTest, ...] = tuple(
            _string_test(h.name.lower(), h.type, h.value) for h in _first_by_name(match.headers)
        )
        self.query: tuple[StringTest, ...] = tuple(
            _string_test(q.name, q.type, q.value) for q in _first_query(match.query_params)
        )
        path = match.path
        self.path_regex: LinearPattern | None = (
            compile_linear(path.value) if path.type is PathMatchType.REGULAR_EXPRESSION else None
        )

    def accepts(self, method: str, headers: Headers, query: _LazyQuery) -> bool:
        """Whether method, headers and query parameters all match (path already did)."""
        if self.method is not None and method != self.method:
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
        if self.query:
            params = query.get()
            for name, exact, regex in self.query:
                found = params.get(name)
                if found is None:
                    return False
                if exact is not None:
                    if found != exact:
                        return False
                elif regex is not None and not regex.fullmatch(found):
                    return False
        return True


def _first_by_name(matches: tuple[HeaderMatch, ...]) -> list[HeaderMatch]:
    """Spec: of entries with equivalent (case-insensitive) names only the first counts."""
    seen: set[str] = set()
    out = []
    for m in matches:
        if m.name.lower() not in seen:
            seen.add(m.name.lower())
            out.append(m)
    return out


def _first_query(matches: tuple[QueryParamMatch, ...]) -> list[QueryParamMatch]:
    seen: set[str] = set()
    out = []
    for m in matches:
        if m.name not in seen:
            seen.add(m.name)
            out.append(m)
    return out


class _LazyQuery:
    """Parses the query string on first use only: most rules have no query matches."""

    __slots__ = ("_raw", "_parsed")

    def __init__(self, raw: str) -> None:
        self._raw = raw
        self._parsed: dict[str, str] | None = None

    def get(self) -> dict[str, str]:
        if self._parsed is None:
            self._parsed = parse_query(self._raw)
        return self._parsed


def lazy_query(raw: str) -> _LazyQuery:
    return _LazyQuery(raw)
