"""Opening backend connections: ``Connector``, the node's marked ``WaypointConnector``.

``Connector.connect`` is the only place in the waypoint that opens a connection to a
backend, plaintext, in TLS (a BackendTLSPolicy's, ``l7proxy.backendtls``) or over an HBONE
stream (``l7proxy.via``: which hop, decided by ``Connector.via`` from the mesh directory;
``Connector.tunnels`` opens the streams). What rides on it: ``l7proxy.h1up`` (HTTP/1.1),
kept by ``l7proxy.pool`` keyed by (endpoint, hop, TLS), so a connection carrying one client
identity's tunnel never serves another's request; ``l7proxy.h2up`` (HTTP/2).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from typing import Protocol, TypeVar

from gatewayapi.backendtls import UpstreamTLS
from l7proxy.backendtls import TLS_DROP, BackendTLSError, open_checked
from l7proxy.timing import SPLIT, now
from l7proxy.via import DIRECT, HopRefused, Mesh, Refused, Tunnel, Via, choose

Address = tuple[str, int]
P = TypeVar("P", bound=asyncio.BaseProtocol)
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


class TunnelOpener(Protocol):
    """``l7proxy.hbone.bridge.TunnelBridge``: a protocol connected over an HBONE stream."""

    async def open(
        self, backend: Address, via: Tunnel, client: Address, factory: Callable[[], P]
    ) -> tuple[asyncio.BaseTransport, P]: ...


class UpstreamFailure(Exception):
    """A try failed without a usable response. ``sent``: the request may have reached
    the backend (``forward.before_response`` classifies it)."""

    def __init__(
        self, message: str, *, sent: bool, timeout: bool = False, drop: str = ""
    ) -> None:
        super().__init__(message)
        self.sent = sent
        self.timeout = timeout
        self.drop = drop
        """The flow's drop reason when it is more specific than the error's."""
        self.connect_ns = 0
        """Time spent on a connect that failed (the request's upstream connect time)."""


class Connector:
    """Opens every upstream connection: plaintext with ``open`` (subclassed for the
    waypoint's address and mark), over a tunnel with ``tunnels``. Without ``mesh`` (no
    mTLS) every hop is plaintext."""

    def __init__(self, *, connect_timeout: float = 5.0) -> None:
        self.connect_timeout = connect_timeout
        self.opened = 0
        self.failed = 0
        self.mesh: Mesh | None = None
        self.tunnels: TunnelOpener | None = None

    def via(self, client: Address, backend: Address) -> Via:
        """The hop from ``client``'s request to ``backend``; UpstreamFailure (not sent,
        the refusal's drop reason) when there is none (``l7proxy.via.choose``)."""
        mesh = self.mesh
        if mesh is None:
            return DIRECT
        hop = choose(client[0], backend, mesh)
        if isinstance(hop, Refused):
            raise UpstreamFailure(hop.detail, sent=False, drop=hop.drop)
        return hop

    async def connect(
        self,
        address: Address,
        factory: Callable[[], P],
        via: Via = DIRECT,
        client: Address = ("", 0),
        tls: UpstreamTLS | None = None,
    ) -> P:
        """A connected protocol from ``factory`` to ``address`` (UpstreamFailure if not),
        over ``via`` (a tunnel names ``client`` as its source), in TLS checked as ``tls``
        asks when set (a BackendTLSPolicy's; a failure's drop reason UPSTREAM_TLS_FAILED).
        The time it took is the protocol's ``connect_ns`` (or the failure's)."""
        start = now() if SPLIT.on else 0  # the request split's (``l7proxy.timing``)
        try:
            async with asyncio.timeout(self.connect_timeout):
                if tls is not None:
                    if isinstance(via, Tunnel):  # fail closed: never plaintext instead
                        raise BackendTLSError("TLS to a backend over HBONE is not supported")
                    _, protocol = await open_checked(address, factory, tls, self.open_tls)
                elif isinstance(via, Tunnel):
                    if self.tunnels is None:
                        raise HopRefused("TUNNEL_UPSTREAM_FAILED", "no HBONE in this waypoint")
                    _, protocol = await self.tunnels.open(address, via, client, factory)
                else:
                    _, protocol = await self.open(address, factory)
        except BackendTLSError as exc:
            self.failed += 1
            failure = UpstreamFailure(
                f"TLS to {show_address(address)} failed: {exc}", sent=False, drop=TLS_DROP
            )
            failure.connect_ns = now() - start if start else 0
            raise failure from exc
        except HopRefused as exc:
            self.failed += 1
            failure = UpstreamFailure(
                f"tunnel to {show_address(address)} failed: {exc}", sent=False, drop=exc.drop
            )
            failure.connect_ns = now() - start if start else 0
            raise failure from exc
        except TimeoutError as exc:
            self.failed += 1
            failure = UpstreamFailure(f"connect to {show_address(address)} timed out", sent=False)
            failure.connect_ns = now() - start if start else 0
            raise failure from exc
        except OSError as exc:
            self.failed += 1
            failure = UpstreamFailure(
                f"connect to {show_address(address)} failed: {exc.strerror or exc}", sent=False
            )
            failure.connect_ns = now() - start if start else 0
            raise failure from exc
        self.opened += 1
        if start and hasattr(protocol, "connect_ns"):
            protocol.connect_ns = now() - start
        return protocol

    async def open(
        self, address: Address, factory: Callable[[], P]
    ) -> tuple[asyncio.BaseTransport, P]:
        loop = asyncio.get_running_loop()
        return await loop.create_connection(factory, address[0], address[1])

    async def open_tls(
        self, address: Address, factory: Callable[[], P], context: ssl.SSLContext, sni: str
    ) -> tuple[asyncio.BaseTransport, P]:
        """``open`` in TLS (subclassed with it for the waypoint's address and mark)."""
        loop = asyncio.get_running_loop()
        return await loop.create_connection(
            factory, address[0], address[1], ssl=context, server_hostname=sni
        )


def show_address(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class WaypointConnector(Connector):
    """Backend connections from the waypoint's own address, marked as the waypoint's: the
    kernel admits the waypoint identity only with the mark (SO_MARK needs CAP_NET_ADMIN, so
    another process binding the address gets none), and a remote node sees the waypoint
    address, whose identity its ingress check trusts (ARCHITECTURE.md)."""

    def __init__(self, source: str, mark: int, *, connect_timeout: float) -> None:
        super().__init__(connect_timeout=connect_timeout)
        self.source = source
        self.mark = mark

    async def _marked(self, address: Address) -> socket.socket:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, self.mark)
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((self.source, 0))
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except BaseException:
            sock.close()
            raise
        return sock

    async def open(
        self, address: Address, factory: Callable[[], P]
    ) -> tuple[asyncio.BaseTransport, P]:
        sock = await self._marked(address)
        return await asyncio.get_running_loop().create_connection(factory, sock=sock)

    async def open_tls(
        self, address: Address, factory: Callable[[], P], context: ssl.SSLContext, sni: str
    ) -> tuple[asyncio.BaseTransport, P]:
        sock = await self._marked(address)
        try:
            return await asyncio.get_running_loop().create_connection(
                factory, sock=sock, ssl=context, server_hostname=sni
            )
        except BaseException:
            sock.close()  # a failed handshake: the socket is still ours
            raise

