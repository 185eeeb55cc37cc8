"""Request targets before matching: the one place that decides which path a request is
for, so that the rule the waypoint picks is the rule a backend would agree with.

A PathPrefix rule only protects what it routes if the backend reads the same path. The
classic tricks (``/public/../admin``, ``/public/%2e%2e/admin``, ``/public%2F..%2Fadmin``,
``//admin``, ``/public/..;/admin``, ``/public\\..\\admin``) make a backend resolve a path
the proxy did not match. The policy follows Envoy's ``normalize_path: true``,
``merge_slashes: true`` and ``path_with_escaped_slashes_action: REJECT_REQUEST``, and is
stricter where backends disagree with each other (see SUPPORT.md):

- percent-encoded unreserved characters are decoded, other escapes get uppercase hex
  (RFC 3986 section 6.2.2); a malformed escape is refused;
- ``.`` and ``..`` segments are removed (RFC 3986 section 5.2.4; never above "/");
- runs of slashes become one;
- refused with 400: ``%2F`` and ``%5C`` (an encoded slash or backslash, which some
  backends decode before routing and others not), a raw backslash (IIS and others read
  it as "/"), ``;`` path parameters, raw or as ``%3B`` (Tomcat, Jetty and Spring strip
  them, so ``/admin;x/`` is ``/admin/`` there but not for nginx or Go), a ``#``
  fragment, control characters, spaces and non-ASCII bytes, encoded control characters
  (``%00``), and escapes that are not UTF-8 (overlong ``%C0%AE`` is "." to lax decoders);
- the query string is not rewritten; it is refused only for bytes that would break the
  request line (controls, spaces) or a fragment.

The request goes upstream with the normalized path.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes


class PathRefused(ValueError):
    """A request target the waypoint refuses (400); the message says why."""


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = frozenset("0123456789abcdefABCDEF")

_PLAIN = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,=:@/]*")
"""Paths that need no work unless they hold "//" or "/." (checked separately)."""

_METHOD = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")
_AUTHORITY = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]{0,5})?")
_KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"))
_REFUSED = re.compile(r"[^\x21-\x7e]|[\\#;]")
_QUERY_REFUSED = re.compile(r"[\x00-\x20\x7f#]")


def request_line_problem(method: str, authority: str) -> str | None:
    """Why ``method`` or ``authority`` cannot go into an HTTP/1.1 head, or None. HTTP/1.1
    parsers check both; an HTTP/2 ``:method`` or ``:authority`` arrives unchecked."""
    if method not in _KNOWN_METHODS and _METHOD.fullmatch(method) is None:
        return f"method {method[:40]!r} is not an HTTP token"
    if _AUTHORITY.fullmatch(authority) is None:
        return f"authority {authority[:80]!r} is not a host[:port]"
    return None


def split_target(target: str) -> tuple[str, str]:
    """The normalized path and the raw query of an origin-form target, or PathRefused."""
    path, mark, query = target.partition("?")
    if mark and (bad := _QUERY_REFUSED.search(query)) is not None:
        raise PathRefused(f"query contains {_describe(bad.group())}")
    return normalize_path(path), query


def normalize_path(path: str) -> str:
    """``path`` as the waypoint matches and forwards it (see the module docstring), or
    PathRefused. ``*`` (OPTIONS) is kept as it is."""
    if _PLAIN.fullmatch(path) and "//" not in path and "/." not in path:
        return path
    if path == "*":
        return path
    if not path.startswith("/"):
        raise PathRefused('the path must start with "/"')
    if (bad := _REFUSED.search(path)) is not None:
        raise PathRefused(f"path contains {_describe(bad.group())}")
    segments = _decode(path).split("/")[1:]
    out: list[str] = []
    for segment in segments:
        if segment == "..":
            if out:
                out.pop()
        elif segment not in (".", ""):
            out.append(segment)
    trailing = segments[-1] in ("", ".", "..")
    return "/" + "/".join(out) + ("/" if trailing and out else "")


def _decode(path: str) -> str:
    """Decode unreserved escapes; uppercase the rest; refuse malformed and dangerous ones."""
    if "%" not in path:
        return path
    out: list[str] = []
    i, n = 0, len(path)
    while i < n:
        char = path[i]
        if char != "%":
            out.append(char)
            i += 1
            continue
        digits = path[i + 1 : i + 3]
        if len(digits) != 2 or not _HEX.issuperset(digits):
            raise PathRefused(f"path contains a malformed percent-escape {path[i : i + 3]!r}")
        decoded = chr(int(digits, 16))
        if decoded in "/\\":
            raise PathRefused(
                f"path contains an encoded {'slash' if decoded == '/' else 'backslash'} "
                f"(%{digits.upper()}), which backends disagree on"
            )
        if decoded < " " or decoded == "\x7f":
            raise PathRefused(f"path contains an encoded control character (%{digits.upper()})")
        if decoded == ";":
            # "..%3B" is ".." to a backend that decodes before it strips ";" parameters.
            raise PathRefused(
                "path contains an encoded path parameter (%3B), which some backends decode "
                "and then strip"
            )
        out.append(decoded if decoded in _UNRESERVED else "%" + digits.upper())
        i += 3
    result = "".join(out)
    try:
        unquote_to_bytes(result).decode("utf-8")
    except UnicodeDecodeError:
        # Overlong forms ("%C0%AE" for ".") are "../" to lax decoders (CVE-2008-2938).
        raise PathRefused(
            "path contains percent-escapes that are not UTF-8 (overlong or invalid bytes)"
        ) from None
    return result


_WHY = {
    "\\": "a backslash, which some backends read as a slash",
    "#": "a fragment (#), which clients must not send",
    ";": "a path parameter (;), which some backends strip before routing and others keep",
}


def _describe(char: str) -> str:
    if char in _WHY:
        return _WHY[char]
    if char == " ":
        return "a space"
    if char < " " or char == "\x7f":
        return f"a control character ({char!r})"
    return f"a non-ASCII character ({char!r}); percent-encode it"
