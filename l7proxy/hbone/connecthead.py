"""The CONNECT request head of an HBONE stream, parsed strictly (pure; the boundary that
Hypothesis tests).

h2's own inbound header validation is off on the receiving end (``tunnel.py``): it turns a
malformed head into a *connection* error, which would end every other stream multiplexed on
the connection, where RFC 9113 8.1.1 asks for a stream error. So this parser checks what h2
would have, plus what a tunnel needs, and the stream alone is answered 400 (or 405):

- field names are non-empty lowercase tokens, values hold no NUL, CR or LF and no leading or
  trailing whitespace (RFC 9113 8.2.1); no connection-specific field (8.2.2);
- pseudo-header fields come first, each at most once: ``:method`` (must be ``CONNECT``) and
  ``:authority`` only: no ``:scheme`` or ``:path`` (8.5), no ``:protocol`` (no extended
  CONNECT), no other pseudo-header;
- ``:authority`` is ``a.b.c.d:port``, an IPv4 address (no leading zeros) and a port 1-65535;
- ``forwarded`` (RFC 7239), exactly one field: its first element's ``for`` names the client
  pod: ``for=a.b.c.d`` (Istio's form) or ``for="a.b.c.d:port"`` (Tulle's, which keeps the
  port for the flow);
- at most MAX_FIELDS fields and MAX_HEAD_BYTES in all (RFC 9113 6.5.2's accounting: name +
  value + 32 per field).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

MAX_FIELDS = 64
MAX_HEAD_BYTES = 16 * 1024
Address = tuple[str, int]
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")
_CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"te"}
)
_PSEUDO = (b":method", b":authority")


class HeadError(ValueError):
    """A head the tunnel refuses: ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class ConnectHead:
    destination: Address  # from :authority
    source: Address  # from Forwarded for=; port 0 when the peer sent none


def _ipv4(text: str, what: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise HeadError(400, f"{what}: {text!r} is not an IPv4 address") from None


def _port(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 5:
        raise HeadError(400, f"{what}: port {text!r} is not a number")
    port = int(text)
    if not 0 < port < 65536:
        raise HeadError(400, f"{what}: port {port} is out of range")
    return port


def parse_authority(value: str) -> Address:
    host, sep, port = value.rpartition(":")
    if not sep:
        raise HeadError(400, f":authority {value!r} has no port")
    return _ipv4(host, ":authority"), _port(port, ":authority")


def parse_forwarded(value: str) -> Address:
    """The first element's ``for`` node (RFC 7239 4): an IPv4 address, with a port if quoted."""
    first = value.split(",", 1)[0]
    found: str | None = None
    for pair in first.split(";"):
        name, sep, node = pair.strip().partition("=")
        if not sep:
            raise HeadError(400, f"forwarded: {pair.strip()!r} is not name=value")
        if name.lower() != "for":
            continue
        if found is not None:
            raise HeadError(400, "forwarded: two 'for' parameters")
        found = node
    if found is None:
        raise HeadError(400, "forwarded: no 'for' parameter")
    if len(found) >= 2 and found[0] == '"' and found[-1] == '"':
        inner = found[1:-1]
        host, sep, port = inner.partition(":")
        if sep:
            return _ipv4(host, "forwarded for"), _port(port, "forwarded for")
        return _ipv4(inner, "forwarded for"), 0
    return _ipv4(found, "forwarded for"), 0


def _check_field(name: bytes, value: bytes) -> None:
    if not name:
        raise HeadError(400, "an empty field name")
    body = name[1:] if name[:1] == b":" else name
    if not body or any(c not in _TOKEN for c in body):
        raise HeadError(400, f"field name {name!r} is not a lowercase token")
    if any(c in (0, 10, 13) for c in value):
        raise HeadError(400, f"field {name.decode('latin-1')!r} has NUL, CR or LF")
    if value[:1] in (b" ", b"\t") or value[-1:] in (b" ", b"\t"):
        raise HeadError(400, f"field {name.decode('latin-1')!r} has surrounding whitespace")


def parse_connect(fields: Iterable[tuple[bytes, bytes]]) -> ConnectHead:
    """The tunnel's destination and source from a request head; ``HeadError`` if refused."""
    pseudo: dict[bytes, bytes] = {}
    forwarded: list[bytes] = []
    count = size = 0
    regular = False
    for name, value in fields:
        count += 1
        size += len(name) + len(value) + 32
        if count > MAX_FIELDS or size > MAX_HEAD_BYTES:
            raise HeadError(431, f"the head is over {MAX_FIELDS} fields or {MAX_HEAD_BYTES} bytes")
        _check_field(name, value)
        if name[:1] == b":":
            if regular:
                raise HeadError(400, f"pseudo-header {name.decode()} after a regular field")
            if name not in _PSEUDO:
                raise HeadError(400, f"pseudo-header {name.decode()} is not allowed on CONNECT")
            if name in pseudo:
                raise HeadError(400, f"pseudo-header {name.decode()} twice")
            pseudo[name] = value
            continue
        regular = True
        if name in _CONNECTION_SPECIFIC:
            raise HeadError(400, f"connection-specific field {name.decode()}")
        if name == b"forwarded":
            forwarded.append(value)
    method = pseudo.get(b":method")
    if method is None:
        raise HeadError(400, "no :method")
    if method != b"CONNECT":
        raise HeadError(405, f"method {method.decode('latin-1')!r}: only CONNECT")
    authority = pseudo.get(b":authority")
    if authority is None:
        raise HeadError(400, "no :authority")
    if len(forwarded) != 1:
        raise HeadError(400, f"{len(forwarded)} forwarded fields; one is required")
    try:
        destination = parse_authority(authority.decode("ascii"))
        source = parse_forwarded(forwarded[0].decode("ascii"))
    except UnicodeDecodeError:
        raise HeadError(400, "a non-ASCII :authority or forwarded") from None
    return ConnectHead(destination, source)


def connect_fields(destination: Address, source: Address) -> list[tuple[bytes, bytes]]:
    """The head the sending end writes (the inverse of `parse_connect`)."""
    node = f'"{source[0]}:{source[1]}"' if source[1] else source[0]
    return [
        (b":method", b"CONNECT"),
        (b":authority", f"{destination[0]}:{destination[1]}".encode()),
        (b"forwarded", f"for={node}".encode()),
    ]
