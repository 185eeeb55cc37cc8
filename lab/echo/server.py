"""The lab's built-in echo server: asyncio + h11 around the pure ``echo_http.respond``.

The lab kubelet runs this in every pod that has no ``command``:

    python -m lab.echo.server [--port 8080 --port 9090] [--address 0.0.0.0]

Configuration: ``POD_NAME``, ``NAMESPACE``, ``POD_IP``, ``SERVICE_NAME``, ``INGRESS_NAME``
describe where it runs; ports come from ``--port`` (repeatable, comma lists allowed),
else ``ECHO_PORTS`` (comma list), else ``HTTP_PORT`` (echo-basic's variable), else 8080.
SIGTERM/SIGINT stop listening, let in-flight requests finish for a short grace period,
then exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import struct
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

import h11

from lab.echo.responses import (
    EchoContext,
    EchoRequest,
    EchoResponse,
    error_response,
    format_remote,
    log_line,
    parse_ports,
    respond,
)

DEFAULT_PORT = 8080
READ_SIZE = 64 * 1024
# Idle keep-alive connections are dropped after this; pods get short-lived test clients.
IDLE_TIMEOUT_S = 120.0
# How long SIGTERM waits for in-flight requests (e.g. a ?delay=) before cutting them off.
SHUTDOWN_GRACE_S = 5.0
# h11's limit on a request head (checked per read, so the real bound is this plus
# READ_SIZE); larger heads are answered 431, as Go does above its 1 MB limit.
MAX_HEAD_BYTES = 64 * 1024
# Lingering close after an error response: bounded in time and bytes.
LINGER_S = 1.0
LINGER_MAX_BYTES = 1024 * 1024

LogSink = Callable[[str], None]


def stdout_log(line: str) -> None:
    """Print one line to stdout and flush, so `kubectl logs`-style readers see it at once."""
    with contextlib.suppress(OSError, ValueError):  # a closed stdout must not kill the server
        print(line, flush=True)


@dataclass
class _Conn:
    task: asyncio.Task[None]
    busy: bool = False  # between a request head and the end of its response


class _Closed(Exception):
    """The peer went away or stayed idle too long; just close the socket."""


class EchoServer:
    """Listens on several ports and answers each request with ``respond``."""

    def __init__(
        self,
        ctx: EchoContext,
        *,
        log: LogSink = stdout_log,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        shutdown_grace_s: float = SHUTDOWN_GRACE_S,
    ) -> None:
        self.ctx = ctx
        self._log = log
        self._idle_timeout_s = idle_timeout_s
        self._grace_s = shutdown_grace_s
        self._servers: list[asyncio.Server] = []
        self._conns: dict[asyncio.Task[None], _Conn] = {}
        self.ports: list[int] = []

    async def start(self, ports: Iterable[int], address: str) -> list[int]:
        """Bind every port (0 picks a free one) and return the bound port numbers."""
        try:
            for port in ports:
                server = await asyncio.start_server(
                    self._handle, host=address, port=port, reuse_address=True
                )
                self._servers.append(server)
                bound = int(server.sockets[0].getsockname()[1])
                self.ports.append(bound)
                self._log(f"Starting server, listening on port {bound} (http)")
        except BaseException:
            await self.close()
            raise
        return list(self.ports)

    async def close(self) -> None:
        """Stop accepting, drop idle connections, give busy ones a grace period."""
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        for conn in list(self._conns.values()):
            if not conn.busy:
                conn.task.cancel()
        pending = [c.task for c in self._conns.values()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=self._grace_s)
            for task in still:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        conn = _Conn(task)
        self._conns[task] = conn
        try:
            await self._serve_connection(reader, writer, conn)
        except (_Closed, ConnectionError, asyncio.CancelledError):
            pass
        except Exception as exc:  # never let one connection take the server down
            self._log(f"echo: connection error: {exc!r}")
        finally:
            del self._conns[task]
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: _Conn
    ) -> None:
        h = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        remote = format_remote(writer.get_extra_info("peername"))
        sockname = writer.get_extra_info("sockname")
        local_port = int(sockname[1]) if sockname else 0
        while True:
            try:
                event = await self._next_event(h, reader)
                if isinstance(event, h11.ConnectionClosed):
                    return
                if not isinstance(event, h11.Request):
                    raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}")
                conn.busy = True
                request = to_echo_request(event, remote, local_port)
                self._log(log_line(request))
                await self._discard_body(h, reader, writer)
            except h11.RemoteProtocolError as exc:
                # Malformed request: answer 400 (431 for an oversized head) and close.
                await self._send_error(h, writer, exc)
                await _linger(reader, writer)
                return
            response = respond(request, self.ctx)
            if response.delay_s > 0:
                await asyncio.sleep(response.delay_s)
            if response.fault:
                await _break(writer, response.fault)
                return
            await self._send(h, writer, response, head_only=event.method == b"HEAD")
            conn.busy = False
            if h.our_state is not h11.DONE or h.their_state is not h11.DONE:
                return  # Connection: close, HTTP/1.0, or a half-closed peer
            h.start_next_cycle()

    async def _next_event(self, h: h11.Connection, reader: asyncio.StreamReader) -> object:
        while True:
            event = h.next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                data = await asyncio.wait_for(reader.read(READ_SIZE), self._idle_timeout_s)
            except TimeoutError:
                raise _Closed from None
            h.receive_data(data)  # b"" tells h11 about EOF

    async def _discard_body(
        self, h: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if h.they_are_waiting_for_100_continue:
            continue_ = h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
            await self._write(writer, h.send(continue_))
        while True:
            event = await self._next_event(h, reader)
            if isinstance(event, h11.EndOfMessage):
                return
            if isinstance(event, h11.ConnectionClosed):
                raise _Closed
            # h11.Data: read and dropped, chunked or not.

    async def _send(
        self,
        h: h11.Connection,
        writer: asyncio.StreamWriter,
        response: EchoResponse,
        *,
        head_only: bool = False,
    ) -> None:
        out = bytearray()
        for code in response.informational:
            interim = h11.InformationalResponse(status_code=code, headers=[], reason=_reason(code))
            out += h.send(interim)
        headers = [(name.encode(), value.encode()) for name, value in response.headers]
        headers.append((b"Date", formatdate(usegmt=True).encode()))
        if response.status not in (204, 304):
            headers.append((b"Content-Length", str(len(response.body)).encode()))
        try:
            head = h11.Response(
                status_code=response.status, headers=headers, reason=_reason(response.status)
            )
            out += h.send(head)
        except h11.LocalProtocolError as exc:
            # A header the echo logic let through that h11 will not emit: report it.
            fallback = error_response(500, f"cannot send response: {exc}")
            await self._send(h, writer, fallback, head_only=head_only)
            return
        if response.body and not head_only and response.status not in (204, 304):
            out += h.send(h11.Data(data=response.body))
        out += h.send(h11.EndOfMessage())
        await self._write(writer, bytes(out))

    async def _send_error(
        self, h: h11.Connection, writer: asyncio.StreamWriter, exc: h11.RemoteProtocolError
    ) -> None:
        if h.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return  # already mid-response; closing is all that is left
        status = exc.error_status_hint if 400 <= exc.error_status_hint < 500 else 400
        body = error_response(status, f"malformed request: {exc}").body
        headers = [
            (b"Content-Type", b"application/json"),
            (b"Content-Length", str(len(body)).encode()),
            (b"Connection", b"close"),
        ]
        with contextlib.suppress(h11.LocalProtocolError):
            data = h.send(h11.Response(status_code=status, headers=headers, reason=_reason(status)))
            data += h.send(h11.Data(data=body)) + h.send(h11.EndOfMessage())
            await self._write(writer, data)

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, data: bytes | None) -> None:
        if data:
            writer.write(data)
            await writer.drain()


async def _break(writer: asyncio.StreamWriter, fault: str) -> None:
    """End the connection without a response: ``reset`` (RST, by a zero linger), ``close``
    (FIN, nothing sent) or ``garbage`` (a line no HTTP client parses as a status line)."""
    with contextlib.suppress(OSError, RuntimeError):
        if fault == "reset":
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        if fault == "garbage":
            writer.write(b"NOT-HTTP garbage\r\n\r\n")
            await writer.drain()
        writer.close()
        await writer.wait_closed()


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # Closing with unread request bytes makes the kernel send RST, which can destroy the
    # error response before the client reads it. Half-close and drain briefly instead.
    with contextlib.suppress(OSError, RuntimeError):
        if writer.can_write_eof():
            writer.write_eof()
    deadline = asyncio.get_running_loop().time() + LINGER_S
    drained = 0
    with contextlib.suppress(OSError, TimeoutError):
        while drained < LINGER_MAX_BYTES:
            left = deadline - asyncio.get_running_loop().time()
            chunk = await asyncio.wait_for(reader.read(READ_SIZE), max(left, 0))
            if not chunk:
                return
            drained += len(chunk)


def _reason(code: int) -> bytes:
    # h11 sends an empty reason phrase by default; Go (and most clients' logs) expect one.
    try:
        return HTTPStatus(code).phrase.encode()
    except ValueError:
        return b""


def to_echo_request(event: h11.Request, remote: str, local_port: int) -> EchoRequest:
    """Translate an h11 request head into the echo logic's request type."""

    def text(raw: bytes) -> str:
        return raw.decode("utf-8", errors="replace")

    return EchoRequest(
        method=text(event.method),
        target=text(event.target),
        # raw_items() keeps the client's header-name casing (Go canonicalises anyway).
        headers=tuple((text(k), text(v)) for k, v in event.headers.raw_items()),
        http_version=text(event.http_version),
        remote=remote,
        local_port=local_port,
    )


async def serve(
    ports: Sequence[int],
    address: str,
    ctx: EchoContext,
    *,
    stop: asyncio.Event | None = None,
    log: LogSink = stdout_log,
) -> None:
    """Serve until ``stop`` is set (or the task is cancelled), then shut down gracefully."""
    server = EchoServer(ctx, log=log)
    await server.start(ports, address)
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await server.close()


def context_from_env(env: os._Environ[str] | dict[str, str] = os.environ) -> EchoContext:
    return EchoContext(
        # POD_NAMESPACE is the downward-API name many manifests use for the same thing.
        namespace=env.get("NAMESPACE") or env.get("POD_NAMESPACE", ""),
        pod=env.get("POD_NAME", ""),
        pod_ip=env.get("POD_IP", ""),
        service=env.get("SERVICE_NAME", ""),
        ingress=env.get("INGRESS_NAME", ""),
    )


def ports_from(cli: Sequence[str] | None, env: os._Environ[str] | dict[str, str]) -> list[int]:
    for source in (cli, [env.get("ECHO_PORTS", "")], [env.get("HTTP_PORT", "")]):
        ports = parse_ports(source or [])
        if ports:
            return ports
    return [DEFAULT_PORT]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lab.echo.server",
        description="Gateway API conformance-compatible HTTP echo server for lab pods.",
    )
    parser.add_argument(
        "--port",
        action="append",
        metavar="PORT[,PORT...]",
        help="port to listen on; repeatable (default: $ECHO_PORTS, $HTTP_PORT or 8080)",
    )
    parser.add_argument("--address", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    args = parser.parse_args(argv)
    try:
        ports = ports_from(args.port, os.environ)
    except ValueError as exc:
        parser.error(f"invalid port: {exc}")
    ctx = context_from_env()
    try:
        asyncio.run(_run(ports, args.address, ctx))
    except OSError as exc:
        print(
            f"echo: cannot listen on {args.address} ports {ports}: {exc}; "
            "pick free ports with --port or ECHO_PORTS",
            file=sys.stderr,
        )
        return 1
    return 0


async def _run(ports: Sequence[int], address: str, ctx: EchoContext) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(ports, address, ctx, stop=stop)


if __name__ == "__main__":
    sys.exit(main())
