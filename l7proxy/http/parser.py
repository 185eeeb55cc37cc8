"""The strict HTTP/1.1 request parser: llhttp (through httptools) plus the checks it leaves
to its caller, enforced before anything is forwarded.

``RequestParser.feed(data)`` returns events in order: a ``RequestHead``, body pieces as
``bytes``, ``END`` when a request is complete, then the next pipelined request. A
``ParseError`` (status 400, 405 or 431) is the last event: the connection must answer it
and close. After an Upgrade request, ``UpgradeData`` carries the bytes that followed the
head; the parser stops there, since what follows is no longer HTTP.

llhttp in strict mode already refuses (measured): whitespace before a colon, obs-fold,
Content-Length together with Transfer-Encoding, duplicate Content-Length (equal or not),
list or signed Content-Length, an invalid or overflowing chunk size, a Transfer-Encoding
that does not end in chunked, bare CR or LF, control characters, unknown methods and
versions, and data after a request that asked to close. Trailer fields after a chunked body are
dropped (never merged into the head), within the header size limit. This module adds: the Host rules
(exactly one, well formed, on HTTP/1.1), the header section size and count limits (431),
Transfer-Encoding on HTTP/1.0, CONNECT (a waypoint is not a forward proxy: 405), and
declining ``Upgrade: h2c`` (the request is served over HTTP/1.1, then the connection closes).
"""

from __future__ import annotations

import re
from enum import IntEnum

import httptools

DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_HEADERS = 128

# RFC 3986 authority: IP-literal or reg-name (unreserved, pct-encoded, sub-delims), then
# an optional port. Userinfo is not allowed in Host (RFC 9110 section 7.2).
_AUTHORITY = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]{0,5})?")
_ABSOLUTE = re.compile(rb"(https?)://([^/?#]*)([^#]*)", re.IGNORECASE)


class BodyKind(IntEnum):
    NONE = 0
    LENGTH = 1
    CHUNKED = 2


class RequestHead:
    """A parsed, validated request head. Header names and values stay bytes, in order."""

    __slots__ = (
        "method",
        "target",
        "version",
        "headers",
        "authority",
        "keep_alive",
        "body",
        "content_length",
        "expect_continue",
        "upgrade",
        "head_bytes",
    )

    def __init__(
        self,
        method: str,
        target: str,
        version: str,
        headers: list[tuple[bytes, bytes]],
        authority: str,
        keep_alive: bool,
        body: BodyKind,
        content_length: int | None,
        expect_continue: bool,
        upgrade: bool,
        head_bytes: int,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.authority = authority
        self.keep_alive = keep_alive
        self.body = body
        self.content_length = content_length
        self.expect_continue = expect_continue
        self.upgrade = upgrade
        self.head_bytes = head_bytes

    def __repr__(self) -> str:
        return f"RequestHead({self.method} {self.target} HTTP/{self.version} {self.authority!r})"


class ParseError:
    """The request cannot be served: answer ``status`` and close."""

    __slots__ = ("status", "reason")

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason

    def __repr__(self) -> str:
        return f"ParseError({self.status}, {self.reason!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParseError) and (self.status, self.reason) == (
            other.status,
            other.reason,
        )


class UpgradeData:
    """Bytes received after an Upgrade (or PRI) request head: tunnel data."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class _End:
    __slots__ = ()

    def __repr__(self) -> str:
        return "END"


END = _End()
"""A request's body (possibly empty) is complete."""

Event = RequestHead | bytes | _End | ParseError | UpgradeData


class _HeadTooLarge(Exception):
    pass


class _TrailersTooLarge(Exception):
    pass


class _BadHead(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class RequestParser:
    """Feed bytes, get events. One parser per client connection."""

    __slots__ = (
        "_parser",
        "_events",
        "_url",
        "_headers",
        "_head_size",
        "_trailers",
        "_in_head",
        "_consumed",
        "_begin_at",
        "_began",
        "_partial",
        "_max_bytes",
        "_max_headers",
        "_failed",
        "_upgraded",
    )

    def __init__(
        self,
        *,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_headers: int = DEFAULT_MAX_HEADERS,
    ) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._events: list[Event] = []
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_size = 0
        self._trailers = 0
        self._in_head = False
        self._consumed = 0  # bytes of this feed accounted to earlier messages
        self._begin_at = 0
        self._began = False
        self._partial = 0
        self._max_bytes = max_header_bytes
        self._max_headers = max_headers
        self._failed = False
        self._upgraded = False

    @property
    def in_head(self) -> bool:
        """Whether a request head has started and is not complete (for the 408 timer)."""
        return self._in_head

    @property
    def closed(self) -> bool:
        """No more requests will come out of this parser (error or upgrade)."""
        return self._failed or self._upgraded

    # --- llhttp callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_head = True
        self._url = b""
        self._headers = []
        self._head_size = 0
        self._trailers = 0
        self._begin_at = self._consumed
        self._began = True

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url) + 16
        if self._head_size > self._max_bytes:
            raise _HeadTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            # A trailer field after a chunked body: never merged into the head (it could
            # add a field the routing or the backend trusts); bounded like a head, dropped.
            self._trailers += len(name) + len(value) + 4
            if self._trailers > self._max_bytes:
                raise _TrailersTooLarge
            return
        headers = self._headers
        headers.append((name, value))
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self._max_bytes or len(headers) > self._max_headers:
            raise _HeadTooLarge

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._consumed += self._head_size
        self._events.append(self._head())

    def on_body(self, body: bytes) -> None:
        self._consumed += len(body)
        self._events.append(body)

    def on_message_complete(self) -> None:
        self._events.append(END)

    # --- head validation -------------------------------------------------------------

    def _head(self) -> RequestHead:
        parser = self._parser
        method = parser.get_method().decode("ascii")
        version = parser.get_http_version()
        if method == "CONNECT":
            raise _BadHead(405, "CONNECT is not supported")
        host: bytes | None = None
        content_length: int | None = None
        chunked = False
        expect = False
        for name, value in self._headers:
            if len(name) > 17:
                continue
            lower = name.lower()
            if lower == b"host":
                if host is not None:
                    raise _BadHead(400, "more than one Host header")
                host = value
            elif lower == b"content-length":
                content_length = int(value)  # llhttp checked the digits
            elif lower == b"transfer-encoding":
                chunked = True  # llhttp refuses anything not ending in chunked
            elif lower == b"expect" and value.lower() == b"100-continue":
                expect = True
        if chunked and version == "1.0":
            raise _BadHead(400, "Transfer-Encoding on HTTP/1.0")
        url = self._url
        absolute = None if url[:1] == b"/" else _ABSOLUTE.fullmatch(url)
        if absolute is not None:
            # RFC 9112 section 3.2.2: absolute-form overrides Host.
            host = absolute.group(2)
            url = absolute.group(3)
            if url[:1] != b"/":
                url = b"/" + url  # an empty path is "/", also before a query
        elif url != b"*" and url[:1] != b"/":
            raise _BadHead(400, "request target is not origin-form")
        elif url == b"*" and method != "OPTIONS":
            raise _BadHead(400, "asterisk-form target is only for OPTIONS")
        if host is None:
            if version != "1.0":
                raise _BadHead(400, "missing Host header")
            host = b""
        elif _AUTHORITY.fullmatch(host) is None:
            raise _BadHead(400, "invalid Host header")
        body = BodyKind.CHUNKED if chunked else BodyKind.LENGTH if content_length else BodyKind.NONE
        upgrade = parser.should_upgrade()
        keep_alive = parser.should_keep_alive()
        if upgrade and _offers_h2c(self._headers):
            # h2c upgrade smuggling: forwarded, an h2c backend would switch and the client
            # would speak HTTP/2 straight to it, past every route rule. Declined (RFC 9110
            # lets a server ignore Upgrade): served over HTTP/1.1, then the connection
            # closes, since llhttp took what followed the head for the new protocol.
            if body is not BodyKind.NONE:
                raise _BadHead(400, "Upgrade: h2c with a request body is not supported")
            upgrade = keep_alive = False
        return RequestHead(
            method,
            url.decode("latin-1"),
            version,
            self._headers,
            host.decode("ascii").lower(),
            keep_alive,
            body,
            content_length,
            expect,
            upgrade,
            self._head_size,
        )

    # --- feeding ---------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Event]:
        """Parse ``data``; return the events it completed. After a ``ParseError`` or
        ``UpgradeData`` nothing more is returned."""
        if self._failed or self._upgraded:
            return []
        events: list[Event] = []
        self._events = events
        self._consumed = 0
        self._began = False
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgraded = True
            offset = int(upgrade.args[0]) if upgrade.args else len(data)
            events.append(UpgradeData(data[offset:]))
            return events
        except httptools.HttpParserCallbackError as error:
            cause = error.__context__
            if isinstance(cause, _HeadTooLarge):
                return self._fail(431, "request header section too large")
            if isinstance(cause, _TrailersTooLarge):
                return self._fail(431, "request trailer section too large")
            if isinstance(cause, _BadHead):
                return self._fail(cause.status, str(cause))
            return self._fail(400, f"malformed request: {cause!r}")
        except httptools.HttpParserError as error:
            if self._closed_after_close(error):
                return events
            return self._fail(400, f"malformed request: {error}")
        if self._in_head:
            # Bytes of a head still incomplete, across feeds: llhttp buffers nothing, but
            # httptools keeps the partial field; bound it.
            if self._began:
                self._partial = len(data) - self._begin_at
            else:
                self._partial += len(data)
            if self._partial > self._max_bytes:
                return self._fail(431, "request header section too large")
        return events

    def _closed_after_close(self, error: Exception) -> bool:
        """llhttp refuses data after a request that asked to close; that request stands
        and the rest is ignored (the connection closes after answering it)."""
        if "after `Connection: close`" in str(error) or "closed connection" in str(error):
            self._failed = True
            return True
        return False

    def _fail(self, status: int, reason: str) -> list[Event]:
        self._failed = True
        self._in_head = False
        # Drop the events of the request that failed, so it can never be forwarded.
        events = self._events
        while events and events[-1] is not END:
            events.pop()
        events.append(ParseError(status, reason))
        return events


def _offers_h2c(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(
        token.strip().lower() == b"h2c"
        for name, value in headers
        if name.lower() == b"upgrade"
        for token in value.split(b",")
    )
