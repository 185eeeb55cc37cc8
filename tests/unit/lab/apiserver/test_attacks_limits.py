"""Attacks on the transport's limits with real sockets: connection exhaustion, slowloris on
the HTTPS port (request and TLS handshake), chunked request bodies, pathological selectors."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.apiserver.__main__ import bootstrap
from lab.apiserver.app import Api
from lab.apiserver.certs import Credentials, credentials
from lab.apiserver.errors import ApiError
from lab.apiserver.selectors import parse_field_selector, parse_label_selector
from lab.apiserver.server import ApiServer, Limits, tls_context
from lab.store import Store
from tests.unit.lab.apiserver.conftest import Client

CAP = 4
DEADLINE = 0.5


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[tuple[ApiServer, Credentials]]:
    """A server allowing CAP connections and DEADLINE seconds per request."""
    creds = credentials(tmp_path / "state")
    store = Store(tmp_path / "store.db")
    bootstrap(store)
    api = Api(store, frozenset({creds.token}))
    server = ApiServer(
        api,
        tls_context(creds.server_cert, creds.server_key),
        limits=Limits(max_connections=CAP, request_timeout=DEADLINE),
    ).start()
    try:
        yield server, creds
    finally:
        server.stop()
        store.close()


def _tls(server: ApiServer, creds: Credentials) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(creds.ca_cert))
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    return ctx.wrap_socket(sock, server_hostname="127.0.0.1")


def _get_version(sock: ssl.SSLSocket) -> bytes:
    """One whole response to GET /version on ``sock`` (head and body)."""
    sock.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += sock.recv(65536)
    head, _, body = reply.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` within ``within`` seconds (we keep it open)."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except (ssl.SSLError, OSError):
        return True


def test_connections_over_the_cap_are_closed_and_slots_come_back(
    limited: tuple[ApiServer, Credentials],
) -> None:
    server, creds = limited
    held = [_tls(server, creds) for _ in range(CAP)]
    try:
        with pytest.raises((ssl.SSLError, OSError)):
            extra = _tls(server, creds)  # the server closes it before the handshake
            _get_version(extra)
        assert b" 200 " in _get_version(held[0])  # those within the cap still work
        held.pop().close()
        for _ in range(50):  # the slot comes back once the server sees the close
            try:
                again = _tls(server, creds)
                break
            except (ssl.SSLError, OSError):
                time.sleep(0.1)
        assert b" 200 " in _get_version(again)
        again.close()
    finally:
        for sock in held:
            sock.close()


def test_a_request_sent_a_byte_at_a_time_is_cut_off(
    limited: tuple[ApiServer, Credentials],
) -> None:
    server, creds = limited
    sock = _tls(server, creds)
    try:
        sock.sendall(b"GET /version HTTP/1.1\r\n")
        cut = False
        for _ in range(40):  # 40 x 0.1 s: eight times the deadline, each byte in time
            try:
                sock.sendall(b"x")
            except OSError:
                cut = True
                break
            if _closed_by_server(sock, 0.1):
                cut = True
                break
        assert cut
    finally:
        sock.close()


def test_a_half_done_tls_handshake_is_cut_off(limited: tuple[ApiServer, Credentials]) -> None:
    server, _ = limited
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01")  # the start of a ClientHello, then nothing
        assert _closed_by_server(sock, 4.0)  # the old bound: 10 s per read, for ever


def test_an_idle_keep_alive_connection_is_not_a_slow_request(
    limited: tuple[ApiServer, Credentials],
) -> None:
    server, creds = limited
    sock = _tls(server, creds)
    try:
        assert b" 200 " in _get_version(sock)
        time.sleep(DEADLINE * 3)  # idle between requests: the idle timeout's business
        assert b" 200 " in _get_version(sock)
    finally:
        sock.close()


@pytest.mark.parametrize(
    "body",
    [
        b'5\r\n{"a":\r\n0\r\n\r\n',
        b"zz\r\nGET /version HTTP/1.1\r\nHost: x\r\n\r\n",  # a smuggled request in the chunks
        b"ffffffffffffffff\r\n",
    ],
)
def test_chunked_request_bodies_are_refused_and_the_connection_closed(
    limited: tuple[ApiServer, Credentials], body: bytes
) -> None:
    server, creds = limited
    sock = _tls(server, creds)
    try:
        head = (
            b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + creds.token.encode() + b"\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sock.sendall(head + body)
        sock.settimeout(5)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 411 ")
        assert b"Content-Length" in reply
        assert reply.count(b"HTTP/1.1") == 1  # nothing in the chunks was taken as a request
    finally:
        sock.close()


@pytest.mark.parametrize(
    "selector",
    [
        "a in (" * 3000,
        "a" * 60000 + "=",
        "," * 20000,
        "(" * 10000 + ")" * 10000,
        "a notin (" + "x," * 6000 + ")",
        "!" * 20000,
        "a==b==c",
        "a in (b), c notin (d",
    ],
)
def test_pathological_label_selectors_are_answered(client: Client, selector: str) -> None:
    reply = client.request(
        "GET", "/api/v1/namespaces/default/configmaps", query={"labelSelector": selector}
    )
    assert reply.status in (200, 400), reply.body


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab=!(), \t-_./in", max_size=80))
def test_selectors_parse_or_say_why(text: str) -> None:
    for parse in (parse_label_selector, lambda t: parse_field_selector(t, "Pod")):
        try:
            predicate = parse(text)
        except ApiError as err:
            assert err.code == 400 and "selector" in err.message.lower() or "field" in err.message
            continue
        predicate({"metadata": {"name": "n", "labels": {"a": "b"}}})


def test_a_watch_that_never_reads_is_dropped(tmp_path: Path) -> None:
    """A watcher that stops reading holds one page of events and the socket buffers, no
    more: the stream is pulled from the store as the socket takes it, and a write blocked
    for the idle timeout ends the connection."""
    creds = credentials(tmp_path / "state")
    store = Store(tmp_path / "store.db")
    bootstrap(store)
    server = ApiServer(
        Api(store, frozenset({creds.token})),
        tls_context(creds.server_cert, creds.server_key),
        idle_timeout=1.0,
    ).start()
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(5)
    raw.connect(("127.0.0.1", server.port))
    ctx = ssl.create_default_context(cafile=str(creds.ca_cert))
    sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    try:
        sock.sendall(
            b"GET /api/v1/namespaces/default/configmaps?watch=1 HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + creds.token.encode() + b"\r\n\r\n"
        )
        sock.recv(1)
        blob = "x" * 10_000
        for start in range(0, 600, 100):
            store.apply_many(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": f"c{i}", "namespace": "default"},
                    "data": {"blob": blob},
                }
                for i in range(start, start + 100)
            )
        time.sleep(4)  # we read nothing; the server's write blocks, then times out
        ended = False
        try:
            while sock.recv(65536):
                pass
            ended = True  # EOF after what was buffered
        except TimeoutError:
            ended = False  # still streaming: never dropped
        except (ssl.SSLError, OSError):
            ended = True  # reset
        assert ended
    finally:
        sock.close()
        server.stop()
        store.close()
