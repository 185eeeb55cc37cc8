"""bench/mtls/loadgen.py and loadgen.c: response framing, the C engine's output, and both
engines end to end against a loopback HTTP server (counts and schedule, not timings)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.mtls import loadgen
from bench.mtls.loadgen import ResponseError, body_length, parse_c_output, read_response

SRC = Path(loadgen.__file__).with_name("loadgen.c")


def test_body_length_reads_content_length_and_chunked() -> None:
    assert body_length(b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 1024") == 1024
    assert body_length(b"HTTP/1.1 200 OK\r\ncontent-length:  7 ") == 7
    assert body_length(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked") is None


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0", "not a 200"),
        (b"garbage", "not a 200"),
        (b"HTTP/1.1 200 OK\r\nServer: x", "neither Content-Length"),
    ],
)
def test_body_length_refuses_what_is_not_a_framed_200(head: bytes, message: str) -> None:
    with pytest.raises(ResponseError, match=message):
        body_length(head)


def _pair(payload: bytes) -> socket.socket:
    a, b = socket.socketpair()
    b.sendall(payload)
    b.close()
    return a


def test_read_response_reads_the_whole_body() -> None:
    body = b"x" * 100_000
    sock = _pair(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + body)
    assert read_response(sock) == 100_000
    chunked = _pair(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert read_response(chunked) == len(b"3\r\nabc\r\n0\r\n\r\n")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Le", "before the response head"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "inside the body"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc", "chunked body"),
    ],
)
def test_read_response_refuses_truncated_responses(payload: bytes, message: str) -> None:
    with pytest.raises(ResponseError, match=message):
        read_response(_pair(payload))


def test_parse_c_output() -> None:
    samples, errors = parse_c_output(
        "S 0 1000 250000\nE 10000000 connect failed\nS 20000000 20000000 20500000\n\n"
    )
    assert samples == [(0.0, 1e-6, 0.00025), (0.02, 0.02, 0.0205)]
    assert errors == ["connect failed"]


@pytest.mark.parametrize("text", ["S 1 2\n", "S 1 2 x\n", "X what\n"])
def test_parse_c_output_refuses_malformed_lines(text: str) -> None:
    with pytest.raises(ValueError, match="line 1"):
        parse_c_output(text)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    body = b"0123456789abcdef" * 64

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        status = 200 if self.path == "/1k" else 404
        self.send_response(status)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def c_binary(tmp_path_factory: pytest.TempPathFactory) -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler on this machine (the benchmark falls back to --engine python)")
    out = tmp_path_factory.mktemp("loadgen") / "loadgen"
    subprocess.run(
        [cc, "-O2", "-Wall", "-Werror", "-pthread", "-o", str(out), str(SRC)],
        check=True,
        capture_output=True,
    )
    return str(out)


@pytest.mark.parametrize("engine", ["python", "c"])
def test_engines_send_the_whole_schedule_and_count_only_after_the_warm_up(
    engine: str, server: str, request: pytest.FixtureRequest
) -> None:
    binary = request.getfixturevalue("c_binary") if engine == "c" else None
    out = loadgen.run(
        f"{server}/1k", rate=200, connections=4, warmup=0.25, seconds=0.5, c_binary=binary
    )
    assert out["engine"] == engine
    assert out["scheduled"] == 150 and out["completed"] == 150 and out["errors"] == 0
    assert out["measured"] == 100  # intended at or after 0.25 s of 0.75 s, at 200/s
    assert out["latency"]["count"] == 100 and out["latency"]["p50_ms"] > 0
    assert out["send_lag"]["p50_ms"] >= 0


@pytest.mark.parametrize("engine", ["python", "c"])
def test_engines_count_non_200_answers_as_errors(
    engine: str, server: str, request: pytest.FixtureRequest
) -> None:
    binary = request.getfixturevalue("c_binary") if engine == "c" else None
    out = loadgen.run(
        f"{server}/missing", rate=100, connections=2, warmup=0, seconds=0.2, c_binary=binary
    )
    assert out["completed"] == 0 and out["errors"] == 20
    assert out["latency"] is None
    assert "200" in out["first_errors"][0]


def test_run_refuses_urls_it_cannot_send() -> None:
    with pytest.raises(SystemExit, match="only http://"):
        loadgen.run("https://10.0.0.1/", rate=1, connections=1, warmup=0, seconds=1)
