"""Hubble's ``http_url`` and ``http_header`` flow filters (``--http-url``, ``--http-header``).

``http_url``: regular expressions searched in the request's full URL (RE2 syntax, linear
time, as ``http_path``). ``http_header``: (key, value) pairs; a flow matches when one of
its HTTP headers has the key (case-insensitive, as HTTP says) and exactly the value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from agent.flows.flow import Flow
from agent.model.regex import RegexError, compile_linear

Predicate = Callable[[Flow], bool]


class HttpFilterError(ValueError):
    """A bad --http-url or --http-header value; the message names it."""


def match_http_url(values: Sequence[str]) -> Predicate:
    patterns = []
    for v in values:
        try:
            patterns.append(compile_linear(v))
        except RegexError as e:
            raise HttpFilterError(f"http url: regular expression {v[:80]!r} {e}") from None

    def match(f: Flow) -> bool:
        http = f.l7.http if f.l7 is not None else None
        return http is not None and bool(http.url) and any(p.search(http.url) for p in patterns)

    return match


def match_http_header(values: Sequence[tuple[str, str]]) -> Predicate:
    wanted = {(k.lower(), v) for k, v in values}
    if any(not k for k, _ in wanted):
        raise HttpFilterError("http header: empty key, expected key:value")

    def match(f: Flow) -> bool:
        http = f.l7.http if f.l7 is not None else None
        return http is not None and any((h.key.lower(), h.value) in wanted
                                        for h in http.headers)

    return match
