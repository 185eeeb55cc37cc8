"""The backend-protocol cases' pod programs, on loopback: the WebSocket server echoes a
text and a binary message to the client and refuses a request without an Upgrade; the h2c
server answers an HTTP/2 prior-knowledge request with its pod name and closes on HTTP/1.1
(so an answer in the lab proves the waypoint spoke h2c); the HTTPS backend of the
BackendTLSPolicy case reports the SNI name, and its certificate verifies against the case's
CA for abc.example.com only. Also the percentage mirror's band."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from conformance.cases.backend_tls import HOST, pki
from conformance.cases.backends import H2C_CLIENT, H2C_SERVER, TLS_SERVER, WS_CLIENT, WS_SERVER
from conformance.cases.claims_more import band
from conformance.lab import POD_PYTHON


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(script: str, python: str, *args: str) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen([python, "-c", script, *args, str(port), "127.0.0.1"],
                            env=dict(os.environ, POD_NAME="h2c-backend-abc12-xyz"))
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("the server did not listen")
        yield port
    finally:
        proc.kill()
        proc.wait()


def client(python: str, script: str, *args: str) -> dict[str, object]:
    out = subprocess.run([python, "-c", script, *args], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def test_websocket_messages_come_back_as_sent() -> None:
    with server(WS_SERVER, POD_PYTHON) as port:
        got = client(POD_PYTHON, WS_CLIENT, "127.0.0.1", "ws.example.com", str(port))
    assert got == {"status": 101, "accept": True, "text": "Websocket Support!",
                   "binary": [1, 2, 3, 4, 5, 6, 7]}


def test_websocket_server_refuses_a_plain_request() -> None:
    with server(WS_SERVER, POD_PYTHON) as port, \
            socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400 ")


def test_h2c_prior_knowledge_is_answered_with_the_pod() -> None:
    with server(H2C_SERVER, sys.executable) as port:
        got = client(sys.executable, H2C_CLIENT, "127.0.0.1", "h2c.example.com", "/h2c",
                     str(port))
    assert got["status"] == 200
    assert got["body"] == {"pod": "h2c-backend-abc12-xyz", "proto": "HTTP/2.0", "path": "/h2c",
                           "host": "h2c.example.com"}


def test_h2c_server_gives_http1_no_answer() -> None:
    with server(H2C_SERVER, sys.executable) as port, \
            socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        assert b"HTTP/1.1" not in data  # the server's preface or GOAWAY frames, then close


@pytest.mark.parametrize(("share", "low", "high"), [(0.2, 4, 36), (0.5, 30, 70), (0.35, 15, 55)])
def test_the_mirror_band_is_four_sigma(share: float, low: int, high: int) -> None:
    assert band(100, share) == (low, high)


def test_the_band_excludes_none_and_all() -> None:
    assert band(10, 0.01) == (1, 2)  # mean 0.1, sigma 0.31: at least one copy
    assert band(10, 0.99) == (8, 9)  # never every request


def _tls_get(port: int, ca: str, sni: str) -> dict[str, object]:
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as f:
        f.write(ca)
        f.flush()
        ctx = ssl.create_default_context(cafile=f.name)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=sni) as s:
        s.sendall(b"GET /tls HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    result: dict[str, object] = json.loads(body)
    return result


def test_the_tls_backend_reports_sni_and_verifies_only_for_its_name() -> None:
    p = pki()
    with server(TLS_SERVER, POD_PYTHON, p["cert"], p["key"]) as port:
        assert _tls_get(port, p["ca"], HOST) == {"pod": "h2c-backend-abc12-xyz", "path": "/tls",
                                                 "host": "h", "sni": HOST}
        with pytest.raises(ssl.SSLCertVerificationError):
            _tls_get(port, p["ca"], "mismatch.example.com")  # the host-mismatch policy
        with pytest.raises(ssl.SSLCertVerificationError):
            _tls_get(port, p["other_ca"], HOST)  # the cert-mismatch policy
