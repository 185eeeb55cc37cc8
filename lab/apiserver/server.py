"""HTTPS transport: a threading HTTP/1.1 server on loopback that hands requests to ``Api``.

One thread per connection keeps watches simple (each holds its thread while it streams);
the lab has a handful of clients. Watches are written with chunked transfer encoding.
"""

from __future__ import annotations

import json
import select
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from lab.apiserver.app import Api, Request, Response
from lab.apiserver.errors import status_object
from lab.apiserver.netns import in_netns

MAX_BODY = 3 * 1024 * 1024  # the Kubernetes API server's request body limit
MAX_CONNECTIONS = 512
"""Open connections per listener; more are closed at accept (each holds a thread: without a
cap, a client opening connections without end exhausts threads and memory)."""
REQUEST_TIMEOUT = 32.0
"""Seconds from a request's first byte (or a connection's TLS handshake) until its line,
headers and body have all arrived (kube-apiserver's ReadHeaderTimeout is 32 s): a socket
timeout bounds each read only, so a client sending a byte at a time would hold its
connection for ever."""


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.server.verbose:
            super().log_message(format, *args)

    def _fail(self, code: int, reason: str, message: str) -> None:
        self._send(Response(code, status_object(code, reason, message)))
        self.close_connection = True

    def _serve(self) -> None:
        if self.server.api.stopping.is_set():
            # A stopped server must not keep answering on kept-alive connections (a client
            # would never notice the restart and watch a server that no longer streams).
            self._fail(503, "ServiceUnavailable", "the API server is shutting down")
            return
        url = urlsplit(self.path)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._fail(400, "BadRequest", "Content-Length must be a non-negative integer")
            return
        if length > MAX_BODY:
            self._fail(413, "RequestEntityTooLarge", f"request body over {MAX_BODY} bytes")
            return
        if self.headers.get("Transfer-Encoding", "identity").lower() != "identity":
            # Read as no body, its chunks would be taken for the next request.
            self._fail(411, "LengthRequired", "send the request body with a Content-Length")
            return
        body = self.rfile.read(length) if length else b""
        self.server.deadlines.end(self.connection)  # all in: a watch may now take its time
        if len(body) < length:
            self.close_connection = True  # the client went away mid-body (or too slowly)
            return
        request = Request(
            self.command,
            url.path,
            dict(parse_qsl(url.query, keep_blank_values=True)),
            _headers(self.headers.items()),
            body,
        )
        self._send(self.server.api.handle(request))
        if self.server.api.stopping.is_set():
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def handle_one_request(self) -> None:
        # An idle keep-alive connection waits for its next request under the socket's
        # idle timeout; from the first byte on, the request must arrive in full in time.
        try:
            if not self.rfile.peek(1):  # type: ignore[attr-defined]
                self.close_connection = True
                return
        except OSError:
            self.close_connection = True
            return
        self.server.deadlines.begin(self.connection)
        try:
            super().handle_one_request()
        finally:
            self.server.deadlines.end(self.connection)

    def _send(self, response: Response) -> None:
        if response.stream is not None:
            self._stream(response)
            return
        payload = response.body if isinstance(response.body, bytes) else _dumps(response.body)
        self.send_response(response.status)
        headers = {"Cache-Control": "no-cache, private", **response.headers}
        if response.status == 304:
            # No body, and no headers describing one: a client's cache merges a 304's headers
            # into the response it holds (a Content-Length of 0 would contradict its body).
            payload = b""
        else:
            headers["Content-Type"] = response.content_type
            headers["Content-Length"] = str(len(payload))
        for name, value in headers.items():
            self.send_header(name, value)
        for warning in response.warnings:
            self.send_header("Warning", '299 - "{}"'.format(warning.replace('"', '\\"')))
        self.end_headers()
        self.wfile.write(payload)

    def _stream(self, response: Response) -> None:
        assert response.stream is not None
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.flush()
        try:
            for event in response.stream:
                if event is None:
                    if self._client_gone():
                        break
                    continue
                line = _dumps(event) + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True
        finally:
            close = getattr(response.stream, "close", None)
            if close is not None:
                close()

    def _client_gone(self) -> bool:
        return peer_sent(self.connection)


def peer_sent(conn: socket.socket) -> bool:
    """During a watch the client sends nothing: anything readable is its FIN (or TLS
    close_notify), so the stream ends instead of polling for a client that left. poll(),
    not select(): an idle lab's API server holds over a thousand descriptors (each watch
    has its socket and two SQLite connections), and select() refuses any numbered 1024 or
    above, which ended those watches with a ValueError at their first heartbeat."""
    poller = select.poll()
    poller.register(conn, select.POLLIN | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(0))


class _Deadlines:
    """Cuts off connections whose request (or TLS handshake) has not arrived in full by its
    deadline; one thread for all of a listener's connections."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._due: dict[int, tuple[float, socket.socket]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="apiserver-deadlines", daemon=True)
        self._thread.start()

    def begin(self, sock: socket.socket) -> None:
        with self._lock:
            self._due[id(sock)] = (time.monotonic() + self.seconds, sock)

    def end(self, sock: socket.socket) -> None:
        with self._lock:
            self._due.pop(id(sock), None)

    def close(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(min(1.0, self.seconds / 4)):
            now = time.monotonic()
            with self._lock:
                late = [key for key, (due, _) in self._due.items() if due <= now]
                socks = [self._due.pop(key)[1] for key in late]
            for sock in socks:
                try:  # the plain socket's shutdown: the blocked read returns, the handler ends
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        api: Api,
        tls: ssl.SSLContext | None,
        verbose: bool,
        idle_timeout: float,
        limits: Limits,
    ) -> None:
        self.api = api
        self.idle_timeout = idle_timeout
        self.tls = tls
        self.verbose = verbose
        self.deadlines = _Deadlines(limits.request_timeout)
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # over the cap: closed now, costing no thread
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A connection cut (by its client, or by a deadline) is no server error.
        if not isinstance(sys.exc_info()[1], OSError) or self.verbose:
            super().handle_error(request, client_address)

    def server_close(self) -> None:
        self.deadlines.close()
        super().server_close()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        # Headers and body go out in separate writes: without this, Nagle's algorithm and
        # delayed ACKs add 40 ms to every response.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is None:
            return sock, addr
        sock.settimeout(10)  # bound the handshake; the handler thread does it
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            self.deadlines.begin(request)
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError):
                return
            finally:
                self.deadlines.end(request)
        # An idle or stalled client (a half-sent request, a keep-alive never reused) gives
        # its thread back after idle_timeout; watches only write, so they are unaffected.
        request.settimeout(self.idle_timeout)
        super().finish_request(request, client_address)


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


@dataclass(frozen=True, slots=True)
class Limits:
    max_connections: int = MAX_CONNECTIONS
    request_timeout: float = REQUEST_TIMEOUT


class ApiServer:
    """Serve ``api`` on 127.0.0.1:``port`` (0 picks one) in a background thread."""

    def __init__(
        self,
        api: Api,
        tls: ssl.SSLContext | None,
        port: int = 0,
        *,
        verbose: bool = False,
        idle_timeout: float = 300.0,
        limits: Limits | None = None,
    ) -> None:
        self.api = api
        self._tls, self._verbose, self._idle_timeout = tls, verbose, idle_timeout
        self._limits = limits or Limits()
        self._server = _Server(("127.0.0.1", port), api, tls, verbose, idle_timeout, self._limits)
        self._others: list[tuple[_Server, threading.Thread]] = []
        self.port = self._server.server_address[1]
        api.server_address = f"127.0.0.1:{self.port}"
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="apiserver", daemon=True
        )

    def listen_also(self, host: str, port: int, netns: str | None = None) -> str:
        """Serve the same API on ``host:port`` too, inside network namespace ``netns`` if given
        (the lab's fabric, so node namespaces reach it with no route in the root namespace).
        Returns its URL."""

        def make() -> _Server:
            return _Server(
                (host, port), self.api, self._tls, self._verbose, self._idle_timeout, self._limits
            )

        server = in_netns(netns, make) if netns else make()
        thread = threading.Thread(
            target=server.serve_forever, name=f"apiserver-{host}", daemon=True
        )
        thread.start()
        self._others.append((server, thread))
        return f"{'https' if self._tls else 'http'}://{host}:{server.server_address[1]}"

    def start(self) -> ApiServer:
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self.api.stopping.set()
        self.api.store.commits.wake_all()  # watches waiting for a write see the stop now
        for server, _ in self._others:
            server.shutdown()
            server.server_close()
        self._server.shutdown()
        self._server.server_close()


def _headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-case names; a repeated header's values joined by a newline, which no header
    value can hold (``Request.header_values`` splits them again)."""
    out: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        out[key] = f"{out[key]}\n{value}" if key in out else value
    return out
