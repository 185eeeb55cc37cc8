"""HTTP/2 header blocks checked where the ``h2`` library's own checks are off (pure):
a client's request head before it becomes an exchange (``parse_request``), an h2c
backend's response head and trailers before they are passed on (``response_problem``).

The waypoint forwards most h2 requests as HTTP/1.1, where ``:method``, ``:path`` and
``:authority`` become the request line and Host. A value carrying a space, CR, LF or any
other control byte would let a client write its own request line or header, so the
block is checked here against RFC 9113 8.2 and 8.3 (the ``h2`` library's own inbound
checks are off: they fail the whole connection, while a malformed request is a *stream*
error). A block that fails is answered with RST_STREAM(PROTOCOL_ERROR) and never reaches
a backend. Cookie crumbs (RFC 9113 8.2.3) are joined into one field here, as ``h2``'s
inbound normalization did (it is off too: the checks above cover it for less).

Toward backends all of ``h2``'s header checks are off (their cost per call); what they
checked in a response is checked here instead, to the same rules as a request's fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.model.tokens import LOWER_TCHAR, TCHAR

# RFC 9110 5.6.2 token (methods, field names; field names are lowercase in HTTP/2).
_TOKEN = re.compile(f"[{TCHAR}]+".encode())
_NAME = re.compile(f"[{LOWER_TCHAR}]+".encode())
# Origin-form (RFC 9113 8.3.1: path and query): what the HTTP/1.1 parser takes in a
# request target (visible ASCII) minus '#', since fragments are never sent. No space,
# CTL, DEL or bytes over 0x7f (RFC 3986: percent-encode them).
_PATH = re.compile(rb"/[!\x22\x24-~]*")
# The authority the HTTP/1.1 parser accepts for Host: IP-literal or reg-name, optional port.
_AUTHORITY = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]{0,5})?")
_SCHEME = re.compile(rb"[A-Za-z][A-Za-z0-9+\-.]*")
# Field values: visible ASCII, obs-text, SP and HTAB inside (no CTL at all: the value is
# written into an HTTP/1.1 head; RFC 9110 5.5 allows refusing them).
_VALUE = re.compile(rb"(?:[!-~\x80-\xff](?:[\t !-~\x80-\xff]*[!-~\x80-\xff])?)?")
_CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"proxy-connection", b"keep-alive", b"transfer-encoding", b"upgrade"}
)
_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path"})
_STATUS = re.compile(rb"[1-9][0-9][0-9]")


@dataclass(frozen=True, slots=True)
class H2Request:
    """A request head that passed: safe to put on an HTTP/1.1 request line."""

    method: str
    path: str
    authority: str
    scheme: str
    headers: list[tuple[bytes, bytes]]
    """Regular fields, in order (Host removed: ``authority`` carries it)."""
    content_length: int | None


class Malformed(ValueError):
    """RFC 9113 8.1.1: the request is malformed (a stream error, PROTOCOL_ERROR)."""


class Unsupported(ValueError):
    """A well-formed request the waypoint does not serve (answered 405)."""


def parse_request(block: list[tuple[bytes, bytes]], *, max_headers: int = 128) -> H2Request:
    """Check a request header block; raise ``Malformed`` naming the first problem
    (``Unsupported`` for a CONNECT that passed the checks before it)."""
    pseudo: dict[bytes, bytes] = {}
    regular: list[tuple[bytes, bytes]] = []
    host: bytes | None = None
    length: int | None = None
    cookies: list[bytes] = []
    for name, value in block:
        if name == b"cookie":
            cookies.append(value)  # crumbs, joined and checked below
            continue
        if name[:1] == b":":
            if regular or host is not None or cookies:
                raise Malformed(f"pseudo-header {_show(name)} after a regular field")
            if name not in _PSEUDO:
                raise Malformed(f"unknown pseudo-header {_show(name)}")
            if name in pseudo:
                raise Malformed(f"duplicate pseudo-header {_show(name)}")
            pseudo[name] = value
            continue
        if _NAME.fullmatch(name) is None:
            raise Malformed(f"field name {_show(name)} is not a lowercase token")
        if _VALUE.fullmatch(value) is None:
            raise Malformed(f"field {_show(name)} has a control character or edge whitespace")
        if name in _CONNECTION_SPECIFIC:
            raise Malformed(f"connection-specific field {_show(name)}")
        if name == b"te" and value.lower() != b"trailers":
            raise Malformed("te other than 'trailers'")
        if name == b"host":
            if host is not None:
                raise Malformed("more than one host field")
            host = value
            continue
        if name == b"content-length":
            if not value.isdigit() or (length is not None and int(value) != length):
                raise Malformed("invalid content-length")
            length = int(value)
        regular.append((name, value))
    if cookies:  # one field, last (where h2's normalization put it)
        cookie = b"; ".join(cookies)
        if _VALUE.fullmatch(cookie) is None:
            raise Malformed("field 'cookie' has a control character or edge whitespace")
        regular.append((b"cookie", cookie))
    if len(regular) > max_headers:
        raise Malformed(f"more than {max_headers} header fields")
    method = pseudo.get(b":method")
    if method is None or _TOKEN.fullmatch(method) is None:
        raise Malformed(":method missing or not a token")
    if method == b"CONNECT":
        raise Unsupported("CONNECT is not supported")  # as over HTTP/1.1
    scheme = pseudo.get(b":scheme")
    if scheme is None or _SCHEME.fullmatch(scheme) is None:
        raise Malformed(":scheme missing or invalid")
    path = pseudo.get(b":path")
    if path is None:
        raise Malformed(":path missing")
    if not (_PATH.fullmatch(path) or (path == b"*" and method == b"OPTIONS")):
        raise Malformed(":path is not origin-form (or '*' for OPTIONS)")
    authority = pseudo.get(b":authority", host)
    if not authority or _AUTHORITY.fullmatch(authority) is None or not _port_ok(authority):
        raise Malformed(":authority (or host) missing or not host[:port]")
    if host is not None and host != authority:
        raise Malformed("host differs from :authority")
    return H2Request(
        method.decode("ascii"),
        path.decode("ascii"),
        authority.decode("ascii").lower(),
        scheme.decode("ascii").lower(),
        regular,
        length,
    )


def response_problem(block: list[tuple[bytes, bytes]], *, trailers: bool = False) -> str | None:
    """Why an h2c backend's response head (or trailer block) is malformed (RFC 9113
    8.1.1, 8.2, 8.3.2), or None: the rules of ``parse_request`` for fields, exactly one
    leading three-digit ``:status`` in a head, no pseudo-header in trailers."""
    status = False
    regular = False
    for name, value in block:
        if name[:1] == b":":
            if trailers:
                return f"pseudo-header {_show(name)} in trailers"
            if regular:
                return f"pseudo-header {_show(name)} after a regular field"
            if name != b":status":
                return f"pseudo-header {_show(name)} in a response"
            if status:
                return "duplicate :status"
            if _STATUS.fullmatch(value) is None:
                return ":status is not a three-digit code"
            status = True
            continue
        regular = True
        if _NAME.fullmatch(name) is None:
            return f"field name {_show(name)} is not a lowercase token"
        if _VALUE.fullmatch(value) is None:
            return f"field {_show(name)} has a control character or edge whitespace"
        if name in _CONNECTION_SPECIFIC:
            return f"connection-specific field {_show(name)}"
        if name == b"te" and value.lower() != b"trailers":
            return "te other than 'trailers'"
    if not trailers and not status:
        return ":status missing"
    return None


def unsendable(block: list[tuple[bytes, bytes]]) -> str | None:
    """Why a response head built by the waypoint must not go out, or None: what ``h2``'s
    outbound checks refused (a connection-specific field, ``te`` other than trailers, a
    pseudo-header other than one leading ``:status``). Its fields come from checked heads
    (``response_problem``, the HTTP/1.1 parser, validated route filters): this is the
    cheap backstop that a filter bug cannot turn into a connection error."""
    for i, (name, value) in enumerate(block):
        if name[:1] == b":":
            if i or name != b":status":
                return f"pseudo-header {_show(name)} misplaced"
        elif name in _CONNECTION_SPECIFIC or (name == b"te" and value.lower() != b"trailers"):
            return f"connection-specific field {_show(name)}"
    return None


def _port_ok(authority: bytes) -> bool:
    if authority[:1] == b"[":
        port = authority.rpartition(b"]")[2][1:]
    else:
        port = authority.rpartition(b":")[2] if b":" in authority else b""
    return not port or int(port) <= 65535


def _show(name: bytes) -> str:
    return repr(name[:64])[1:]
