"""The lab's per-node cluster DNS: Kubernetes-style names answered from a frozen table.

Each lab node runs one of these (NodeLocal-DNS style, e.g. on 169.254.20.10:53 inside the
node's netns). Its owner builds a ``DnsTable`` from the store and hands the server a
``table_provider`` callable, so swapping in a new table is a single reference assignment
and every query sees one consistent snapshot.

Names served (``<domain>`` defaults to ``cluster.local``; TTL 5 s, case-insensitive):

* ``svc.ns.svc.<domain>`` A/AAAA: the ClusterIP(s), or the ready endpoint IPs when headless
* ``<a-b-c-d>.svc.ns.svc.<domain>``: one name per headless endpoint (the SRV targets)
* ``_port._proto.svc.ns.svc.<domain>`` SRV: one per named port
* ``a-b-c-d.ns.pod.<domain>`` A/AAAA: pods known to the table
* other names inside the domain: NXDOMAIN, or NODATA if the name exists (another type, or
  an empty non-terminal such as ``ns.svc.<domain>``); names outside the domain: REFUSED,
  since the lab has no upstream resolver to forward to.

Search-path expansion stays with the client (``resolv_conf``). The pure part is
``DnsTable.build``, ``answer`` and ``answer_wire`` (in ``lab.dns.table``, re-exported
here); ``DnsServer`` only moves bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections import Counter
from collections.abc import Callable

from lab.dns.table import (
    DEFAULT_DOMAIN,
    TTL,
    DnsTable,
    PodRecord,
    ServicePort,
    ServiceRecord,
    WireAnswer,
    answer,
    answer_wire,
    resolv_conf,
)

__all__ = [
    "DEFAULT_DOMAIN",
    "TTL",
    "DnsServer",
    "DnsTable",
    "PodRecord",
    "ServicePort",
    "ServiceRecord",
    "TableProvider",
    "WireAnswer",
    "answer",
    "answer_wire",
    "resolv_conf",
    "serve",
]

log = logging.getLogger(__name__)

TCP_IDLE_TIMEOUT_S = 10.0


TableProvider = Callable[[], DnsTable]


class DnsServer:
    """UDP and TCP on one (address, port); reads the current table once per query."""

    def __init__(
        self,
        table_provider: TableProvider,
        address: str = "169.254.20.10",
        port: int = 53,
        *,
        tcp_idle_timeout_s: float = TCP_IDLE_TIMEOUT_S,
    ) -> None:
        self._table_provider = table_provider
        self.address = address
        self.port = port
        self._idle_s = tcp_idle_timeout_s
        self.stats: Counter[str] = Counter()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tcp_tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        """Bind UDP then TCP; with port 0 both share one free port. Returns the port."""
        loop = asyncio.get_running_loop()
        for attempt in range(20):
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(self.address, self.port)
            )
            port = int(transport.get_extra_info("sockname")[1])
            try:
                self._tcp = await asyncio.start_server(
                    self._serve_tcp, host=self.address, port=port, reuse_address=True
                )
            except OSError:
                transport.close()
                if self.port != 0 or attempt == 19:
                    raise
                continue  # the free UDP port was taken on TCP: try another
            self._udp = transport  # type: ignore[assignment]
            self.port = port
            return port
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
            self._tcp = None
        for task in list(self._tcp_tasks):
            task.cancel()
        await asyncio.gather(*self._tcp_tasks, return_exceptions=True)

    def reply(self, wire: bytes, *, udp: bool) -> bytes | None:
        """Answer one message, counting the outcome; never raises."""
        self.stats["queries"] += 1
        try:
            table: DnsTable | None = self._table_provider()
        except Exception:
            log.exception("dns: table provider failed")
            self.stats["provider_errors"] += 1
            table = None
        try:
            result = answer_wire(table, wire, udp=udp)
        except Exception:  # belt and braces: a bug here must not stop the server
            log.exception("dns: unexpected failure")
            result = WireAnswer(None, "dropped")
        self.stats[result.outcome] += 1
        return result.reply

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tcp_tasks.add(task)
        try:
            while True:  # RFC 7766: several length-prefixed queries per connection
                size = struct.unpack(
                    "!H", await asyncio.wait_for(reader.readexactly(2), self._idle_s)
                )[0]
                wire = await asyncio.wait_for(reader.readexactly(size), self._idle_s)
                reply = self.reply(wire, udp=False)
                if reply is None:
                    return  # an unanswerable stream is not worth keeping open
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if task is not None:
                self._tcp_tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self._server = server
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        # An exception escaping here would make asyncio close the socket, so none may.
        reply = self._server.reply(data, udp=True)
        if reply is not None and self._transport is not None:
            with contextlib.suppress(OSError):
                self._transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        self._server.stats["udp_errors"] += 1  # e.g. ICMP port unreachable from a client


async def serve(
    table_provider: TableProvider,
    address: str = "169.254.20.10",
    port: int = 53,
    *,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve DNS until ``stop`` is set or the task is cancelled."""
    server = DnsServer(table_provider, address, port)
    await server.start()
    log.info("dns: serving %s port %d (udp+tcp)", address, server.port)
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await server.close()
