"""421 Misdirected Request through the waypoint, in process over 127.0.0.1 (the Gateway of
``test_tls``: listeners web.example, *.wild.example, one without hostname): the attacker's
Hosts over HTTP/1.x (a port, mixed case, a trailing dot, raw UTF-8, none), and an HTTP/2
connection opened for one listener reused for another's host: that stream gets 421 and
the connection keeps serving its own listener's requests."""

from __future__ import annotations

import asyncio
import ssl

import h2.config
import h2.connection
import h2.events

from l7proxy.testing import read_response
from tests.unit.l7proxy.test_tls import Lab, client_context, run


async def raw(lab: Lab, sni: str | None, head: bytes) -> int:
    """The status of one request ``head`` sent on a new TLS connection with ``sni``."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", lab.port, ssl=client_context(lab.ca), server_hostname=sni or ""
    )
    try:
        writer.write(head)
        status, _, _ = await asyncio.wait_for(read_response(reader), 10)
        return status
    finally:
        writer.close()


def get(host: bytes) -> bytes:
    return b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"


def test_the_host_cannot_be_disguised_as_the_sni_listener() -> None:
    async def body(lab: Lab) -> None:
        # The SNI's own host, however written, is served...
        for host in (b"web.example:443", b"WEB.Example", b"web.example."):
            assert await raw(lab, "web.example", get(host)) == 200, host
        # ...another listener's, however written, is not.
        for host in (b"x.wild.example:443", b"X.WILD.example.", b"fallback.example"):
            assert await raw(lab, "web.example", get(host)) == 421, host
        assert await raw(lab, "WEB.EXAMPLE.", get(b"x.wild.example")) == 421
        # No SNI: the listener without hostname; a named listener's Host is misdirected.
        assert await raw(lab, None, get(b"web.example")) == 421
        assert await raw(lab, None, get(b"unknown.example")) == 200

    run(body)


def test_malformed_and_absent_hosts_are_refused_or_judged_as_routing_does() -> None:
    async def body(lab: Lab) -> None:
        # A raw UTF-8 (IDN U-label) Host is not a reg-name: 400, never routed.
        assert await raw(lab, "web.example", get("bücher.example".encode())) == 400
        # HTTP/1.1 without Host: 400 (RFC 9112 3.2).
        assert await raw(lab, "web.example", b"GET / HTTP/1.1\r\n\r\n") == 400
        # HTTP/1.0 without Host is the listener without hostname's request.
        assert await raw(lab, "web.example", b"GET / HTTP/1.0\r\n\r\n") == 421
        assert await raw(lab, "other.example", b"GET / HTTP/1.0\r\n\r\n") == 200

    run(body)


def test_an_h2_connection_reused_for_another_listeners_host_gets_421_per_stream() -> None:
    async def body(lab: Lab) -> None:
        context = client_context(lab.ca)
        context.set_alpn_protocols(["h2"])
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", lab.port, ssl=context, server_hostname="web.example"
        )
        sslobj = writer.get_extra_info("ssl_object")
        assert isinstance(sslobj, ssl.SSLObject) and sslobj.selected_alpn_protocol() == "h2"
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        statuses: dict[int, int] = {}

        async def ask(authority: str) -> int:
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [(":method", "GET"), (":scheme", "https"),
                                    (":authority", authority), (":path", "/")],
                              end_stream=True)
            writer.write(conn.data_to_send())
            ended = False
            while not ended:
                data = await asyncio.wait_for(reader.read(65536), 10)
                assert data, "connection closed"
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        statuses[event.stream_id] = int(dict(event.headers)[b":status"])
                    elif isinstance(event, h2.events.DataReceived):
                        conn.acknowledge_received_data(event.flow_controlled_length,
                                                       event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded) and event.stream_id == sid:
                        ended = True
                    assert not isinstance(event, h2.events.ConnectionTerminated)
                writer.write(conn.data_to_send())
            return statuses[sid]

        try:
            assert await ask("web.example") == 200
            assert await ask("x.wild.example") == 421
            assert await ask("fallback.example:443") == 421
            assert await ask("web.example") == 200  # the connection still serves its own
        finally:
            writer.close()
        await asyncio.sleep(0.3)  # flows are batched
        misdirected = [f for f in lab.flows if f.drop_reason_desc == "MISDIRECTED_REQUEST"]
        assert len(misdirected) == 2
        assert all(f.l7 and f.l7.http and f.l7.http.protocol == "HTTP/2" for f in misdirected)

    run(body)
