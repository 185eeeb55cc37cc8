"""The upstream response parser (llhttp through httptools), sans-IO.

``ResponseParser.start(head=...)`` arms it for the response to one request; ``feed``
returns a ``ResponseHead``, body pieces as ``bytes`` and ``END``; ``eof`` is called when
the backend closes (it ends a close-delimited body). Bytes after a complete response
(past its Content-Length or last chunk) are dropped, never taken as a second response,
and the connection is marked not reusable. Interim 1xx responses other than
101 are skipped (the waypoint answers ``100 Continue`` itself). A 101 yields the head
and then ``UpgradeData`` with the first tunnel bytes. Trailer fields are dropped (never
merged into the head). Malformed responses give a ``ParseError`` (the proxy answers 502).
"""

from __future__ import annotations

import httptools

from l7proxy.http.parser import (
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_HEADERS,
    END,
    BodyKind,
    Event,
    ParseError,
    UpgradeData,
)


class ResponseHead:
    __slots__ = ("status", "reason", "version", "headers", "keep_alive", "body", "length")

    def __init__(
        self,
        status: int,
        reason: bytes,
        version: str,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
        body: BodyKind | None,
        length: int | None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive
        self.body = body
        """None: delimited by the connection closing."""
        self.length = length

    def __repr__(self) -> str:
        return f"ResponseHead({self.status} {self.reason!r})"


class _Stop(Exception):
    pass


class _HeadTooLarge(Exception):
    pass


class _Extra(Exception):
    """Bytes after a complete response, before the next request: never a response."""


PROTOCOL_ERROR = "UPSTREAM_PROTOCOL_ERROR"
"""The flow's drop reason for a backend whose response is no HTTP (a malformed head)."""

_NO_BODY = frozenset({204, 304})


class ResponseParser:
    __slots__ = (
        "_parser",
        "_events",
        "_reason",
        "_headers",
        "_head_request",
        "_head",
        "_done",
        "_in_body",
        "_head_size",
        "_partial",
        "_max_bytes",
        "_max_headers",
        "reusable",
        "extra",
    )

    def __init__(
        self,
        *,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_headers: int = DEFAULT_MAX_HEADERS,
    ) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._head_size = 0
        self._partial = 0
        """Bytes fed since the current head began, while it is incomplete (httptools
        keeps a partial field across feeds)."""
        self._max_bytes = max_header_bytes
        self._max_headers = max_headers
        self._events: list[Event | ResponseHead] = []
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_request = False
        self._head: ResponseHead | None = None
        self._done = False
        self._in_body = False
        self.reusable = True
        """False once the connection cannot carry another request."""
        self.extra = False
        """Bytes came after a complete response (dropped; the connection is not reused)."""

    def start(self, *, head: bool = False) -> None:
        """Expect the response to a new request (``head``: the request was HEAD)."""
        self._head_request = head
        self._head = None
        self._done = False
        self._partial = 0

    # --- llhttp callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._done:
            raise _Extra
        self._reason = b""
        self._headers = []
        self._in_body = False
        self._head_size = 0

    def on_status(self, reason: bytes) -> None:
        self._reason += reason
        self._head_size += len(reason) + 16
        if self._head_size > self._max_bytes:
            raise _HeadTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._in_body:
            # A trailer field after a chunked body: dropped, never appended to the head's
            # fields (which the proxy may not have serialised yet when one read carried
            # head, body and trailers).
            return
        self._headers.append((name, value))
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self._max_bytes or len(self._headers) > self._max_headers:
            raise _HeadTooLarge

    def on_headers_complete(self) -> None:
        parser = self._parser
        status = parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            return
        length: int | None = None
        codings: list[bytes] = []
        for name, value in self._headers:
            lower = name.lower()
            if lower == b"content-length":
                length = int(value)
            elif lower == b"transfer-encoding":
                codings += [t.strip().lower() for t in value.split(b",")]
        # RFC 9112 section 6.3: chunked only if it is the final coding; any other transfer
        # coding is read until the backend closes (as llhttp does).
        chunked = codings[-1:] == [b"chunked"]
        body: BodyKind | None
        if self._head_request or status in _NO_BODY:
            body = BodyKind.NONE
        elif chunked:
            body = BodyKind.CHUNKED
        elif codings:
            body = None
        elif length is not None:
            body = BodyKind.LENGTH if length else BodyKind.NONE
        else:
            body = None
        head = ResponseHead(
            status,
            self._reason,
            parser.get_http_version(),
            self._headers,
            parser.should_keep_alive(),
            body,
            length,
        )
        self._head = head
        self._in_body = True
        if not head.keep_alive or body is None:
            self.reusable = False
        self._events.append(head)
        if self._head_request:
            # llhttp would wait for Content-Length bytes that a HEAD response never has.
            self._events.append(END)
            self._done = True
            raise _Stop

    def on_body(self, body: bytes) -> None:
        self._events.append(body)

    def on_message_complete(self) -> None:
        if self._head is None:
            return  # an interim 1xx response
        self._done = True
        self._events.append(END)

    # --- feeding ---------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, data: bytes) -> list[Event | ResponseHead]:
        events: list[Event | ResponseHead] = []
        self._events = events
        if self._done:
            self._extra()
            return events
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = int(upgrade.args[0]) if upgrade.args else len(data)
            self.reusable = False
            events.append(UpgradeData(data[offset:]))
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, _Stop):
                self._parser = httptools.HttpResponseParser(self)
                self.reusable = False
            elif isinstance(error.__context__, _Extra):
                self._extra()
            elif isinstance(error.__context__, _HeadTooLarge):
                self._too_large(events)
            else:
                self.reusable = False
                events.append(ParseError(502, f"malformed response: {error.__context__!r}"))
        except httptools.HttpParserError as error:
            if self._done:
                self._extra()
            else:
                self.reusable = False
                events.append(ParseError(502, f"malformed response: {error}"))
        else:
            if self._head is None or not self._in_body:
                self._partial += len(data)  # still in a head: bound what httptools keeps
                if self._partial > self._max_bytes:
                    self._too_large(events)
            else:
                self._partial = 0
        return events

    def _too_large(self, events: list[Event | ResponseHead]) -> None:
        self.reusable = False
        self._done = True  # nothing more is parsed from this connection
        events.append(
            ParseError(
                502,
                f"response header section over {self._max_bytes} bytes or "
                f"{self._max_headers} fields",
            )
        )

    def _extra(self) -> None:
        # Past the response's end (its Content-Length or last chunk): the backend and
        # the waypoint disagree on framing. Drop the bytes and never reuse the connection.
        self.reusable = False
        self.extra = True

    def eof(self) -> list[Event | ResponseHead]:
        """The backend closed its side."""
        self.reusable = False
        if self._done:
            return []
        if self._head is not None and self._head.body is None:
            self._done = True
            return [END]
        what = "response body" if self._head is not None else "response head"
        return [ParseError(502, f"backend closed the connection before the {what} ended")]


def _tokens(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [
        t.strip().lower()
        for n, v in headers
        if n.lower() == name
        for t in v.split(b",")
        if t.strip()
    ]


def upgrade_refusal(
    requested: bool, request_headers: list[tuple[bytes, bytes]], head: ResponseHead
) -> str:
    """Why a 101 ``head`` cannot be spliced (RFC 9110 section 7.8: a server switches only
    to a protocol the client listed in Upgrade; never to h2c, whose requests the waypoint
    would no longer route), or "" when it can."""
    if not requested:
        return "backend switched protocols (101) but the request asked for no Upgrade"
    offered = set(_tokens(request_headers, b"upgrade"))
    chosen = _tokens(head.headers, b"upgrade")
    if not chosen:
        return "backend switched protocols (101) without naming one in Upgrade"
    if b"h2c" in chosen:  # h2c smuggling: the client's HTTP/2 requests would skip the routes
        return "backend switched to h2c, which the waypoint never splices"
    unasked = [t for t in chosen if t not in offered]
    if unasked:
        names = ", ".join(t.decode("latin-1") for t in unasked)
        return f"backend switched to {names}, which the request did not ask for"
    return ""
