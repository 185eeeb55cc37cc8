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
import logging
import ssl
from collections.abc import Mapping, Sequence

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gatewayapi import GatewayParent, ListenerInfo
from gatewayapi.types import IngressParent
from l7proxy.flows import FlowRecorder, now_ns
from l7proxy.tlscerts import (
    CertificateError,
    CertificatePair,
    ListenerCertificate,
    SecretKey,
    TlsPort,
    certificate_context,
    certificate_problem,
    server_context,
    verify_clients,
)
from l7proxy.tlsstream import HANDSHAKE_FAILED, HANDSHAKE_TIMEOUT, TlsStream

__all__ = [
    "HANDSHAKE_FAILED",
    "HANDSHAKE_TIMEOUT",
    "INVALID_CERTIFICATE",
    "NO_CERTIFICATE",
    "CertificateError",
    "CertificatePair",
    "ListenerCertificate",
    "SecretKey",
    "TlsPort",
    "TlsStream",
    "TlsTerminator",
    "certificate_context",
    "certificate_problem",
]

log = logging.getLogger("tulle.waypoint")

Address = tuple[str, int]
NO_CERTIFICATE = "TLS_NO_CERTIFICATE"
INVALID_CERTIFICATE = "TLS_INVALID_CERTIFICATE"


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
        self.ports: dict[GatewayParent | IngressParent, TlsPort] = {}
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
        by_port: dict[GatewayParent | IngressParent, list[ListenerCertificate]] = {}
        dispatch: dict[GatewayParent | IngressParent, ssl.SSLContext] = {}
        for info in listeners:
            if info.protocol != "HTTPS":
                continue
            client = (info.client_ca, info.client_ca_optional)
            missing = [ref for ref in info.certificates if ref not in certificates]
            if missing or not info.certificates:
                error = f"Secret {'/'.join(missing[0])} not found" if missing else "no certificate"
                made: ssl.SSLContext | str = error
            else:
                pairs = tuple((ref, certificates[ref]) for ref in info.certificates)
                key = (pairs, client)
                cached = contexts.get(key) or self._contexts.get(key)
                if cached is None:
                    try:
                        cached = certificate_context(
                            pairs, client_ca=info.client_ca, client_ca_optional=client[1]
                        )
                    except CertificateError as exc:
                        cached = str(exc)
                        log.error("HTTPS listener %s %s: %s", info.parent, info.name, exc)
                made = contexts[key] = cached
            parent = info.parent
            if info.client_ca is not None and parent not in dispatch:
                made_dispatch = self._dispatch_for(client, contexts)
                if isinstance(made_dispatch, str):
                    made = made_dispatch  # never served without the validation it asks for
                else:
                    dispatch[parent] = made_dispatch
            entry = (
                ListenerCertificate(info.name, info.hostname, made)
                if isinstance(made, ssl.SSLContext)
                else ListenerCertificate(info.name, info.hostname, None, made)
            )
            by_port.setdefault(parent, []).append(entry)
        self._contexts = contexts
        self.ports = {
            parent: TlsPort(parent, entries, dispatch.get(parent))
            for parent, entries in by_port.items()
        }
        self.metrics.certificate_errors = sum(
            1 for port in self.ports.values() for e in _entries(port) if e.context is None
        )

    def _dispatch_for(
        self,
        client: tuple[bytes | None, bool],
        contexts: dict[tuple[object, ...], ssl.SSLContext | str],
    ) -> ssl.SSLContext | str:
        """The first context of a port that validates clients (``TlsPort.dispatch``), one
        per validation, kept while a port uses it; or why its CA bundle does not load."""
        key = ("dispatch", client)
        made = contexts.get(key) or self._contexts.get(key)
        if made is None:
            made = server_context()
            try:
                verify_clients(made, client[0], client[1])
            except CertificateError as exc:
                made = str(exc)
            else:
                made.sslobject_class = _SslObject
                made.sni_callback = _on_server_name
        contexts[key] = made
        return made

    def port_for(self, parent: object) -> TlsPort | None:
        if isinstance(parent, GatewayParent | IngressParent):
            return self.ports.get(parent)
        return None

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
        url = f"https://{stream.server_name or stream.local[0]}:{stream.port.parent[-1]}"
        flows.send([(now_ns(), 0, 0, "", url, "TLS", "", "", "", reason, stream.client,
                     stream.local, f"TLS handshake refused: {summary}", None, None, None,
                     None)])


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
        parent = port.parent
        owner = (
            f"IngressClass {parent.ingress_class} TLS host"
            if isinstance(parent, IngressParent)
            else f"HTTPS listener of Gateway {parent.namespace}/{parent.name}"
        )
        stream.refusal = (
            NO_CERTIFICATE,
            f"no {owner} port {parent.port} for server name {server_name or '(none)'}",
        )
        return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
    if choice.context is None:
        stream.refusal = (INVALID_CERTIFICATE, f"listener {choice.listener}: {choice.error}")
        return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
    sslobj.context = choice.context
    stream.listener = choice.listener
    return None
