"""The server name (SNI) of a TLS ClientHello, read without terminating TLS (sans-IO).

TLS passthrough must choose a backend before any byte of the handshake is answered, so
the waypoint reads the client's first flight itself: TLS records (RFC 8446 5.1) carrying
one handshake message of type ClientHello (4.1.2), whose ``server_name`` extension
(RFC 6066 3) names the host. Python's ``ssl`` only exposes SNI inside a handshake it
terminates; Scapy's TLS layer (a test-only dependency here) is lenient with malformed
input and far too slow for a per-connection path, so this is a small strict parser.

Bounds, each a ``ClientHelloError`` with a flow drop reason: a record that is not a
handshake record or not TLS 1.x (``TLS_NOT_A_CLIENT_HELLO``), a record over 2^14 bytes or
empty, a handshake message other than ClientHello, lengths that disagree, a repeated
extension, a server name that is not an ASCII host name (``TLS_CLIENT_HELLO_MALFORMED``),
a ClientHello over ``max_bytes`` in all (``TLS_CLIENT_HELLO_TOO_LARGE``). A ClientHello
fragmented over several records is reassembled. A ClientHello without the extension has
no server name (``None``); the caller decides (the Gateway API has no route for it).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_RECORD = 1 << 14
"""TLSPlaintext.length may not exceed 2^14 (RFC 8446 5.1)."""
MAX_CLIENT_HELLO = 64 * 1024
"""Real ClientHellos are 0.2-2 KiB (a post-quantum key share adds ~1.2 KiB); 64 KiB
leaves room for any legitimate one and bounds what a client can make the waypoint hold."""
HANDSHAKE = 22
CLIENT_HELLO = 1
SERVER_NAME = 0
HOST_NAME = 0
MAX_HOST_NAME = 255

NOT_A_CLIENT_HELLO = "TLS_NOT_A_CLIENT_HELLO"
MALFORMED = "TLS_CLIENT_HELLO_MALFORMED"
TOO_LARGE = "TLS_CLIENT_HELLO_TOO_LARGE"

_HOST_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")


class ClientHelloError(ValueError):
    """Why the first bytes are not a ClientHello the waypoint can route (``reason``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ClientHello:
    server_name: str | None
    """Lowercase, without a trailing dot; None when the client sent no host_name."""


class _Cursor:
    __slots__ = ("data", "at", "end")

    def __init__(self, data: bytes, at: int = 0, end: int | None = None) -> None:
        self.data, self.at, self.end = data, at, len(data) if end is None else end

    def take(self, n: int, what: str) -> bytes:
        if n > self.end - self.at:
            raise ClientHelloError(MALFORMED, f"ClientHello truncated in {what}")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def number(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what), "big")

    def vector(self, size: int, what: str) -> _Cursor:
        """A length-prefixed vector (``size``-byte length) as a cursor over its bytes."""
        length = self.number(size, what)
        start = self.at
        self.take(length, what)
        return _Cursor(self.data, start, start + length)

    @property
    def left(self) -> int:
        return self.end - self.at


class ClientHelloReader:
    """Feed the client's bytes as they come; ``feed`` returns the ClientHello once it is
    whole (None until then) and raises ``ClientHelloError``. ``received`` keeps every byte
    fed, to forward as it came."""

    def __init__(self, max_bytes: int = MAX_CLIENT_HELLO) -> None:
        self.max_bytes = max_bytes
        self.received = bytearray()
        self._records_end = 0  # bytes of ``received`` already split into records
        self._handshake = bytearray()

    def feed(self, data: bytes) -> ClientHello | None:
        self.received += data
        while True:
            header = self.received[self._records_end : self._records_end + 5]
            if len(header) >= 1 and header[0] != HANDSHAKE:
                raise ClientHelloError(
                    NOT_A_CLIENT_HELLO, f"record type {header[0]} is not a TLS handshake"
                )
            if len(header) >= 2 and header[1] != 3:
                raise ClientHelloError(NOT_A_CLIENT_HELLO, "record version is not TLS 1.x")
            if len(header) < 5:
                break
            length = int.from_bytes(header[3:5], "big")
            if length == 0 or length > MAX_RECORD:
                raise ClientHelloError(MALFORMED, f"handshake record of {length} bytes")
            start = self._records_end + 5
            if len(self.received) < start + length:
                break
            self._handshake += self.received[start : start + length]
            self._records_end = start + length
            hello = self._message()
            if hello is not None:
                return hello
        if len(self.received) > self.max_bytes:
            raise ClientHelloError(TOO_LARGE, f"no whole ClientHello in {self.max_bytes} bytes")
        return None

    def _message(self) -> ClientHello | None:
        message = self._handshake
        if message[0] != CLIENT_HELLO:
            raise ClientHelloError(
                NOT_A_CLIENT_HELLO, f"handshake message type {message[0]} is not ClientHello"
            )
        if len(message) < 4:
            return None
        length = int.from_bytes(message[1:4], "big")
        if length + 4 > self.max_bytes:
            raise ClientHelloError(TOO_LARGE, f"ClientHello of {length} bytes")
        if len(message) < length + 4:
            return None
        if len(message) > length + 4:
            raise ClientHelloError(MALFORMED, "bytes after the ClientHello in its records")
        return parse_client_hello(bytes(message[4:]))


def parse_client_hello(body: bytes) -> ClientHello:
    """The body of a ClientHello handshake message (after its 4-byte header)."""
    c = _Cursor(body)
    c.take(2, "legacy_version")
    c.take(32, "random")
    if c.vector(1, "legacy_session_id").left > 32:
        raise ClientHelloError(MALFORMED, "legacy_session_id over 32 bytes")
    suites = c.vector(2, "cipher_suites")
    if suites.left < 2 or suites.left % 2:
        raise ClientHelloError(MALFORMED, f"cipher_suites of {suites.left} bytes")
    if c.vector(1, "legacy_compression_methods").left < 1:
        raise ClientHelloError(MALFORMED, "no compression method")
    if c.left == 0:
        return ClientHello(None)  # no extensions at all (TLS 1.2 allows it)
    extensions = c.vector(2, "extensions")
    if c.left:
        raise ClientHelloError(MALFORMED, "bytes after the extensions")
    seen: set[int] = set()
    name: str | None = None
    while extensions.left:
        kind = extensions.number(2, "extension type")
        data = extensions.vector(2, f"extension {kind}")
        if kind in seen:
            raise ClientHelloError(MALFORMED, f"extension {kind} appears twice")
        seen.add(kind)
        if kind == SERVER_NAME:
            name = _server_name(data)
    return ClientHello(name)


def _server_name(ext: _Cursor) -> str | None:
    names = ext.vector(2, "server_name_list")
    if ext.left:
        raise ClientHelloError(MALFORMED, "bytes after server_name_list")
    if names.left == 0:
        raise ClientHelloError(MALFORMED, "empty server_name_list")
    found: str | None = None
    while names.left:
        name_type = names.number(1, "name_type")
        value = names.vector(2, "server name")
        raw = value.data[value.at : value.end]
        if name_type != HOST_NAME:
            continue
        if found is not None:
            raise ClientHelloError(MALFORMED, "two host_name entries (RFC 6066 3)")
        if not 1 <= len(raw) <= MAX_HOST_NAME or not set(raw) <= _HOST_CHARS:
            raise ClientHelloError(MALFORMED, "server name is not an ASCII host name")
        found = raw.decode("ascii").lower().rstrip(".")
        if not found:
            raise ClientHelloError(MALFORMED, "server name is empty")
    return found
