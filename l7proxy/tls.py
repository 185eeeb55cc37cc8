"""TLS termination for HTTPS Gateway listeners.

The datapath sends every Gateway listener to the waypoint's one port, so TLS is decided
per connection after accept: ``Http1Connection`` learns the connection's parent, and when
it is a Gateway port with HTTPS listeners it puts a ``TlsStream`` between the socket and
itself (an ``SSLObject`` on memory BIOs). The certificate is chosen by SNI among that
Gateway's HTTPS listeners on the port (exact hostname, then the longest wildcard, then the
listener without hostname), as ``RouteTables`` chooses listeners by Host; the chosen
listener's name is kept so the proxy can answer 421 when the Host belongs elsewhere.

``TlsTerminator`` owns the contexts: one per certificate set, built (and validated) once
when the set first appears and dropped when no listener uses it; a connection only picks
one. A listener whose certificate or key does not load keeps its error: handshakes for
it are refused, recorded as a DROPPED flow naming the reason, and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import ssl
from collections.abc import Iterator, Mapping, Sequence

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from l7proxy.flows import FlowRecorder, now_ns
from l7proxy.routing import GatewayParent, ListenerInfo
from l7proxy.routing.hostnames import wildcard_suffixes

log = logging.getLogger("tulle.waypoint")

SecretKey = tuple[str, str]
"""(namespace, name) of a ``kubernetes.io/tls`` Secret."""
CertificatePair = tuple[bytes, bytes]
"""The Secret's ``tls.crt`` and ``tls.key`` (PEM)."""
Address = tuple[str, int]

ALPN = ["http/1.1"]
READ_SIZE = 256 * 1024

NO_CERTIFICATE = "TLS_NO_CERTIFICATE"
INVALID_CERTIFICATE = "TLS_INVALID_CERTIFICATE"
HANDSHAKE_FAILED = "TLS_HANDSHAKE_FAILED"
HANDSHAKE_TIMEOUT = "TLS_HANDSHAKE_TIMEOUT"


class CertificateError(ValueError):
    """A certificate set that cannot serve: the message names the Secret and the field."""


def server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(ALPN)
    return context


def certificate_context(pairs: Sequence[tuple[SecretKey, CertificatePair]]) -> ssl.SSLContext:
    """A server context holding every certificate and key of a listener (one per key type,
    as ``certificateRefs`` allows). Raises CertificateError naming the first bad Secret."""
    context = server_context()
    for (ns, name), (crt, key) in pairs:
        where = f"Secret {ns}/{name}"
        try:
            ssl.create_default_context(cadata=crt.decode("ascii"))
        except (ssl.SSLError, ValueError, UnicodeDecodeError) as exc:
            raise CertificateError(f"{where}: tls.crt holds no valid PEM certificate") from exc
        try:
            with _memory_file(crt) as crt_path, _memory_file(key) as key_path:
                # An empty password: an encrypted key fails here instead of OpenSSL asking
                # for a pass phrase on the terminal (or failing with a bare OSError).
                context.load_cert_chain(crt_path, key_path, password=b"")
        except (ssl.SSLError, ValueError, OSError) as exc:
            detail = getattr(exc, "reason", None) or str(exc)
            raise CertificateError(
                f"{where}: tls.key is not a valid private key for tls.crt ({detail})"
            ) from exc
    return context


@contextlib.contextmanager
def _memory_file(data: bytes) -> Iterator[str]:
    """A path OpenSSL can open that names no file on any disk: an anonymous memfd (RAM
    only, gone when closed), read through /proc/self/fd. ``ssl`` loads keys only from
    paths, and a key written to /tmp (even briefly, even 0600) can be copied or left
    behind by a crash."""
    fd = os.memfd_create("tulle-tls", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def certificate_problem(crt: bytes, key: bytes) -> str | None:
    """Why a ``kubernetes.io/tls`` Secret's data cannot serve, or None (for status)."""
    try:
        certificate_context([(("", "secret"), (crt, key))])
    except CertificateError as exc:
        return str(exc).partition(": ")[2]
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class ListenerCertificate:
    """An HTTPS listener as the handshake sees it: its context, or why it has none."""

    listener: str
    hostname: str | None
    context: ssl.SSLContext | None
    error: str = ""


class TlsPort:
    """The HTTPS listeners of one Gateway on one port, by hostname."""

    __slots__ = ("parent", "exact", "wild", "any")

    def __init__(self, parent: GatewayParent, listeners: Sequence[ListenerCertificate]) -> None:
        self.parent = parent
        self.exact: dict[str, ListenerCertificate] = {}
        self.wild: dict[str, ListenerCertificate] = {}
        self.any: ListenerCertificate | None = None
        for entry in listeners:
            if entry.hostname is None:
                self.any = entry
            elif entry.hostname.startswith("*."):
                self.wild[entry.hostname[2:].lower()] = entry
            else:
                self.exact[entry.hostname.lower()] = entry

    def select(self, server_name: str | None) -> ListenerCertificate | None:
        """The most specific listener for the SNI name; without one (or no match), the
        listener without hostname."""
        if server_name:
            name = server_name.lower().rstrip(".")
            entry = self.exact.get(name)
            if entry is not None:
                return entry
            for suffix in wildcard_suffixes(name):
                entry = self.wild.get(suffix)
                if entry is not None:
                    return entry
        return self.any


class TlsMetrics(Collector):
    def __init__(self) -> None:
        self.handshakes = 0
        self.refused: dict[str, int] = {}
        self.certificate_errors = 0

    def collect(self) -> list[Metric]:
        refused = CounterMetricFamily(
            "tulle_waypoint_tls_handshakes_refused",
            "TLS handshakes refused or failed, by reason",
            labels=["reason"],
        )
        for reason, count in sorted(self.refused.items()):
            refused.add_metric([reason], count)
        return [
            CounterMetricFamily(
                "tulle_waypoint_tls_handshakes", "TLS handshakes completed", value=self.handshakes
            ),
            refused,
            GaugeMetricFamily(
                "tulle_waypoint_tls_listener_certificate_errors",
                "HTTPS listeners whose certificates do not load (their handshakes are refused)",
                value=self.certificate_errors,
            ),
        ]


class _SslObject(ssl.SSLObject):
    stream: TlsStream | None = None


class TlsTerminator:
    """Certificates of every HTTPS listener, swapped on updates; wraps connections."""

    def __init__(self, flows: FlowRecorder | None = None, handshake_timeout: float = 10.0):
        self.flows = flows
        self.handshake_timeout = handshake_timeout
        self.metrics = TlsMetrics()
        self.ports: dict[GatewayParent, TlsPort] = {}
        self._contexts: dict[tuple[object, ...], ssl.SSLContext | str] = {}
        # One context starts every handshake; the SNI callback moves the connection to
        # its listener's context, so no certificate is parsed per connection.
        self._dispatch = server_context()
        self._dispatch.sslobject_class = _SslObject
        self._dispatch.sni_callback = _on_server_name

    def update(
        self, listeners: Sequence[ListenerInfo], certificates: Mapping[SecretKey, CertificatePair]
    ) -> None:
        contexts: dict[tuple[object, ...], ssl.SSLContext | str] = {}
        by_port: dict[GatewayParent, list[ListenerCertificate]] = {}
        for info in listeners:
            if info.protocol != "HTTPS":
                continue
            missing = [ref for ref in info.certificates if ref not in certificates]
            if missing or not info.certificates:
                error = f"Secret {'/'.join(missing[0])} not found" if missing else "no certificate"
                made: ssl.SSLContext | str = error
            else:
                pairs = tuple((ref, certificates[ref]) for ref in info.certificates)
                cached = contexts.get(pairs) or self._contexts.get(pairs)
                if cached is None:
                    try:
                        cached = certificate_context(pairs)
                    except CertificateError as exc:
                        cached = str(exc)
                        log.error("HTTPS listener %s/%s %s: %s", *info.gateway, info.name, exc)
                made = contexts[pairs] = cached
            parent = GatewayParent(info.gateway[0], info.gateway[1], info.port)
            entry = (
                ListenerCertificate(info.name, info.hostname, made)
                if isinstance(made, ssl.SSLContext)
                else ListenerCertificate(info.name, info.hostname, None, made)
            )
            by_port.setdefault(parent, []).append(entry)
        self._contexts = contexts
        self.ports = {parent: TlsPort(parent, entries) for parent, entries in by_port.items()}
        self.metrics.certificate_errors = sum(
            1 for port in self.ports.values() for e in _entries(port) if e.context is None
        )

    def port_for(self, parent: object) -> TlsPort | None:
        return self.ports.get(parent) if isinstance(parent, GatewayParent) else None

    def wrap(
        self,
        raw: asyncio.Transport,
        app: asyncio.Protocol,
        port: TlsPort,
        client: Address,
        local: Address,
    ) -> TlsStream:
        """Terminate TLS on ``raw`` for ``app``: ``app`` gets the returned transport."""
        stream = TlsStream(self, raw, app, port, client, local)
        raw.set_protocol(stream)
        return stream

    def refused(self, stream: TlsStream, reason: str, summary: str) -> None:
        self.metrics.refused[reason] = self.metrics.refused.get(reason, 0) + 1
        flows = self.flows
        if flows is None or flows.sink is None:
            return
        url = f"https://{stream.server_name or stream.local[0]}:{stream.port.parent.port}"
        flows.send([(now_ns(), 0, 0, "", url, "TLS", "", "", "", reason, stream.client,
                     stream.local, f"TLS handshake refused: {summary}")])


def _entries(port: TlsPort) -> list[ListenerCertificate]:
    return [*port.exact.values(), *port.wild.values(), *([port.any] if port.any else [])]


def _on_server_name(
    sslobj: ssl.SSLObject, server_name: str | None, _context: ssl.SSLContext
) -> int | None:
    stream = getattr(sslobj, "stream", None)
    if stream is None:
        return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
    stream.server_name = server_name
    port = stream.port
    choice = port.select(server_name)
    if choice is None:
        gw = port.parent
        stream.refusal = (
            NO_CERTIFICATE,
            f"no HTTPS listener of Gateway {gw.namespace}/{gw.name} port {gw.port} "
            f"for server name {server_name or '(none)'}",
        )
        return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
    if choice.context is None:
        stream.refusal = (INVALID_CERTIFICATE, f"listener {choice.listener}: {choice.error}")
        return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
    sslobj.context = choice.context
    stream.listener = choice.listener
    return None


class TlsStream(asyncio.Protocol, asyncio.Transport):
    """The socket's protocol (ciphertext) and the application's transport (plaintext)."""

    def __init__(
        self,
        terminator: TlsTerminator,
        raw: asyncio.Transport,
        app: asyncio.Protocol,
        port: TlsPort,
        client: Address,
        local: Address,
    ) -> None:
        super().__init__()
        self.terminator = terminator
        self.raw = raw
        self.app = app
        self.port = port
        self.client = client
        self.local = local
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.sslobj = terminator._dispatch.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.sslobj.stream = self  # type: ignore[attr-defined]
        self.server_name: str | None = None
        self.listener: str | None = None
        """The listener SNI chose; requests whose Host is another listener's get 421."""
        self.refusal: tuple[str, str] | None = None
        self.handshaken = False
        self.closed = False
        self.reading_paused = False
        self.pending: list[bytes] = []
        loop = asyncio.get_running_loop()
        self.timer: asyncio.TimerHandle | None = loop.call_later(
            terminator.handshake_timeout, self._handshake_timeout
        )

    # --- from the socket ---------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.incoming.write(data)
        if not self.handshaken and not self._handshake():
            return
        self._deliver()

    def eof_received(self) -> bool | None:
        self.incoming.write_eof()
        if self.handshaken:
            self._deliver()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        self.app.connection_lost(exc)

    def pause_writing(self) -> None:
        self.app.pause_writing()

    def resume_writing(self) -> None:
        self.app.resume_writing()

    def _handshake(self) -> bool:
        try:
            self.sslobj.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return False
        except (ssl.SSLError, OSError) as exc:
            self._flush()
            reason, summary = self.refusal or (HANDSHAKE_FAILED, _ssl_reason(exc))
            self._refuse(reason, summary)
            return False
        self.handshaken = True
        self._cancel_timer()
        self.terminator.metrics.handshakes += 1
        pending, self.pending = self.pending, []
        for data in pending:
            self.sslobj.write(data)
        self._flush()
        return True

    def _deliver(self) -> None:
        while not self.reading_paused and not self.closed:
            try:
                data = self.sslobj.read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.close()  # close_notify: the client is done
                break
            except (ssl.SSLError, OSError):
                self.abort()
                break
            if not data:
                self.close()
                break
            self.app.data_received(data)
        self._flush()

    def _refuse(self, reason: str, summary: str) -> None:
        if self.server_name and self.server_name not in summary:
            summary += f" (SNI {self.server_name})"
        self.terminator.refused(self, reason, summary)
        self.closed = True
        self.raw.close()  # the alert was flushed

    def _handshake_timeout(self) -> None:
        self.timer = None
        if not self.handshaken and not self.closed:
            self.terminator.refused(self, HANDSHAKE_TIMEOUT, "handshake not complete in time")
            self.abort()

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _flush(self) -> None:
        if self.outgoing.pending:
            data = self.outgoing.read()
            if not self.raw.is_closing():
                self.raw.write(data)

    # --- from the application ----------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closed or not data:
            return
        if not self.handshaken:
            self.pending.append(bytes(data))
            return
        try:
            self.sslobj.write(data)
        except ssl.SSLError:
            self.abort()
            return
        self._flush()

    def writelines(self, list_of_data: object) -> None:
        for data in list_of_data:  # type: ignore[attr-defined]
            self.write(data)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.handshaken:
            try:
                self.sslobj.unwrap()  # close_notify
            except (ssl.SSLError, OSError):
                pass
            self._flush()
        self.raw.close()

    def abort(self) -> None:
        self.closed = True
        self.raw.abort()

    def is_closing(self) -> bool:
        return self.closed or self.raw.is_closing()

    def pause_reading(self) -> None:
        if not self.reading_paused:
            self.reading_paused = True
            self.raw.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused:
            self.reading_paused = False
            self.raw.resume_reading()
            if self.handshaken:
                asyncio.get_running_loop().call_soon(self._deliver)

    def is_reading(self) -> bool:
        return not self.reading_paused

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self.raw.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.raw.set_write_buffer_limits(high, low)

    def get_extra_info(self, name: str, default: object = None) -> object:
        if name == "ssl_object":
            return self.sslobj
        if name == "server_name":
            return self.server_name
        return self.raw.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.Protocol)
        self.app = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.app


def _ssl_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc or type(exc).__name__)
