"""Request matching: paths, headers, query parameters and methods.

Spec (HTTPPathMatch, PathMatchType): Exact is a case-sensitive comparison of the whole
path; PathPrefix matches element by element, ignoring one trailing "/" in the prefix
(``/abc`` matches ``/abc``, ``/abc/`` and ``/abc/def`` but not ``/abcd``);
RegularExpression is implementation-specific: here Python ``re``, full match. Header
names compare case-insensitively, values exactly or by regular expression (full match)
against the combined field value; query parameter names compare exactly, against the
first (percent-decoded) value. Regexes are compiled once, when routes compile.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from agent.model.httproute import (
    HeaderMatch,
    HTTPRouteMatch,
    PathMatchType,
    QueryParamMatch,
    StringMatchType,
)
from l7proxy.routing.headers import Headers

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


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _decode_unreserved(segment: str) -> str:
    """Percent-decode only the unreserved characters (RFC 3986 section 6.2.2.2); "%2F"
    and other reserved escapes stay encoded, with their hex digits uppercased."""
    if "%" not in segment:
        return segment
    out: list[str] = []
    i = 0
    while i < len(segment):
        char = segment[i]
        if char == "%" and _is_hex(segment[i + 1 : i + 3]):
            decoded = chr(int(segment[i + 1 : i + 3], 16))
            out.append(decoded if decoded in _UNRESERVED else "%" + segment[i + 1 : i + 3].upper())
            i += 3
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _is_hex(text: str) -> bool:
    return len(text) == 2 and all(c in "0123456789abcdefABCDEF" for c in text)


def normalize_path(path: str) -> str:
    """RFC 3986 normalization of a request path before matching: decode unreserved
    escapes and remove "." and ".." segments (a path may not climb above "/"). Other
    escapes, "%2F" among them, stay encoded, so "/a%2Fb" never matches prefix "/a"."""
    if not path.startswith("/"):
        path = "/" + path
    if "%" not in path and "/." not in path:
        return path
    segments = _decode_unreserved(path).split("/")[1:]
    out: list[str] = []
    for segment in segments:
        if segment == ".":
            continue
        if segment == "..":
            if out:
                out.pop()
            continue
        out.append(segment)
    trailing = segments and segments[-1] in (".", "..")
    return "/" + "/".join(out) + ("/" if trailing and out else "")


# --- queries ---------------------------------------------------------------------------


def parse_query(query: str) -> dict[str, str]:
    """Query parameters by exact name, each with its first value, percent-decoded."""
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        params.setdefault(name, value)
    return params


# --- regular expressions -------------------------------------------------------------


def _sre(name: str) -> Any:
    try:
        return importlib.import_module(f"re.{name}")
    except ImportError:  # the parser is private; without it no pattern is refused
        return None


_PARSER, _CONSTANTS = _sre("_parser"), _sre("_constants")


def backtracking_hazard(pattern: str) -> bool:
    """Whether ``pattern`` repeats a group that is itself nothing but a repetition, such
    as ``(a+)+``, ``(.*)*`` or ``(?:x*)+``: the classic shapes whose matching time grows
    exponentially with a non-matching input. Python's ``re`` backtracks, and paths and
    headers come from clients, so Tulle refuses these (UnsupportedValue). Possessive and
    atomic forms, ``(a++)+`` and ``(?>a+)+``, do not backtrack and are accepted."""
    if _PARSER is None or _CONSTANTS is None:
        return False
    return _has_nested_repeat(_PARSER.parse(pattern).data)


def _repeat_ops() -> tuple[Any, ...]:
    return (_CONSTANTS.MAX_REPEAT, _CONSTANTS.MIN_REPEAT)


def _only_repeat(items: Any) -> bool:
    """Whether ``items`` is, under any plain groups, a single unbounded repetition."""
    while len(items) == 1 and items[0][0] is _CONSTANTS.SUBPATTERN:
        items = items[0][1][3]
    return len(items) == 1 and items[0][0] in _repeat_ops() and items[0][1][1] > 1


def _has_nested_repeat(items: Any) -> bool:
    constants = _CONSTANTS
    for op, arg in items:
        if op in _repeat_ops():
            _, high, body = arg
            if high > 1 and _only_repeat(body):
                return True
            if _has_nested_repeat(body):
                return True
        elif op is constants.SUBPATTERN:
            if _has_nested_repeat(arg[3]):
                return True
        elif op is constants.BRANCH:
            if any(_has_nested_repeat(branch) for branch in arg[1]):
                return True
    return False


# --- compiled matches ------------------------------------------------------------------

StringTest = tuple[str, str | None, "re.Pattern[str] | None"]
"""(name, exact value or None, regex or None)."""


def _string_test(name: str, kind: StringMatchType, value: str) -> StringTest:
    if kind is StringMatchType.REGULAR_EXPRESSION:
        return (name, None, re.compile(value))
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
        self.path_regex: re.Pattern[str] | None = (
            re.compile(path.value) if path.type is PathMatchType.REGULAR_EXPRESSION else None
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
            elif regex is not None and regex.fullmatch(value) is None:
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
                elif regex is not None and regex.fullmatch(found) is None:
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
