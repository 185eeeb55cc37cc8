"""Attacker review of issue 9's proxy fixes: each test tries to walk around a promise
(framing owned by the waypoint, path normalisation, pool safety) another way. Real
sockets over loopback through the real waypoint; the backends are scripted
(``l7proxy.testing.RawBackend``)."""

from __future__ import annotations

import asyncio

import pytest

from l7proxy.http.parser import END, ParseError, RequestHead
from l7proxy.http.response import ResponseHead, ResponseParser
from l7proxy.server import WaypointServer
from l7proxy.testing import gateway_config, read_response
from tests.unit.l7proxy.h1lab import ROUTE, run, waypoint
from tests.unit.l7proxy.test_server_paths import Lab
from tests.unit.l7proxy.test_server_paths import run as run_lab


async def exchange(port: int, raw: bytes) -> bytes:
    """Send ``raw``, return everything the waypoint wrote until it went quiet or closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        out = b""
        while True:
            try:
                data = await asyncio.wait_for(reader.read(65536), 0.5)
            except TimeoutError:
                return out
            if not data:
                return out
            out += data
    finally:
        writer.close()


def _framing(head: bytes) -> list[bytes]:
    lines = head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    names = [line.partition(b":")[0].strip().lower() for line in lines]
    return [n for n in names if n in (b"content-length", b"transfer-encoding")]


# --- framing: the waypoint writes Content-Length / Transfer-Encoding, nobody else ------


def _modifier_route(kind: str, name: str, value: str) -> str:
    key = kind[0].lower() + kind[1:]
    return ROUTE + (
        f"    filters:\n    - type: {kind}\n      {key}:\n"
        f'        set: [{{name: {name}, value: "{value}"}}]\n'
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Transfer-Encoding", "chunked"),
        ("Content-Length", "10"),
        ("Connection", "close"),
        ("Upgrade", "websocket"),
    ],
)
def test_a_response_header_filter_cannot_add_framing_or_hop_by_hop_fields(
    name: str, value: str
) -> None:
    """A ResponseHeaderModifier that sets Transfer-Encoding beside the waypoint's own
    Content-Length gives the client (or any proxy in front of a Gateway) two framings:
    response splitting. Hop-by-hop fields belong to the waypoint's hop alone."""

    async def main() -> None:
        async with waypoint(route=_modifier_route("ResponseHeaderModifier", name, value)) as (
            port,
            _,
        ):
            out = await exchange(port, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
            head = out.split(b"\r\n\r\n", 1)[0].lower()
            assert out.startswith(b"HTTP/1.1 200 ")
            assert _framing(out) == [b"content-length"]
            assert name.lower().encode() + b":" not in head.replace(b"content-length: 2", b"")
            assert out.endswith(b"\r\n\r\nok")

    run(main)


@pytest.mark.parametrize(
    ("name", "value"),
    [("Transfer-Encoding", "chunked"), ("Content-Length", "0"), ("Host", "evil")],
)
def test_a_request_header_filter_cannot_change_framing_or_host(name: str, value: str) -> None:
    """Held: the request side already skips framing fields and Host from filters."""

    async def main() -> None:
        route = _modifier_route("RequestHeaderModifier", name, value)
        async with waypoint(route=route) as (port, backend):
            raw = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
            status, _, _ = await asyncio.wait_for(_one(port, raw), 5)
            assert status == 200
            [got] = backend.received
            assert got.body == b"abc" and got.head.authority == "a"

    run(main)


async def _one(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        return await read_response(reader)
    finally:
        writer.close()


# --- response trailers: never part of the response head -------------------------------

TRAILED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
    b"Set-Cookie: session=planted\r\nLocation: http://elsewhere/\r\n\r\n"
)


def test_backend_trailers_in_the_same_segment_never_join_the_response_head() -> None:
    """The request side drops trailers; the response side appended them to the head's
    field list, which the waypoint serialises only after the whole read is parsed: a
    trailer sent in the same segment as the head became a response header."""

    async def main() -> None:
        async with waypoint(lambda head, body: TRAILED) as (port, _):
            out = await exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert out.startswith(b"HTTP/1.1 200 ")
            assert b"planted" not in out and b"elsewhere" not in out
            assert out.endswith(b"2\r\nok\r\n0\r\n\r\n")

    run(main)


def test_response_trailers_stay_out_of_the_head_at_every_split_point() -> None:
    for cut in range(1, len(TRAILED)):
        parser = ResponseParser()
        parser.start()
        events = parser.feed(TRAILED[:cut]) + parser.feed(TRAILED[cut:])
        [head] = [e for e in events if isinstance(e, ResponseHead)]
        assert [n for n, _ in head.headers] == [b"Transfer-Encoding"], cut
        assert b"".join(e for e in events if isinstance(e, bytes)) == b"ok"
        assert events[-1] is END and parser.reusable


def test_a_response_whose_transfer_coding_does_not_end_in_chunked_is_read_until_close() -> None:
    """RFC 9112 section 6.3: such a body ends when the backend closes (llhttp reads it
    so). The waypoint called it chunked, so the close looked like a cut and the client's
    response was aborted; the raw body must arrive whole and never be de-chunked."""

    async def main() -> None:
        body = b"5\r\nhello\r\n0\r\n\r\n"  # not chunk framing here: the body's own bytes

        async def answer(head: RequestHead, _: bytes) -> bytes:
            return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n" + body

        async with waypoint(answer) as (port, backend):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            await asyncio.sleep(0.2)
            for transport in list(backend.transports):
                transport.close()  # the body ends here
            status, headers, got = await asyncio.wait_for(read_response(reader), 5)
            writer.close()
            assert status == 200 and got == body

    run(main)


# --- h2c upgrade smuggling: a tunnel past every route rule ----------------------------

H2C_OFFER = (
    b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
)
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class SwitchingBackend(asyncio.Protocol):
    """Switches to whatever the request's Upgrade names (as an h2c-capable server
    would) and records every byte it reads."""

    def __init__(self, seen: list[bytes]) -> None:
        self.seen = seen
        self.switched = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert isinstance(self.transport, asyncio.Transport)
        self.seen.append(data)
        head = b"".join(self.seen)
        if self.switched or b"\r\n\r\n" not in head:
            return
        self.switched = True
        if b"\r\nUpgrade: h2c" in head:
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
            )
        else:
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def test_an_h2c_upgrade_is_never_tunnelled_past_the_route_rules() -> None:
    """With ``Upgrade: h2c`` forwarded, an h2c-capable backend switches and the waypoint
    splices the client straight to it: every later request (any path, any header) skips
    routing, filters, path normalisation and flows. Envoy strips h2c offers; so does the
    waypoint: the request is served over HTTP/1.1 and the connection then closes."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        seen: list[bytes] = []
        backend = await loop.create_server(lambda: SwitchingBackend(seen), "127.0.0.1", 0)
        port = backend.sockets[0].getsockname()[1]
        config = gateway_config(
            ROUTE, {"default/raw:8080": [("127.0.0.1", port)]}, services=("raw",)
        )
        for h2 in (False, True):
            seen.clear()
            server = WaypointServer(config, enable_h2=h2)
            [listen] = await server.start()
            try:
                request = b"GET /public HTTP/1.1\r\nHost: a\r\n" + H2C_OFFER + b"\r\n"
                out = await exchange(listen, request + PREFACE)
            finally:
                await server.close()
            assert out.startswith(b"HTTP/1.1 200 "), out
            got = b"".join(seen)
            assert PREFACE not in got and b"upgrade" not in got.lower()
        backend.close()

    run(main)


def test_an_h2c_upgrade_with_a_body_is_refused_not_forwarded_without_it() -> None:
    """llhttp treats everything after an Upgrade head as the new protocol, so the body
    would be lost (the backend got Content-Length: 0); refuse it by name instead."""

    async def main() -> None:
        async with waypoint() as (port, backend):
            request = b"POST /x HTTP/1.1\r\nHost: a\r\n" + H2C_OFFER + b"Content-Length: 5\r\n\r\n"
            out = await exchange(port, request + b"hello")
            assert out.startswith(b"HTTP/1.1 400 ") and b"h2c" in out
            assert backend.received == []

    run(main)


def test_a_refused_websocket_upgrade_leaves_no_tunnel_behind() -> None:
    """Held (WebSocket smuggling): a backend that answers 426 instead of 101 must not
    leave a spliced connection on which the next bytes reach it unrouted."""

    async def main() -> None:
        def refuse(head: RequestHead, body: bytes) -> bytes:
            return b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n"

        async with waypoint(refuse) as (port, backend):
            request = (
                b"GET /socket HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                b"Upgrade: websocket\r\nSec-WebSocket-Version: 1337\r\n\r\n"
            )
            out = await exchange(port, request + b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n")
            assert out.startswith(b"HTTP/1.1 426 ") and out.count(b"HTTP/1.1") == 1
            assert [r.head.target for r in backend.received] == ["/socket"]

    run(main)


# --- path escapes that survive normalisation and become structure at the backend -------

ESCAPE_ATTACKS = [
    # "..%3B" decodes to "..;": a backend that decodes, then strips ";" parameters (the
    # model test_server_paths.backend_path encodes) resolves it as ".." into /admin.
    b"/public/..%3B/admin",
    b"/public/%2e%2e%3bx/admin",
    # Overlong UTF-8 for "." ("%C0%AE"): old IIS, Tomcat (CVE-2008-2938) and lax
    # decoders read "../"; no valid UTF-8 text is spelled so.
    b"/public/%C0%AE%C0%AE/admin",
    b"/public/%c0%2e%c0%2e/admin",
    b"/public/%E0%80%AE%E0%80%AE/admin",
    b"/public/%FF/admin",
]


@pytest.mark.parametrize("target", ESCAPE_ATTACKS, ids=[a.decode() for a in ESCAPE_ATTACKS])
def test_escapes_that_a_backend_decodes_into_dot_segments_are_refused(target: bytes) -> None:
    async def body(lab: Lab) -> None:
        status, _ = await lab.get(target)
        assert status == 400, (target, lab.svc_a.heads)
        assert not lab.svc_a.heads and not lab.svc_b.heads

    run_lab(body)


def test_valid_utf8_escapes_and_other_reserved_escapes_still_pass() -> None:
    async def body(lab: Lab) -> None:
        assert await lab.get(b"/public/caf%C3%A9/%E2%82%AC%3F%23%40") == (200, b"svc-a")
        assert [h.split(b" ")[1] for h in lab.svc_a.heads] == [
            b"/public/caf%C3%A9/%E2%82%AC%3F%23%40"
        ]

    run_lab(body)


# --- a backend cannot grow the shared waypoint without bound ---------------------------


@pytest.mark.parametrize(
    "head",
    [
        b"".join(b"X-Pad-%d: %b\r\n" % (i, b"a" * 100) for i in range(2000)),  # ~220 KB
        b"X-Big: " + b"a" * 200_000 + b"\r\n",
        b"".join(b"X-%d: 1\r\n" % i for i in range(1000)),  # many small fields
    ],
    ids=["many 100-byte fields", "one 200 KB field", "1000 fields"],
)
def test_a_backend_response_head_is_bounded_like_a_request_head(head: bytes) -> None:
    """Requests are capped at 64 KiB / 128 fields (431); response heads were read without
    a limit, so one tenant's backend could make the per-node waypoint hold any amount of
    memory for every response (Envoy caps response heads at 60 KiB / 100 fields)."""

    async def main() -> None:
        response = b"HTTP/1.1 200 OK\r\n" + head + b"Content-Length: 2\r\n\r\nok"
        async with waypoint(lambda h, b: response) as (port, _):
            out = await exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert out.startswith(b"HTTP/1.1 502 "), out[:80]
            assert b"header" in out

    run(main)


def test_a_response_head_trickled_in_small_reads_is_bounded_too() -> None:
    parser = ResponseParser()
    parser.start()
    events = parser.feed(b"HTTP/1.1 200 OK\r\nX-Big: ")
    for _ in range(100):  # one endless field value, 1 KB per read
        events += parser.feed(b"a" * 1024)
        if events:
            break
    [error] = events
    assert isinstance(error, ParseError) and error.status == 502
    assert not parser.reusable


def test_ordinary_responses_across_many_reads_are_not_limited_by_their_bodies() -> None:
    parser = ResponseParser()
    for _ in range(3):  # the same connection, reused
        parser.start()
        events = parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n")
        for _ in range(200):
            events += parser.feed(b"b" * 1000)
        assert events[-1] is END and parser.reusable


# --- absolute-form targets: the authority in the target wins, the path is normalised ---


@pytest.mark.parametrize(
    ("target", "authority", "path"),
    [
        (b"http://b.example/public/../admin", "b.example", "/admin"),
        (b"HTTP://B.EXAMPLE:80/x", "b.example:80", "/x"),
        (b"http://b.example", "b.example", "/"),
        (b"http://b.example?q=1", "b.example", "/?q=1"),  # RFC 9112 3.2.2: empty path is "/"
    ],
)
def test_absolute_form_overrides_host_and_is_normalised(
    target: bytes, authority: str, path: str
) -> None:
    async def main() -> None:
        async with waypoint() as (port, backend):
            raw = b"GET " + target + b" HTTP/1.1\r\nHost: a.example\r\n\r\n"
            status, _, _ = await asyncio.wait_for(_one(port, raw), 5)
            assert status == 200
            [got] = backend.received
            assert (got.head.authority, got.head.target) == (authority, path)

    run(main)
