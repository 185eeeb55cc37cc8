"""HTTP/1.1 serialization for the proxy: request and response heads, chunked framing,
hop-by-hop field removal and the proxy's own error answers. Pure functions over bytes."""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
        "content-length",
    }
)
"""Fields the proxy never copies across a hop (RFC 9110 section 7.6.1); framing fields
(Content-Length, Transfer-Encoding) are written by the proxy itself, and Expect is
answered by the proxy."""

HOP_BY_HOP_BYTES = frozenset(name.encode() for name in HOP_BY_HOP)

LAST_CHUNK = b"0\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


def reason(status: int) -> bytes:
    return _REASONS.get(status, b"Unknown")


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (never the last, empty one)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Field names listed in Connection (lowercased): hop-by-hop too."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    return frozenset(tokens)


def end_to_end(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` without hop-by-hop and framing fields."""
    out = [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP_BYTES]
    if len(out) != len(headers):
        listed = connection_tokens(headers)
        if listed:
            out = [(n, v) for n, v in out if n.lower() not in listed]
    return out


class UnsafeHead(ValueError):
    """A head that would not frame as written: a CR, LF or NUL inside a start line, name
    or value (header injection, request smuggling). Raised instead of sending it."""


def check_head(head: bytes, lines: int, *, request: bool = False) -> bytes:
    """``head`` when it holds exactly ``lines`` CRLF-terminated lines (its empty last
    line included), no bare CR or LF and no NUL, and, for a ``request``, a request line
    of exactly three parts; else UnsafeHead. A few C-speed scans: cheap for every head."""
    if head.count(b"\n") != lines or head.count(b"\r\n") != lines or head.count(b"\r") != lines:
        raise UnsafeHead(f"a CR or LF inside a field would split the head: {head[:200]!r}")
    if b"\0" in head:
        raise UnsafeHead("a NUL byte in the head")
    if request and head.count(b" ", 0, head.index(b"\r\n")) != 2:
        raise UnsafeHead(f"the start line does not have three parts: {head[:200]!r}")
    return head


def request_head(method: str, target: str, lines: list[str]) -> bytes:
    """A request head from ``lines`` ("Name: value", framing included)."""
    lines.append("")
    lines.append("")
    head = f"{method} {target} HTTP/1.1\r\n".encode("latin-1") + "\r\n".join(lines).encode(
        "latin-1"
    )
    return check_head(head, len(lines), request=True)


def response_head(
    status: int, reason_phrase: bytes, headers: Iterable[tuple[bytes, bytes]]
) -> bytes:
    parts = [b"HTTP/1.1 %d %b\r\n" % (status, reason_phrase)]
    for name, value in headers:
        parts.append(name + b": " + value + b"\r\n")
    parts.append(b"\r\n")
    return check_head(b"".join(parts), len(parts))


def error_response(status: int, text: str, *, close: bool = True, extra: bytes = b"") -> bytes:
    """The proxy's own plain-text answer (400, 404, 408, 431, 502, 503, 504...)."""
    body = (text + "\n").encode()
    connection = b"connection: close\r\n" if close else b""
    return (
        b"HTTP/1.1 %d %b\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: %d\r\n%b%b\r\n%b"
        % (status, reason(status), len(body), connection, extra, body)
    )
