"""Held listening sockets (l7proxy/listenfds.py): the TULLE_LISTEN_FDS contract, the checks on
an adopted fd, and a waypoint that serves a connection queued before it started."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
from collections.abc import Iterator

import pytest

from l7proxy.listenfds import HeldListeners, ListenFdsError, adopt, format_fds, parse_fds
from l7proxy.server import WaypointServer
from l7proxy.testing import gateway_config, read_response


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock
    sock.close()


def test_the_variable_round_trips() -> None:
    fds = {("10.1.0.1", 15001): 7, ("10.1.0.1", 15008): 9, ("10.1.0.1", 15007): 8}
    value = format_fds(fds)
    assert value == "10.1.0.1:15001=7,10.1.0.1:15007=8,10.1.0.1:15008=9"
    assert parse_fds(value) == fds
    assert parse_fds("") == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10.1.0.1:15001", "expected HOST:PORT=FD"),
        ("15001=7", "expected HOST:PORT=FD"),
        (":15001=7", "expected HOST:PORT=FD"),
        ("10.1.0.1:http=7", "must be numbers"),
        ("10.1.0.1:15001=seven", "must be numbers"),
        ("10.1.0.1:0=7", "out of range"),
        ("10.1.0.1:70000=7", "out of range"),
        ("10.1.0.1:15001=2", "fd below 3"),  # stdin/out/err are never a held socket
        ("10.1.0.1:15001=7,10.1.0.1:15001=8", "given twice"),
    ],
)
def test_a_malformed_variable_is_refused_by_entry(value: str, message: str) -> None:
    with pytest.raises(ListenFdsError, match=message):
        parse_fds(value)


def test_an_adopted_socket_accepts_a_connection_queued_before(listening: socket.socket) -> None:
    address = listening.getsockname()
    client = socket.create_connection(address, timeout=5)  # the kernel completes it
    adopted = adopt(address, os.dup(listening.fileno()))
    try:
        assert adopted.getblocking() is False and adopted.get_inheritable() is False
        adopted.setblocking(True)
        conn, peer = adopted.accept()
        assert peer == client.getsockname()
        conn.close()
    finally:
        adopted.close()
        client.close()


def test_an_fd_that_is_not_the_named_listener_is_refused_and_left_open(
    listening: socket.socket,
) -> None:
    host, port = listening.getsockname()
    bound = socket.socket()
    bound.bind(("127.0.0.1", 0))  # bound, never listening
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    read, write = os.pipe()
    try:
        cases = [
            ((host, port + 1 if port < 65535 else port - 1), listening.fileno(), "listening on"),
            (bound.getsockname(), bound.fileno(), "listening: False"),
            (udp.getsockname(), udp.fileno(), "is not a TCP socket"),
            ((host, port), read, "fd"),
        ]
        for address, fd, message in cases:
            with pytest.raises(ListenFdsError, match=message):
                adopt(address, fd)
            os.fstat(fd)  # still open: a refused fd is never closed by the waypoint
    finally:
        for sock in (bound, udp):
            sock.close()
        os.close(read)
        os.close(write)


def test_take_hands_each_socket_once_and_none_for_others(listening: socket.socket) -> None:
    host, port = listening.getsockname()
    held = HeldListeners({(host, port): os.dup(listening.fileno())})
    assert held.take(host, port + 1 if port < 65535 else 1) is None
    sock = held.take(host, port)
    assert sock is not None and not held
    assert held.take(host, port) is None
    sock.close()


def test_from_environ_refuses_a_malformed_value() -> None:
    with pytest.raises(ListenFdsError, match="TULLE_LISTEN_FDS"):
        HeldListeners.from_environ({"TULLE_LISTEN_FDS": "nonsense"})
    assert not HeldListeners.from_environ({})


def test_the_waypoint_serves_a_request_sent_before_it_started(listening: socket.socket) -> None:
    """The restart case: the client connected and sent while no waypoint ran; the waypoint
    that starts on the held socket answers it (a 404: no route matches)."""
    host, port = listening.getsockname()
    base = gateway_config("", {})
    config = dataclasses.replace(
        base, listeners=[dataclasses.replace(base.listeners[0], host=host, port=port)]
    )
    client = socket.create_connection((host, port), timeout=5)
    client.sendall(b"GET /queued HTTP/1.1\r\nHost: nowhere.example\r\nConnection: close\r\n\r\n")

    async def main() -> int:
        server = WaypointServer(config)
        held = HeldListeners({(host, port): os.dup(listening.fileno())})
        assert await server.start(held=held) == [port]
        try:
            reader, writer = await asyncio.open_connection(sock=client)
            status, _, _ = await read_response(reader)
            writer.close()
            return status
        finally:
            await server.close()

    assert asyncio.run(main()) == 404


def test_the_node_waypoint_stops_with_the_reason_on_a_malformed_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import l7proxy.node

    monkeypatch.setenv("TULLE_LISTEN_FDS", "10.1.0.1:15001")
    monkeypatch.setattr(l7proxy.node, "connect", lambda _k: pytest.fail("it went on"))
    with pytest.raises(SystemExit, match=r"tulle waypoint: TULLE_LISTEN_FDS: .* HOST:PORT=FD"):
        l7proxy.node.run("n1", None, "/p", "10.1.0.1:15001", "/i")
