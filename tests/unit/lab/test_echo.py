"""Echo server: the pure respond() table, then the asyncio/h11 shell over loopback."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.echo.responses import (
    EchoContext,
    EchoRequest,
    RetryLedger,
    canonical_header_key,
    format_remote,
    log_line,
    parse_go_duration,
    parse_ports,
    respond,
)
from lab.echo.server import EchoServer, context_from_env, ports_from

REPO = Path(__file__).resolve().parents[3]


def req(target: str = "/", *headers: tuple[str, str], method: str = "GET") -> EchoRequest:
    return EchoRequest(
        method=method,
        target=target,
        headers=(("Host", "echo.example"), *headers),
        remote="10.0.0.7:40000",
        local_port=8080,
    )


def body(resp_body: bytes) -> dict[str, object]:
    data = json.loads(resp_body)
    assert isinstance(data, dict)
    return data


# --- pure helpers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("x-foo-bar", "X-Foo-Bar"),
        ("X-FOO-BAR", "X-Foo-Bar"),
        ("content-type", "Content-Type"),
        ("x_foo", "X_foo"),
        ("-x", "-X"),
        ("foo bar", "foo bar"),  # not a token: Go leaves it alone
    ],
)
def test_canonical_header_key_matches_go(raw: str, canonical: str) -> None:
    assert canonical_header_key(raw) == canonical


@given(st.from_regex(r"[A-Za-z0-9\-_]{1,20}", fullmatch=True))
def test_canonical_header_key_ignores_case_and_is_idempotent(name: str) -> None:
    once = canonical_header_key(name)
    assert canonical_header_key(name.swapcase()) == once
    assert canonical_header_key(once) == once


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("2s", 2.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("1m30s", 90.0),
        ("1h2m3.5s", 3723.5),
        ("250us", 250e-6),
        ("250\u00b5s", 250e-6),
        ("10ns", 1e-8),
        ("0", 0.0),
        ("-1s", -1.0),
        ("+3s", 3.0),
    ],
)
def test_parse_go_duration(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "abc", "1x", "s", "1.2.3s", "-", "5 s"])
def test_parse_go_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_go_duration(text)


def test_format_remote_and_log_line() -> None:
    assert format_remote(("10.1.2.3", 5555)) == "10.1.2.3:5555"
    assert format_remote(("::1", 5555, 0, 0)) == "[::1]:5555"
    assert format_remote(None) == ""
    assert log_line(req("/a?b=c")) == (
        "Echoing back request made to /a?b=c to client (10.0.0.7:40000)"
    )


def test_ports_and_context_from_env() -> None:
    assert parse_ports(["8080", "9090,8080", " 7070 "]) == [8080, 9090, 7070]
    assert parse_ports(["0", "0"]) == [0, 0]
    with pytest.raises(ValueError):
        parse_ports(["70000"])
    assert ports_from(["1", "2"], {"ECHO_PORTS": "3"}) == [1, 2]
    assert ports_from(None, {"ECHO_PORTS": "3,4", "HTTP_PORT": "5"}) == [3, 4]
    assert ports_from(None, {"HTTP_PORT": "5"}) == [5]
    assert ports_from(None, {}) == [8080]
    ctx = context_from_env({"POD_NAME": "p1", "NAMESPACE": "ns1", "POD_IP": "10.0.0.9"})
    assert (ctx.pod, ctx.namespace, ctx.pod_ip, ctx.service, ctx.ingress) == (
        "p1",
        "ns1",
        "10.0.0.9",
        "",
        "",
    )


# --- respond(): echo ------------------------------------------------------------------


def test_echo_body_has_conformance_shape() -> None:
    ctx = EchoContext(namespace="ns1", pod="pod-a")
    r = respond(
        req(
            "/some/path?x=1&y=2",
            ("x-foo-bar", "one"),
            ("X-FOO-BAR", "two"),
            ("User-Agent", "t"),
            ("Transfer-Encoding", "chunked"),
        ),
        ctx,
    )
    assert r.status == 200 and r.delay_s == 0
    assert ("Content-Type", "application/json") in r.headers
    assert ("X-Content-Type-Options", "nosniff") in r.headers
    data = body(r.body)
    assert set(data) >= {"path", "host", "method", "proto", "headers", "namespace", "ingress"}
    assert data["path"] == "/some/path?x=1&y=2"
    assert data["host"] == "echo.example"
    assert data["method"] == "GET"
    assert data["proto"] == "HTTP/1.1"
    # Host moves to "host" and Transfer-Encoding is consumed, as in Go's r.Header.
    assert data["headers"] == {"X-Foo-Bar": ["one", "two"], "User-Agent": ["t"]}
    assert (data["namespace"], data["pod"], data["ingress"], data["service"]) == (
        "ns1",
        "pod-a",
        "",
        "",
    )
    assert data["httpPort"] == "8080"


def test_echo_reports_http10_and_absolute_form() -> None:
    r10 = respond(EchoRequest("GET", "/", (), http_version="1.0"), EchoContext())
    assert body(r10.body)["proto"] == "HTTP/1.0"
    assert body(r10.body)["host"] == ""
    absolute = respond(req("http://other.example:81/p?q=1"), EchoContext())
    assert body(absolute.body)["host"] == "other.example:81"
    assert body(absolute.body)["path"] == "http://other.example:81/p?q=1"


def test_echo_json_escapes_html_like_go() -> None:
    r = respond(req("/a?<b>&c"), EchoContext())
    assert b"\\u003cb\\u003e\\u0026c" in r.body
    assert body(r.body)["path"] == "/a?<b>&c"


@pytest.mark.parametrize(("query", "delay"), [("200ms", 0.2), ("2s", 2.0), ("-5s", 0.0)])
def test_delay_is_data(query: str, delay: float) -> None:
    r = respond(req(f"/?delay={query}"), EchoContext())
    assert r.status == 200
    assert r.delay_s == pytest.approx(delay)


@pytest.mark.parametrize("query", ["abc", "10", "61s", "2h"])
def test_bad_or_excessive_delay_is_400(query: str) -> None:
    r = respond(req(f"/?delay={query}"), EchoContext())
    assert r.status == 400
    assert query in str(body(r.body)["message"])
    assert r.delay_s == 0


def test_echo_set_header() -> None:
    r = respond(
        req(
            "/",
            ("X-Echo-Set-Header", "X-Foo: one, x-lower:two"),
            ("X-Echo-Set-Header", "X-Foo:three,Content-Type:text/evil,broken name:x"),
        ),
        EchoContext(),
    )
    headers = dict(r.headers)
    assert headers["X-Foo"] == "one,three"  # repeats joined, as echo-basic does
    assert headers["x-lower"] == "two"  # casing preserved
    assert headers["Content-Type"] == "application/json"  # cannot be overridden
    assert "broken name" not in headers
    assert not any(k == "X-Echo-Set-Header" for k, _ in r.headers)


def test_health() -> None:
    r = respond(req("/health"), EchoContext())
    assert (r.status, r.body) == (200, b"OK")


# --- respond(): /status ---------------------------------------------------------------


@pytest.mark.parametrize("code", [200, 204, 302, 418, 503, 599])
def test_status(code: int) -> None:
    r = respond(req(f"/status/{code}"), EchoContext())
    assert (r.status, r.body, r.informational) == (code, b"", ())


@pytest.mark.parametrize(
    "target",
    ["/status/600", "/status/099", "/status/42", "/status/abc", "/status/200?x=1", "/status/101"],
)
def test_status_invalid_is_400(target: str) -> None:
    r = respond(req(target), EchoContext())
    assert r.status == 400
    assert "message" in body(r.body)


def test_status_1xx_is_interim_then_200_like_go() -> None:
    r = respond(req("/status/103"), EchoContext())
    assert (r.status, r.informational) == (200, (103,))


# --- respond(): /retry ----------------------------------------------------------------


def test_retry_fails_succeed_after_times_then_echoes() -> None:
    ctx = EchoContext()
    target = "/retry/x?uuid=u1&succeedAfter=2"
    assert [respond(req(target), ctx).status for _ in range(4)] == [503, 503, 200, 200]
    ok = respond(req(target), ctx)
    assert body(ok.body)["path"] == target


def test_retry_response_code_and_independent_uuids() -> None:
    ctx = EchoContext()
    a = "/retry?uuid=a&succeedAfter=1&responseCode=500"
    b = "/retry/deep/path?uuid=b&succeedAfter=1&responseCode=502"
    assert respond(req(a), ctx).status == 500
    assert respond(req(b), ctx).status == 502
    assert respond(req(a), ctx).status == 200
    assert respond(req(b), ctx).status == 200
    assert respond(req("/retry?uuid=c&succeedAfter=0"), ctx).status == 200


def test_retry_delays() -> None:
    ctx = EchoContext()
    t = "/retry?uuid=d&succeedAfter=1&delayRetry=100ms&delay=50ms"
    assert respond(req(t), ctx).delay_s == pytest.approx(0.15)
    assert respond(req(t), ctx).delay_s == pytest.approx(0.05)


def test_retry_fail_with_breaks_the_connection_then_echoes() -> None:
    ctx = EchoContext()
    target = "/retry?uuid=f&succeedAfter=2&failWith=reset"
    faults = [respond(req(target), ctx).fault for _ in range(3)]
    assert faults == ["reset", "reset", ""]
    assert respond(req("/retry?uuid=g&succeedAfter=1&failWith=close"), ctx).fault == "close"


@pytest.mark.parametrize(
    "target",
    [
        "/retry?uuid=u&succeedAfter=1&failWith=explode",
        "/retry?succeedAfter=1",
        "/retry?uuid=u",
        "/retry?uuid=u&succeedAfter=x",
        "/retry?uuid=u&succeedAfter=-1",
        "/retry?uuid=u&succeedAfter=1&responseCode=700",
        "/retry?uuid=u&succeedAfter=1&responseCode=abc",
        "/retry?uuid=u&succeedAfter=1&delay=zz",
    ],
)
def test_retry_bad_parameters_are_400(target: str) -> None:
    ctx = EchoContext()
    r = respond(req(target), ctx)
    assert r.status == 400
    assert "message" in body(r.body)
    assert len(ctx.retries) == 0  # a rejected request does not count as an attempt


def test_retry_ledger_is_bounded_lru() -> None:
    ledger = RetryLedger(capacity=2)
    assert [ledger.record("a"), ledger.record("b"), ledger.record("a")] == [1, 1, 2]
    ledger.record("c")  # evicts "b", the least recently used
    assert len(ledger) == 2
    assert ledger.record("b") == 1
    assert ledger.record("a") == 1  # "a" was evicted when "b" came back
    with pytest.raises(ValueError):
        RetryLedger(capacity=0)


@given(st.text(max_size=60), st.lists(st.tuples(st.text(max_size=10), st.text(max_size=20))))
def test_respond_never_raises(target: str, headers: list[tuple[str, str]]) -> None:
    r = respond(EchoRequest("GET", "/" + target, tuple(headers)), EchoContext())
    assert 200 <= r.status <= 599


# --- the server over loopback ---------------------------------------------------------


class RunningEcho:
    def __init__(self, port: int, lines: list[str]) -> None:
        self.port = port
        self.lines = lines

    def conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)

    def raw(self, data: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(data)
            chunks = []
            while chunk := s.recv(65536):  # the server closes: read to EOF
                chunks.append(chunk)
        return b"".join(chunks)


@pytest.fixture
def echo() -> Iterator[RunningEcho]:
    lines: list[str] = []
    loop = asyncio.new_event_loop()
    server = EchoServer(EchoContext(namespace="lab-ns", pod="echo-0"), log=lines.append)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    [port] = asyncio.run_coroutine_threadsafe(server.start([0], "127.0.0.1"), loop).result(5)
    try:
        yield RunningEcho(port, lines)
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_keep_alive_serves_two_requests_on_one_connection(echo: RunningEcho) -> None:
    c = echo.conn()
    c.request("GET", "/first", headers={"x-test": "1"})
    r1 = c.getresponse()
    first = json.loads(r1.read())
    sock = c.sock
    c.request("GET", "/second")
    r2 = c.getresponse()
    second = json.loads(r2.read())
    assert c.sock is sock and sock is not None  # http.client did not reconnect
    assert (r1.status, r2.status) == (200, 200)
    assert first["path"] == "/first" and second["path"] == "/second"
    assert first["headers"]["X-Test"] == ["1"]
    assert first["namespace"] == "lab-ns" and first["pod"] == "echo-0"
    assert r1.getheader("Content-Type") == "application/json"
    assert r1.getheader("X-Content-Type-Options") == "nosniff"
    c.close()
    remotes = {line.rsplit("(", 1)[1] for line in echo.lines if line.startswith("Echoing")}
    assert len(remotes) == 1  # both requests came from the same client socket


def test_chunked_body_is_read_and_discarded(echo: RunningEcho) -> None:
    c = echo.conn()
    c.request("POST", "/upload", body=iter([b"a" * 70000, b"tail"]), encode_chunked=True)
    r = c.getresponse()
    data = json.loads(r.read())
    assert r.status == 200 and data["method"] == "POST"
    assert "Transfer-Encoding" not in data["headers"]
    c.request("PUT", "/sized", body=b"x" * 1000)
    r = c.getresponse()
    assert r.status == 200 and json.loads(r.read())["headers"]["Content-Length"] == ["1000"]
    c.close()


def test_status_over_the_wire(echo: RunningEcho) -> None:
    c = echo.conn()
    c.request("GET", "/status/418")
    r = c.getresponse()
    assert (r.status, r.reason, r.read()) == (418, "I'm a Teapot", b"")
    c.request("GET", "/status/204")
    r = c.getresponse()
    assert (r.status, r.read()) == (204, b"")
    c.close()


def test_delay_waits_before_answering(echo: RunningEcho) -> None:
    c = echo.conn()
    start = time.monotonic()
    c.request("GET", "/?delay=200ms")
    r = c.getresponse()
    r.read()
    assert r.status == 200
    assert time.monotonic() - start >= 0.2
    c.close()


def test_echo_set_header_over_the_wire(echo: RunningEcho) -> None:
    c = echo.conn()
    c.request("GET", "/", headers={"X-Echo-Set-Header": "X-Header-Set: foo, X-Other:bar"})
    r = c.getresponse()
    r.read()
    assert r.getheader("X-Header-Set") == "foo"
    assert r.getheader("X-Other") == "bar"
    c.close()


def test_retry_sequence_over_the_wire(echo: RunningEcho) -> None:
    c = echo.conn()
    codes = []
    for _ in range(3):
        c.request("GET", "/retry/seq?uuid=abc-123&succeedAfter=2&responseCode=500")
        r = c.getresponse()
        r.read()
        codes.append(r.status)
    assert codes == [500, 500, 200]
    c.close()


def test_malformed_request_gets_400_and_close(echo: RunningEcho) -> None:
    reply = echo.raw(b"NOT A VALID REQUEST LINE\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"connection: close" in reply.lower()
    # Missing Host on HTTP/1.1, and a broken chunk size, are malformed too.
    assert echo.raw(b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    bad_chunk = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    assert echo.raw(bad_chunk).startswith(b"HTTP/1.1 400 ")


def test_oversized_head_gets_431(echo: RunningEcho) -> None:
    huge = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 300_000 + b"\r\n\r\n"
    assert echo.raw(huge).startswith(b"HTTP/1.1 431 ")


def test_http10_and_expect_continue(echo: RunningEcho) -> None:
    reply = echo.raw(b"GET /old HTTP/1.0\r\n\r\n")  # the server must close after it
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["proto"] == "HTTP/1.0"
    with socket.create_connection(("127.0.0.1", echo.port), timeout=5) as s:
        s.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n")
        s.sendall(b"abc")
        assert s.recv(100).startswith(b"HTTP/1.1 200 OK\r\n")


def test_status_1xx_sends_interim_then_final(echo: RunningEcho) -> None:
    reply = echo.raw(b"GET /status/103 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\n")


def test_log_line_per_request(echo: RunningEcho) -> None:
    c = echo.conn()
    c.request("GET", "/logged?q=1")
    c.getresponse().read()
    local = c.sock.getsockname() if c.sock else None
    c.close()
    assert local is not None
    expected = f"Echoing back request made to /logged?q=1 to client (127.0.0.1:{local[1]})"
    assert expected in echo.lines


def test_log_goes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    async def run() -> int:
        server = EchoServer(EchoContext())  # default sink: stdout, flushed
        [port] = await server.start([0], "127.0.0.1")

        def get() -> int:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/to-stdout")
            status = c.getresponse().status
            c.close()
            return status

        try:
            return await asyncio.to_thread(get)
        finally:
            await server.close()

    assert asyncio.run(run()) == 200
    out = capsys.readouterr().out
    assert "Starting server, listening on port" in out
    assert "Echoing back request made to /to-stdout to client (127.0.0.1:" in out


def test_close_drops_idle_keep_alive_promptly() -> None:
    async def run() -> float:
        server = EchoServer(EchoContext(), log=lambda _: None)
        [port] = await server.start([0], "127.0.0.1")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
        start = time.monotonic()
        await server.close()
        elapsed = time.monotonic() - start
        writer.close()
        return elapsed

    assert asyncio.run(run()) < 2.0


@pytest.mark.timeout(30)
def test_cli_serves_several_ports_and_exits_on_sigterm() -> None:
    env = {**os.environ, "POD_NAME": "cli-pod", "NAMESPACE": "cli-ns", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lab.echo.server",
            "--address",
            "127.0.0.1",
            "--port",
            "0",
            "--port",
            "0",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ports = []
        for _ in range(2):
            line = proc.stdout.readline()
            assert line.startswith("Starting server, listening on port "), line
            ports.append(int(line.split()[-2]))
        for port in ports:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/cli")
            data = json.loads(c.getresponse().read())
            c.close()
            assert (data["pod"], data["namespace"], data["httpPort"]) == (
                "cli-pod",
                "cli-ns",
                str(port),
            )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("target", ["//[", "//[?delay=1s", "http://[/x", "//[::1/x?a=b"])
def test_a_target_urlsplit_cannot_read_is_answered(target: str) -> None:
    # urlsplit raises "Invalid IPv6 URL" on these; the echo server answers instead of failing.
    r = respond(EchoRequest("GET", target, ()), EchoContext())
    assert 200 <= r.status <= 599


@pytest.mark.parametrize(
    ("fault", "seen"),
    [("reset", b""), ("close", b""), ("garbage", b"NOT-HTTP garbage\r\n\r\n")],
)
def test_fail_with_ends_the_connection_without_a_response(
    echo: RunningEcho, fault: str, seen: bytes
) -> None:
    request = f"GET /retry?uuid={fault}&succeedAfter=1&failWith={fault} HTTP/1.1\r\nHost: a\r\n\r\n"
    try:
        got = echo.raw(request.encode())
    except ConnectionResetError:
        got = b"RST"
    assert got == (b"RST" if fault == "reset" else seen)
    # the attempt after the failures is the echo
    again = echo.raw(request.replace("HTTP/1.1\r\n", "HTTP/1.1\r\nConnection: close\r\n").encode())
    assert again.startswith(b"HTTP/1.1 200 ")

