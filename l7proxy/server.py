"""The waypoint server: listening sockets, connection limits and timers, worker
processes. The only module that creates listening sockets; upstream connections are
opened by ``upstream.Connector``.

In process (tests, the agent)::

    server = WaypointServer(config, flow_sink=ring.put_many)
    await server.start()                # binds config.listeners; server.ports has them
    server.update(tables=new_tables, endpoints=new_resolver)
    await server.close()

As a program: ``python -m l7proxy --config FILE --listen 127.0.0.1:15001 --workers N``
(``run_workers``): N processes, each with its own SO_REUSEPORT socket and event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import random
import resource
import signal
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, cast

from gatewayapi import RouteTables
from l7proxy.config import EndpointResolver, ListenerConfig, WaypointConfig
from l7proxy.flows import CountingSink, FlowRecorder, Sink, json_lines_sink, now_ns
from l7proxy.h1 import Http1Connection
from l7proxy.http.wire import error_response
from l7proxy.listenfds import HeldListeners
from l7proxy.metrics import WaypointMetrics
from l7proxy.proxy import Proxy
from l7proxy.resilience.params import BackendParams
from l7proxy.tls import CertificatePair, SecretKey, TlsTerminator
from l7proxy.upstream import Connector

if TYPE_CHECKING:
    from l7proxy.h2 import H2Frontend

OVERLOADED = error_response(503, "waypoint overloaded: too many connections")
BACKLOG = 1024
FD_RESERVE = 256
"""Descriptors beyond two per client connection (its socket and one upstream): listeners,
idle pooled and h2 upstream connections, the event loop, logs and flow sockets."""

log = logging.getLogger("tulle.waypoint")


def raise_fd_limit(
    max_connections: int,
    *,
    get: Callable[[int], tuple[int, int]] = resource.getrlimit,
    set_: Callable[[int, tuple[int, int]], None] = resource.setrlimit,
) -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard one (or, when unlimited, to what
    ``max_connections`` needs), so the connection cap is reachable rather than failing
    accept() with EMFILE first. Logs when that is not possible; returns the soft limit."""
    needed = 2 * max_connections + FD_RESERVE
    soft, hard = get(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft != resource.RLIM_INFINITY and target > soft:
        try:
            set_(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning(
                "waypoint: cannot raise the open-file limit from %d to %d: %s", soft, target, exc
            )
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning(
            "waypoint: the open-file limit is %d but %d connections need about %d; "
            "raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower max_connections",
            soft,
            max_connections,
            needed,
        )
    return soft


def listening_socket(host: str, port: int, *, reuse_port: bool = True) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio sets NODELAY
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _Rejected(asyncio.Protocol):
    """A connection over the limit: answer 503 and close, holding nothing."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).write(OVERLOADED)
        transport.close()


class WaypointServer:
    def __init__(
        self,
        config: WaypointConfig,
        *,
        flow_sink: Sink | None = None,
        connector: Connector | None = None,
        rng: Callable[[], float] | None = None,
        enable_h2: bool = True,
    ) -> None:
        self.config = config
        self.flows = FlowRecorder(flow_sink, node_name=config.node_name)
        self.proxy = Proxy(config, connector=connector, flows=self.flows, rng=rng or random.random)
        self.metrics: WaypointMetrics = self.proxy.metrics
        self.tls = TlsTerminator(self.flows, handshake_timeout=config.limits.header_timeout)
        self.tls.update(config.tables.listeners, config.certificates)
        self.metrics.registry.register(self.tls.metrics)
        self.connections: set[Http1Connection] = set()
        self.ports: list[int] = []
        self.h2_factory: Callable[[Http1Connection], H2Frontend] | None = None
        if enable_h2:
            from l7proxy.h2 import H2Frontend
            from l7proxy.h2up import H2Upstreams

            self.proxy.h2 = H2Upstreams(self.proxy.connector)
            self.metrics.registry.register(self.proxy.h2.stats)
            self.h2_factory = lambda conn: H2Frontend(conn)
        self._servers: list[asyncio.base_events.Server] = []
        self._sweeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    async def start(
        self, *, reuse_port: bool = True, held: HeldListeners | None = None
    ) -> list[int]:
        """Bind every listener, or take it from ``held`` (l7proxy.listenfds); returns the
        bound ports (0 in the config picks one)."""
        self._loop = asyncio.get_running_loop()
        raise_fd_limit(self.config.limits.max_connections)
        try:
            for listener in self.config.listeners:
                sock = (held.take(listener.host, listener.port) if held else None) or (
                    listening_socket(listener.host, listener.port, reuse_port=reuse_port)
                )
                server = await self._loop.create_server(self._factory(listener), sock=sock)
                self._servers.append(server)
                self.ports.append(sock.getsockname()[1])
        except BaseException:
            await self.close()
            raise
        self._sweeper = self._loop.create_task(self._sweep())
        return list(self.ports)

    def _factory(self, listener: ListenerConfig) -> Callable[[], asyncio.Protocol]:
        limit = self.config.limits.max_connections
        metrics = self.metrics

        def protocol() -> asyncio.Protocol:
            if len(self.connections) >= limit:
                metrics.rejected_connections += 1
                return _Rejected()
            return Http1Connection(self, listener.parent)

        return protocol

    def update(
        self,
        tables: RouteTables | None = None,
        endpoints: EndpointResolver | None = None,
        certificates: Mapping[SecretKey, CertificatePair] | None = None,
        backend_params: Mapping[tuple[str, str], BackendParams] | None = None,
    ) -> None:
        """New route tables, endpoints, TLS Secrets and/or BackendTrafficPolicy parameters,
        effective for the next request (and the next handshake)."""
        self.proxy.update(tables, endpoints, backend_params)
        if certificates is not None:
            self.config.certificates = certificates
        if tables is not None or certificates is not None:
            self.tls.update(self.proxy.tables.listeners, self.config.certificates)

    async def _sweep(self) -> None:
        limits = self.config.limits
        timers = (
            limits.header_timeout,
            limits.idle_timeout,
            limits.body_idle_timeout,
            limits.write_timeout,
        )
        tick = max(0.05, min(1.0, *(t / 4 for t in timers)))
        while True:
            await asyncio.sleep(tick)
            now = self.loop.time()
            self.metrics.connections = len(self.connections)
            for conn in list(self.connections):
                conn.check(now, limits.header_timeout, limits.idle_timeout)
            self.proxy.pool.expire(now)
            if self.proxy.h2 is not None:
                self.proxy.h2.expire(now, limits.upstream_idle_timeout)  # type: ignore[attr-defined]

    def record_error(self, conn: Http1Connection, status: int) -> None:
        """A request refused by the parser or a timer: counted, and a DROPPED flow."""
        self.metrics.observe("", "", status, 0.0)
        if self.flows.enabled:
            self.flows.record(
                (
                    now_ns(),
                    0,
                    status,
                    "",
                    "",
                    "HTTP/1.1",
                    "",
                    "",
                    "",
                    "MALFORMED_REQUEST" if status != 408 else "REQUEST_TIMEOUT",
                    conn.client,
                    conn.local_addr,
                    "",
                    None,
                    None,
                    None,
                    None,
                )
            )

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for server in self._servers:
            server.close()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()
        self.proxy.pool.close()
        if self.proxy.h2 is not None:
            self.proxy.h2.close()  # type: ignore[attr-defined]
        self.flows.flush()


# --- running as a program ------------------------------------------------------------


def new_event_loop(kind: str = "auto") -> asyncio.AbstractEventLoop:
    """``uvloop`` when asked for (or "auto" and installed), else asyncio's default."""
    if kind in ("auto", "uvloop"):
        try:
            import uvloop

            return uvloop.new_event_loop()
        except ImportError:
            if kind == "uvloop":
                raise
    return asyncio.new_event_loop()


async def serve(
    config: WaypointConfig,
    *,
    worker: int = 0,
    flow_sink: Sink | None = None,
    ready: Callable[[list[int]], None] | None = None,
) -> None:
    server = WaypointServer(config, flow_sink=flow_sink)
    await server.start()
    if config.metrics is not None:
        host, port = config.metrics
        server.metrics.serve(host, port + worker if port else 0)
    if ready is not None:
        ready(server.ports)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await server.close()


def flow_sink_for(kind: str) -> Sink | None:
    """The sink for ``--flows``: off, count (benchmarks), stdout (JSON lines) or
    ``unix:PATH`` (the agent's L7 flow intake socket)."""
    if kind == "count":
        return CountingSink()
    if kind.startswith("unix:"):
        from pathlib import Path

        from agent.flows.l7intake import FlowForwarder

        return FlowForwarder(Path(kind.removeprefix("unix:")))
    if kind == "stdout":
        return json_lines_sink(lambda text: (sys.stdout.write(text), sys.stdout.flush()))
    return None


def run_worker(
    config: WaypointConfig, worker: int = 0, loop_kind: str = "auto", flows: str = "off"
) -> None:
    loop = new_event_loop(loop_kind)
    # A stop that arrives while the worker is still starting ends it cleanly, not by the
    # default disposition (run_workers forks with the stop signals blocked until here).
    for signum in _STOP_SIGNALS:
        signal.signal(signum, _exit_cleanly)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    try:
        loop.run_until_complete(serve(config, worker=worker, flow_sink=flow_sink_for(flows)))
    finally:
        loop.close()


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def run_workers(
    config: WaypointConfig, workers: int, loop_kind: str = "auto", *, flows: str = "off"
) -> int:
    """Run ``workers`` processes sharing the listen addresses through SO_REUSEPORT."""
    if workers <= 1:
        run_worker(config, 0, loop_kind, flows)
        return 0
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(target=run_worker, args=(config, i, loop_kind, flows), name=f"waypoint-{i}")
        for i in range(workers)
    ]

    def forward(signum: int, _frame: object) -> None:
        for proc in procs:
            if proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signum)

    # Block the stop signals across the forks: a SIGTERM before the handlers below exist
    # would otherwise kill a starting worker (exit -15) or this process.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        for proc in procs:
            proc.start()

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    code = 0
    for proc in procs:
        proc.join()
        code = code or (proc.exitcode or 0)
    return code


def describe(listeners: Sequence[ListenerConfig]) -> str:
    return ", ".join(f"{entry.host}:{entry.port}" for entry in listeners)
