"""A watch notices its client left (lab.apiserver.server.peer_sent), whatever the number of
the connection's descriptor: a busy server's pass 1024, which select() refused."""

from __future__ import annotations

import os
import resource
import socket

import pytest

from lab.apiserver.server import peer_sent

HIGH_FD = 1500


@pytest.fixture
def pair_on_high_fd() -> tuple[socket.socket, socket.socket]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= HIGH_FD:
        pytest.fail(f"RLIMIT_NOFILE hard limit {hard} leaves no descriptor {HIGH_FD} to test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, HIGH_FD + 1), hard))
    server, client = socket.socketpair()
    os.dup2(server.fileno(), HIGH_FD)
    high = socket.socket(fileno=HIGH_FD)
    server.close()
    yield high, client
    high.close()
    client.close()
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_quiet_client_is_still_there_and_a_closed_one_is_gone(pair_on_high_fd):
    conn, client = pair_on_high_fd
    assert conn.fileno() > 1024
    assert peer_sent(conn) is False
    client.close()
    assert peer_sent(conn) is True
