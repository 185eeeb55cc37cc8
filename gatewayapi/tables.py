"""RouteTables: the compiled, immutable lookup structure the waypoint queries per request.

Gateway parents (north-south) have a table per (Gateway, port): its programmed listeners
by hostname, each with its own index. Listener isolation (spec, GatewaySpec.listeners):
a request is matched against the routes of the most specific listener whose hostname
matches its Host (exact, then the longest wildcard, then a listener without hostname)
and never falls through to a less specific listener.

Service parents (GAMMA, east-west) have a table per (Service, port): the producer routes,
and per client namespace its consumer routes, which replace the producer routes for
clients in that namespace (GEP-1426, "Multiple routes for a Service").
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from gatewayapi.actions import (
    Answer,
    Forward,
    Random,
    Respond,
    Selection,
    error_response,
    execute,
    not_found,
)
from gatewayapi.grpc import GrpcIndex, is_grpc
from gatewayapi.grpcstatus import GrpcStatus, as_grpc
from gatewayapi.headers import Headers
from gatewayapi.hostnames import wildcard_suffixes
from gatewayapi.match import lazy_query
from gatewayapi.paths import PathRefused, request_line_problem, split_target
from gatewayapi.precedence import HostIndex
from gatewayapi.session import SessionKey
from gatewayapi.types import (
    GatewayParent,
    IngressParent,
    NoRoute,
    NoRouteReason,
    Parent,
    Request,
    ServiceParent,
    host_of,
)

if TYPE_CHECKING:
    from gatewayapi.tlsroutes import TlsPortTable


@dataclass(frozen=True, slots=True)
class ListenerInfo:
    """A programmed listener: what the server binds and which certificates it serves."""

    gateway: tuple[str, str]
    name: str
    port: int
    protocol: str
    hostname: str | None
    certificates: tuple[tuple[str, str], ...] = ()
    """(namespace, name) of the TLS Secrets, for HTTPS listeners."""
    client_ca: bytes | None = None
    """PEM CAs that validate client certificates on this HTTPS listener's port (GEP-91);
    None: clients are not asked for one."""
    client_ca_optional: bool = False
    """AllowInsecureFallback: clients without a valid certificate are served too."""
    ingress_class: str | None = None
    """Set for the TLS hosts of an IngressClass (``gatewayapi/ingress/serve.py``), whose
    ``gateway`` is then ("", class) and whose wildcards cover one label only."""

    @property
    def parent(self) -> GatewayParent | IngressParent:
        if self.ingress_class is not None:
            return IngressParent(self.ingress_class, self.port)
        return GatewayParent(self.gateway[0], self.gateway[1], self.port)


class ListenerTable:
    __slots__ = ("info", "index", "grpc")

    def __init__(self, info: ListenerInfo, index: HostIndex, grpc: GrpcIndex | None = None) -> None:
        self.info = info
        self.index = index
        self.grpc = grpc
        """The listener's GRPCRoutes (``grpc.py``); None when it has none."""


class GatewayPortTable:
    """The listeners of one Gateway on one port, by hostname."""

    __slots__ = ("exact", "wild", "any")

    def __init__(self, listeners: list[ListenerTable]) -> None:
        self.exact: dict[str, ListenerTable] = {}
        self.wild: dict[str, ListenerTable] = {}
        self.any: ListenerTable | None = None
        for table in listeners:
            hostname = table.info.hostname
            if hostname is None:
                self.any = table
            elif hostname.startswith("*."):
                self.wild[hostname[2:]] = table
            else:
                self.exact[hostname] = table

    def listener_for(self, host: str) -> ListenerTable | None:
        """The most specific listener whose hostname matches ``host``."""
        table = self.exact.get(host)
        if table is not None:
            return table
        if self.wild:
            for suffix in wildcard_suffixes(host):
                table = self.wild.get(suffix)
                if table is not None:
                    return table
        return self.any

    def misdirected(self, authority: str, sni_listener: str | None) -> bool:
        """Over TLS: whether a request for ``authority`` (Host or :authority) belongs to
        another listener than ``sni_listener``, the one the handshake's SNI chose.

        RFC 9110 15.5.20 (421 Misdirected Request) and Gateway API's
        GatewayHTTPSListenerDetectMisdirectedRequests: listeners on one port may share a
        certificate, so an HTTP/2 client may reuse a connection opened for one of them
        (RFC 9113 9.1.1); its request must not reach the routes of a listener whose
        hostname, certificate or client validation it never negotiated. The Host is read
        as routing reads it (``host_of``: port, case and a trailing dot ignored), so a
        request is misdirected exactly when routing would pick another listener, or none.
        An absent Host (HTTP/1.0) is the listener without hostname's, like routing's."""
        hosted = self.listener_for(host_of(authority))
        return hosted is None or hosted.info.name != sni_listener


class ServicePortTable:
    __slots__ = ("producer", "consumers", "grpc_producer", "grpc_consumers")

    def __init__(
        self,
        producer: HostIndex | None,
        consumers: dict[str, HostIndex],
        grpc_producer: GrpcIndex | None = None,
        grpc_consumers: dict[str, GrpcIndex] | None = None,
    ) -> None:
        self.producer = producer
        self.consumers = consumers
        self.grpc_producer = grpc_producer
        self.grpc_consumers = grpc_consumers or {}

    def index_for(self, client_namespace: str | None) -> HostIndex | None:
        if client_namespace is not None and self.consumers:
            consumer = self.consumers.get(client_namespace)
            if consumer is not None:
                return consumer
        return self.producer

    def grpc_index_for(self, client_namespace: str | None) -> GrpcIndex | None:
        """GEP-1426 per kind: a client namespace's consumer GRPCRoutes replace the
        producer's GRPCRoutes."""
        if client_namespace is not None and self.grpc_consumers:
            consumer = self.grpc_consumers.get(client_namespace)
            if consumer is not None:
                return consumer
        return self.grpc_producer

    @property
    def has_producer(self) -> bool:
        return self.producer is not None or self.grpc_producer is not None

    def consumer_namespaces(self) -> frozenset[str]:
        return frozenset(self.consumers) | frozenset(self.grpc_consumers)


class IngressSelector(Protocol):
    """What ``RouteTables`` asks of the Ingress tables (``gatewayapi/ingress/serve.py``)."""

    def select(self, parent: IngressParent, host: str, path: str) -> Selection | NoRoute: ...

    def misdirected(self, parent: IngressParent, host: str, sni_name: str | None) -> bool: ...

    def listeners(self) -> tuple[ListenerInfo, ...]: ...


class RouteTables:
    """Compiled routes for every parent. Immutable after construction; share freely."""

    __slots__ = ("gateways", "services", "addresses", "listeners", "ingresses", "tls")

    def __init__(
        self,
        gateways: Mapping[GatewayParent, GatewayPortTable],
        services: Mapping[ServiceParent, ServicePortTable],
        addresses: Mapping[tuple[str, int], ServiceParent],
        listeners: tuple[ListenerInfo, ...],
        ingresses: IngressSelector | None = None,
        tls: Mapping[GatewayParent, TlsPortTable] | None = None,
    ) -> None:
        self.gateways = dict(gateways)
        self.services = dict(services)
        self.addresses = dict(addresses)
        self.listeners = listeners
        """Gateway listeners, then the Ingress TLS hosts (what the TLS terminator loads)."""
        self.ingresses = ingresses
        self.tls = dict(tls or {})
        """TLS listeners by Gateway port, with their TLSRoutes by SNI (gatewayapi.tlsroutes)."""

    def with_ingresses(self, ingresses: IngressSelector) -> RouteTables:
        """These routes and ``ingresses`` (replacing any this one had)."""
        own = tuple(i for i in self.listeners if i.ingress_class is None)
        return RouteTables(
            self.gateways, self.services, self.addresses, own + ingresses.listeners(), ingresses,
            self.tls,
        )

    # --- queries -----------------------------------------------------------------------

    def parent_for_address(self, ip: str, port: int) -> ServiceParent | None:
        """The Service parent whose ClusterIP and port a redirected connection was for,
        when that Service has routes; None means pass the connection through."""
        return self.addresses.get((ip, port))

    def l7_services(self) -> frozenset[ServiceParent]:
        """Service ports with attached routes: the ones the datapath must redirect."""
        return frozenset(self.services)

    def l7_client_namespaces(self, parent: ServiceParent) -> frozenset[str] | None:
        """Whose connections to a Service port need routing: None for every client (it has
        producer routes), else the namespaces of its consumer routes (GEP-1426: a consumer
        route is for clients in its own namespace; everyone else keeps plain L4)."""
        table = self.services.get(parent)
        if table is None:
            return frozenset()
        if table.has_producer:
            return None
        return table.consumer_namespaces()

    def select(
        self,
        parent: Parent,
        host: str,
        method: str,
        path: str,
        query: str,
        headers: Headers,
        *,
        client_namespace: str | None = None,
    ) -> Selection | NoRoute:
        """The rule that answers a request, or why none does.

        ``host`` is the Host or :authority value (a port is ignored, as the spec asks);
        ``path`` the request path (see ``normalize_path``) and ``query`` the raw query
        string. ``client_namespace`` is the calling pod's namespace, which selects GAMMA
        consumer routes; it does not matter for Gateway parents.
        """
        hostname = host_of(host)
        if isinstance(parent, IngressParent):
            if self.ingresses is None:
                return NoRoute(NoRouteReason.UNKNOWN_PARENT, f"no Ingress served for {parent}")
            return self.ingresses.select(parent, hostname, path)
        if isinstance(parent, GatewayParent):
            port_table = self.gateways.get(parent)
            if port_table is None:
                return NoRoute(NoRouteReason.UNKNOWN_PARENT, f"no listener for {parent}")
            listener = port_table.listener_for(hostname)
            if listener is None:
                return NoRoute(
                    NoRouteReason.NO_MATCHING_LISTENER, f"no listener hostname matches {hostname}"
                )
            if listener.grpc is not None and is_grpc(headers):
                found = listener.grpc.find(hostname, path, headers)
                if found is not None:
                    return Selection(
                        parent, listener.info.name, parent.port, found.rule, found.match_index
                    )
            entry = listener.index.find(hostname, path, method, headers, lazy_query(query))
            if entry is None:
                return NoRoute(NoRouteReason.NO_MATCHING_RULE)
            return Selection(parent, listener.info.name, parent.port, entry.rule, entry.match_index)
        service_table = self.services.get(parent)
        if service_table is None:
            return NoRoute(NoRouteReason.UNKNOWN_PARENT, f"no routes for Service {parent}")
        grpc = service_table.grpc_index_for(client_namespace)
        if grpc is not None and is_grpc(headers):
            found = grpc.find(hostname, path, headers)
            if found is not None:
                return Selection(parent, None, parent.port, found.rule, found.match_index)
        index = service_table.index_for(client_namespace)
        if index is None:
            if grpc is not None:
                return NoRoute(NoRouteReason.NO_MATCHING_RULE)
            return NoRoute(NoRouteReason.UNKNOWN_PARENT, f"no routes for Service {parent}")
        entry = index.find(hostname, path, method, headers, lazy_query(query))
        if entry is None:
            return NoRoute(NoRouteReason.NO_MATCHING_RULE)
        return Selection(parent, None, parent.port, entry.rule, entry.match_index)

    def route(
        self,
        parent: Parent,
        request: Request,
        *,
        rng: Random = random.random,
        client_namespace: str | None = None,
        normalize: bool = True,
        sessions: SessionKey | None = None,
    ) -> Forward | Respond:
        """Everything the server needs for one request: select a rule, run its filters,
        choose a backend and mirrors. With ``normalize`` the path is normalized first
        (``paths.py``: dot segments, slashes, escapes) and forwarded normalized; a target
        the policy refuses is answered 400 and never matched, and so is a method or
        authority that cannot be written into an HTTP/1.1 head. ``sessions`` verifies
        session persistence tokens (``session.py``); without it they are ignored."""
        if (problem := request_line_problem(request.method, request.authority)) is not None:
            response = error_response(400, f"bad request: {problem}")
            return Respond(response, Answer.INVALID_REQUEST, None, problem)
        if normalize:
            try:
                path, query = split_target(request.target)
            except PathRefused as exc:
                response = error_response(400, f"bad request target: {exc}")
                return Respond(response, Answer.INVALID_PATH, None, str(exc))
            if path != request.path:
                request = request.with_path(path)
        else:
            path, _, query = request.target.partition("?")
        selected = self.select(
            parent,
            request.authority,
            request.method,
            path,
            query,
            request.headers,
            client_namespace=client_namespace,
        )
        if isinstance(selected, NoRoute):
            answer = not_found(selected)
        else:
            outcome = execute(selected, request, rng, sessions)
            if isinstance(outcome, Forward):
                return outcome
            answer = outcome
        return grpc_answer(answer) if is_grpc(request.headers) else answer


_GRPC_CODES = {
    Answer.NO_ROUTE: GrpcStatus.UNIMPLEMENTED,
    Answer.NO_BACKEND: GrpcStatus.UNAVAILABLE,
    Answer.INVALID_BACKEND: GrpcStatus.UNAVAILABLE,
}


def grpc_answer(respond: Respond) -> Respond:
    """What the proxy answers a gRPC request itself, as a gRPC error (``grpcstatus.py``):
    no route UNIMPLEMENTED, no valid backend UNAVAILABLE, other errors by gRPC's HTTP
    mapping."""
    code = _GRPC_CODES.get(respond.answer)
    response = respond.response
    if code is None and response.status < 400:
        return respond
    return replace(respond, response=as_grpc(response, code))
