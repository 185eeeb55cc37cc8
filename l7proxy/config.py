"""The waypoint's configuration: listeners, limits, route tables and endpoint resolution,
plus a file loader (Gateway API YAML and an endpoints map) for tests and benchmarks.

A config file is a multi-document YAML stream. Gateway API objects (GatewayClass,
Gateway, HTTPRoute, GRPCRoute, TLSRoute, ReferenceGrant), Services, Namespaces, Secrets, HTTPFaults
and Ingresses go through the model's one converter and the route engine's compiler;
BackendTrafficPolicy, AuthorizationPolicy and HTTPLocalRateLimitPolicy are enforced as the
node waypoint (``l7proxy/node.py``) enforces them from the API, the caller's identity being
the Pod (in the file) at its address. Any other kind is refused, naming the document: a policy the
waypoint silently skipped would be a policy not enforced. One extra document tells the
waypoint what the cluster would otherwise tell it:

    apiVersion: tulle.io/v1alpha1
    kind: WaypointConfig
    listeners:
      - address: 127.0.0.1:15001
        parent: {kind: Gateway, namespace: infra, name: gw, port: 80}
    endpoints:
      default/echo:8080: [127.0.0.1:9000, 127.0.0.1:9001]
    protocols:
      default/grpc:50051: h2c
    trustDomain: cluster.local   # the callers' SPIFFE IDs (AuthorizationPolicy principals)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.model.authz import AuthorizationPolicy
from agent.model.backendpolicy import BackendTrafficPolicy
from agent.model.convert import from_dict
from agent.model.core import TLS_SECRET_TYPE, ConfigMap, Namespace, Pod, Secret, Service
from agent.model.documents import load_documents
from agent.model.fault import HTTPFault
from agent.model.gateway import Gateway, GatewayClass, ReferenceGrant
from agent.model.grpcroute import GRPCRoute
from agent.model.httproute import HTTPRoute
from agent.model.ingress import Ingress, IngressClass
from agent.model.ratelimit import HTTPLocalRateLimitPolicy
from agent.model.tlsroute import TLSRoute
from authz import Verdict
from gatewayapi import (
    BackendTarget,
    GatewayParent,
    IngressParent,
    Parent,
    RouteCompiler,
    RouteTables,
    RoutingInputs,
    ServiceParent,
)
from gatewayapi.ingress.serve import compile_ingresses
from l7proxy.authz import AuthzGate, Call
from l7proxy.ratelimit import Limited, RateLimitGate
from l7proxy.resilience.params import BackendParams, params_by_service

Address = tuple[str, int]
EndpointResolver = Callable[[BackendTarget], Sequence[Address]]
"""(namespace, service, port) -> the endpoints (ip, port) to send to; empty: 503."""

OriginalDestination = Callable[[Address], "Address | Parent | None"]
Admission = Callable[[Address, Address], bool]
PolicyNaming = Callable[[Address, Address], tuple[tuple[str, ...], tuple[str, ...]] | None]
Authorizer = Callable[[Call], Verdict | None]
RateLimiter = Callable[[tuple[str, int], BackendTarget], Limited | None]
"""NetworkPolicy for a proxied request: may this client (ip, port) reach this backend
endpoint (ip, port)? Judged as the kernel judges a direct connection (l7proxy/node.py)."""

CONFIG_KIND = "WaypointConfig"
DEFAULT_TRUST_DOMAIN = "cluster.local"
FILE_KINDS = (
    GatewayClass, Gateway, HTTPRoute, GRPCRoute, TLSRoute, ReferenceGrant, Service, Namespace,
    Secret, HTTPFault, BackendTrafficPolicy, AuthorizationPolicy, HTTPLocalRateLimitPolicy, Pod,
    Ingress, IngressClass, ConfigMap,
)
"""What a config file may hold besides its WaypointConfig document."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Connection and request limits. Times in seconds."""

    max_header_bytes: int = 64 * 1024
    """A request header section over this gets 431."""
    max_headers: int = 128
    """More header lines than this gets 431."""
    header_timeout: float = 10.0
    """A header section not complete this long after its first byte gets 408 (slowloris)."""
    idle_timeout: float = 60.0
    """A keep-alive connection with no request for this long is closed."""
    max_connections: int = 10_000
    """Client connections per worker; beyond it new ones get 503 and are closed."""
    max_pipeline: int = 16
    """Pipelined requests queued per connection before reading pauses."""
    max_buffered_body: int = 1024 * 1024
    """Request bodies up to this are kept for retries and mirrors; larger ones stream
    and are not retried once sent."""
    connect_timeout: float = 5.0
    upstream_idle_timeout: float = 60.0
    max_upstream_per_endpoint: int = 512
    max_mirrors_in_flight: int = 256
    body_idle_timeout: float = 30.0
    """A request body with no bytes for this long while the waypoint reads gets 408 (or,
    once the response started, the connection closes): a stalled upload."""
    body_timeout: float = 300.0
    """A request body not complete this long after its head: 408 or close (a trickle of
    one byte per ``body_idle_timeout`` cannot hold a connection forever)."""
    pool_wait_timeout: float = 10.0
    """A request waiting for an upstream connection at ``max_upstream_per_endpoint``
    gives up after this long with 503."""
    max_write_buffer: int = 4 * 1024 * 1024
    """Bytes buffered toward one client connection beyond this close it: a client that
    does not read cannot make the waypoint hold its responses in memory."""
    write_timeout: float = 60.0
    """A client that has read nothing for this long while responses wait for it (the
    transport paused its writers) is closed."""
    h2_max_concurrent_streams: int = 100
    """HTTP/2 streams a client may have open (advertised; one more is a connection error)."""
    h2_window: int = 1 << 20
    """HTTP/2 receive window per stream and for the connection (at least 65,535): the
    most request body a client can have sent that the waypoint has not yet passed on."""
    h2_budget_period: float = 10.0
    h2_max_resets: int = 200
    h2_max_pings: int = 100
    h2_max_settings: int = 100
    h2_max_empty: int = 200
    h2_max_window_updates: int = 200
    """RST_STREAM, PING and SETTINGS frames, and frames that ask for nothing (DATA with
    no data and no END_STREAM, PRIORITY, unasked ACKs: CVE-2019-9518), a client may send per
    ``h2_budget_period`` (token buckets; WINDOW_UPDATE's also earns one per KiB sent to
    the client); over one: GOAWAY(ENHANCE_YOUR_CALM) and close."""
    h2_max_write_buffer: int = 4 * 1024 * 1024
    """Bytes queued toward an HTTP/2 client beyond which the connection is closed."""
    h2_stream_timeout: float = 300.0
    """An HTTP/2 stream waiting on its client (request body not arriving though the
    window is open, or response not read) with no byte moving either way this long is
    reset. Envoy's stream idle default; long enough for quiet gRPC streams."""
    h2_max_kept_bodies: int = 4 * 1024 * 1024
    """Request body bytes one HTTP/2 connection may keep for retries and mirrors across
    its streams; a stream that would pass it streams its body without a copy (no retry)."""


@dataclass(frozen=True, slots=True)
class ListenerConfig:
    """A socket the waypoint serves. ``parent`` fixes what the requests are for: a
    Gateway listener port (north-south) or a Service port. When None, the parent comes
    from the connection's local address (the original destination that transparent
    redirection preserves) and then from the Host name (``svc.ns[.svc.cluster.local]``)."""

    host: str
    port: int
    parent: Parent | None = None


class StaticEndpoints:
    """An endpoint map: ``(namespace, name, port) -> [(ip, port)]``."""

    def __init__(self, endpoints: Mapping[tuple[str, str, int], Sequence[Address]]) -> None:
        self._map = {key: tuple(value) for key, value in endpoints.items()}

    def __call__(self, target: BackendTarget) -> Sequence[Address]:
        return self._map.get((target.namespace, target.name, target.port), ())


@dataclass
class WaypointConfig:
    listeners: Sequence[ListenerConfig]
    tables: RouteTables
    endpoints: EndpointResolver
    protocols: Mapping[tuple[str, str, int], str] = field(default_factory=dict)
    """Backends that speak something other than HTTP/1.1: ``"h2c"`` (HTTP/2 with prior
    knowledge, gRPC). Requests with a gRPC content type always go out as h2c."""
    limits: Limits = field(default_factory=Limits)
    metrics: Address | None = None
    """Where to serve Prometheus metrics (per worker: port + worker index)."""
    node_name: str = ""
    scheme: str = "http"
    original_destination: OriginalDestination | None = None
    """Transparent redirection that rewrites the destination (Tulle's datapath DNATs to the
    waypoint): the client's (ip, port) -> the address it asked for, or the Gateway listener
    it reached. Called once per connection; None keeps the socket's local address.
    When set, a connection it knows nothing of was not redirected by the datapath: it is
    refused (reset) and recorded, and the Host header never chooses a parent."""
    client_namespace: Callable[[str], str | None] | None = None
    """The namespace of the pod at a client address: it selects GAMMA consumer routes
    (routes in the client's namespace whose parent is another namespace's Service)."""
    admits: Admission | None = None
    """NetworkPolicy on the client's identity: endpoints it denies are never picked; a
    request with no admitted endpoint is answered 403 (POLICY_DENIED). None: no policy."""
    policy_names: PolicyNaming | None = None
    """(client, endpoint) -> the NetworkPolicies ("namespace/name") that allowed the client's
    egress and the endpoint's ingress, for the request's flow (Hubble's ``*_allowed_by``);
    None when denied. Called per request with flows on: cache it (``PolicyGate`` does)."""
    authorize: Authorizer | None = None
    """AuthorizationPolicy (``l7proxy.authz.AuthzGate.check``): a routed request -> its
    denial (answered 403 ``RBAC: access denied``, a DROPPED flow naming the policies), an
    allowing Verdict naming the AUDIT policies that matched (served; an AUDIT flow naming
    them), or None to go on. None: no AuthorizationPolicy."""
    rate_limit: RateLimiter | None = None
    """HTTPLocalRateLimitPolicy (``l7proxy.ratelimit.RateLimitGate.check``): (client, backend)
    of a routed, authorized request -> its refusal (answered 429 with Retry-After and
    RateLimit-* fields, a DROPPED flow RATE_LIMITED), or None to go on. None: no limits."""
    certificates: Mapping[tuple[str, str], tuple[bytes, bytes]] = field(default_factory=dict)
    """``kubernetes.io/tls`` Secrets by (namespace, name): (tls.crt, tls.key) PEM, for
    the HTTPS listeners whose certificateRefs name them (``tls.py``)."""
    backend_params: Mapping[tuple[str, str], BackendParams] = field(default_factory=dict)
    """(namespace, Service) -> its BackendTrafficPolicy's pool limits and outlier detection
    (``l7proxy/resilience/params.py``); a Service not here has neither."""
    request_split: bool = True
    """Where each request's time went (``l7proxy.timing``): timing marks and the kernel's
    RTTs in every L7 flow. Part of tracing; off, requests take no marks and no RTT reads
    and flows carry no split. The process's switch is set from it when a server starts."""
    session_key: bytes = field(default_factory=lambda: os.urandom(32))
    """The HMAC key of session persistence tokens (``gatewayapi/session.py``). Made with the
    config, so the workers forked from it share it; a waypoint that restarts (or its standby
    taking over) has a new one, and sessions then start afresh on their next request."""
    trust_forwarded_for: bool = False
    """Keep the X-Forwarded-For a client sends through a Gateway (the client's address
    appended) rather than replace it (``l7proxy.exchange.appends_forwarded_for``): only for
    Gateways reached through a proxy the operator runs."""


def parse_address(text: str) -> Address:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {text!r}: expected HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def _target_key(text: str) -> tuple[str, str, int]:
    """``namespace/name:port``."""
    ns, slash, rest = text.partition("/")
    name, colon, port = rest.rpartition(":")
    if not slash or not colon or not port.isdigit():
        raise ValueError(f"endpoint key {text!r}: expected namespace/service:port")
    return ns, name, int(port)


def _parent(spec: Mapping[str, Any]) -> Parent:
    kind = spec.get("kind", "Gateway")
    if kind == "IngressClass":
        return IngressParent(str(spec["name"]), int(spec["port"]))
    args = (str(spec["namespace"]), str(spec["name"]), int(spec["port"]))
    if kind == "Gateway":
        return GatewayParent(*args)
    if kind == "Service":
        return ServiceParent(*args)
    raise ValueError(
        f"listener parent kind {kind!r}: expected Gateway, Service or IngressClass"
    )


@dataclass
class FileConfig:
    """What a config file holds, before it is combined with command-line overrides."""

    tables: RouteTables
    endpoints: dict[tuple[str, str, int], tuple[Address, ...]]
    protocols: dict[tuple[str, str, int], str]
    listeners: list[ListenerConfig]
    certificates: dict[tuple[str, str], tuple[bytes, bytes]] = field(default_factory=dict)
    backend_params: dict[tuple[str, str], BackendParams] = field(default_factory=dict)
    """From the file's BackendTrafficPolicies."""
    authorization: list[AuthorizationPolicy] = field(default_factory=list)
    rate_limits: list[HTTPLocalRateLimitPolicy] = field(default_factory=list)
    pods: list[Pod] = field(default_factory=list)
    """The callers' identities (the pod at the client address), for the two above."""
    services: list[Service] = field(default_factory=list)
    trust_domain: str = DEFAULT_TRUST_DOMAIN


def tls_certificates(secrets: Sequence[Secret]) -> dict[tuple[str, str], tuple[bytes, bytes]]:
    """(namespace, name) -> (tls.crt, tls.key) of the ``kubernetes.io/tls`` Secrets."""
    return {
        (s.metadata.namespace, s.metadata.name): (s.data["tls.crt"], s.data["tls.key"])
        for s in secrets
        if s.type == TLS_SECRET_TYPE and s.data.get("tls.crt") and s.data.get("tls.key")
    }


def load_config_text(text: str, source: str = "<config>") -> FileConfig:
    documents = load_documents(text, source)
    objects = []
    extra: dict[str, Any] = {}
    for index, doc in enumerate(documents):
        if doc.get("kind") == CONFIG_KIND:
            extra = doc
            continue
        obj = from_dict(doc)
        if not isinstance(obj, FILE_KINDS):
            meta = obj.metadata
            where = f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name
            raise ValueError(
                f"{source}: document {index + 1} ({obj.kind} {where}): the waypoint's config "
                f"file does not read {obj.kind} (it reads "
                f"{', '.join(k.kind for k in FILE_KINDS)} and {CONFIG_KIND})")
        objects.append(obj)
    inputs = RoutingInputs.of(
        routes=[o for o in objects if isinstance(o, HTTPRoute)],
        gateways=[o for o in objects if isinstance(o, Gateway)],
        gateway_classes=[o for o in objects if isinstance(o, GatewayClass)],
        services=[o for o in objects if isinstance(o, Service)],
        reference_grants=[o for o in objects if isinstance(o, ReferenceGrant)],
        namespaces=[o for o in objects if isinstance(o, Namespace)],
        secrets=[o for o in objects if isinstance(o, Secret)],
        faults=[o for o in objects if isinstance(o, HTTPFault)],
        grpc_routes=[o for o in objects if isinstance(o, GRPCRoute)],
        tls_routes=[o for o in objects if isinstance(o, TLSRoute)],
        config_maps=[o for o in objects if isinstance(o, ConfigMap)],
    )
    tables = RouteCompiler().compile(inputs)
    ingresses = [o for o in objects if isinstance(o, Ingress)]
    if ingresses:  # served by their own semantics (gatewayapi/ingress/serve.py)
        tables = tables.with_ingresses(compile_ingresses(
            ingresses, [o for o in objects if isinstance(o, IngressClass)], inputs.services
        ))
    endpoints = {
        _target_key(key): tuple(parse_address(a) for a in value)
        for key, value in (extra.get("endpoints") or {}).items()
    }
    protocols = {_target_key(k): str(v) for k, v in (extra.get("protocols") or {}).items()}
    listeners = []
    for spec in extra.get("listeners") or ():
        host, port = parse_address(str(spec["address"]))
        parent = _parent(spec["parent"]) if spec.get("parent") else None
        listeners.append(ListenerConfig(host, port, parent))
    policies = [o for o in objects if isinstance(o, BackendTrafficPolicy)]
    trust_domain = extra.get("trustDomain", DEFAULT_TRUST_DOMAIN)
    if not isinstance(trust_domain, str) or not trust_domain or "/" in trust_domain:
        raise ValueError(f"{source}: {CONFIG_KIND} trustDomain {trust_domain!r}: expected a "
                         "trust domain name such as cluster.local")
    return FileConfig(
        tables,
        endpoints,
        protocols,
        listeners,
        tls_certificates(inputs.secrets),
        params_by_service(policies, inputs.services),
        authorization=[o for o in objects if isinstance(o, AuthorizationPolicy)],
        rate_limits=[o for o in objects if isinstance(o, HTTPLocalRateLimitPolicy)],
        pods=[o for o in objects if isinstance(o, Pod)],
        services=list(inputs.services),
        trust_domain=trust_domain,
    )


def load_config(path: str | Path) -> FileConfig:
    return load_config_text(Path(path).read_text(), str(path))


def waypoint_config(
    loaded: FileConfig,
    *,
    listen: Sequence[Address] = (),
    limits: Limits | None = None,
    metrics: Address | None = None,
    request_split: bool = True,
) -> WaypointConfig:
    """A WaypointConfig from a loaded file; ``listen`` replaces the file's addresses
    (each keeps the parent of the file's first listener, if any). The file's
    AuthorizationPolicies and HTTPLocalRateLimitPolicies are wired as ``l7proxy/node.py``
    wires the cluster's (rate limit buckets are per worker process)."""
    listeners = list(loaded.listeners)
    if listen:
        parent = listeners[0].parent if listeners else None
        listeners = [ListenerConfig(host, port, parent) for host, port in listen]
    identities = AuthzGate(loaded.trust_domain)
    identities.swap(loaded.authorization, loaded.pods)
    rate_limits = RateLimitGate(identities.peer)  # the caller's identity as authz derives it
    rate_limits.swap(loaded.rate_limits, loaded.services)
    return WaypointConfig(
        listeners=listeners,
        tables=loaded.tables,
        endpoints=StaticEndpoints(loaded.endpoints),
        protocols=loaded.protocols,
        limits=limits or Limits(),
        metrics=metrics,
        certificates=loaded.certificates,
        backend_params=loaded.backend_params,
        authorize=identities.check if loaded.authorization else None,
        rate_limit=rate_limits.check if loaded.rate_limits else None,
        request_split=request_split,
    )
