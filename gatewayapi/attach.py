"""Parents: which Gateways and listeners are Tulle's and valid, and where a route's
parentRefs attach.

Spec: a Gateway is Tulle's when its GatewayClass names Tulle's controllerName. A listener
serves HTTPRoutes and GRPCRoutes when its protocol is HTTP or HTTPS, TLSRoutes when TLS,
TCPRoutes when TCP and UDPRoutes when UDP (``LISTENER_KINDS``), and its allowedRoutes.kinds
(empty: all of those) include the route's kind; listeners sharing a port with another
protocol of the same transport are Conflicted (ProtocolConflict) and not accepted (a UDP and
a TCP listener may share a port number); an HTTPS listener needs its
certificateRefs resolved (a cross-namespace Secret needs a ReferenceGrant).

A parentRef to a Gateway attaches to every listener that its sectionName and port select
(else NoMatchingParent), whose allowedRoutes admit the route's kind and namespace (else
NotAllowedByListeners), and whose hostname intersects the route's hostnames (else
NoMatchingListenerHostname). Listener status does not affect attachment.

A parentRef to a Service (GAMMA, GEP-1426) attaches to the Service ports its port and
sectionName (port name) select. A route in the Service's namespace is a producer route,
for every client; a route elsewhere is a consumer route, for clients in its own namespace
only. The route's hostnames are ignored, as GEP-1426 asks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from agent.model.core import ConfigMap, Secret, Service
from agent.model.gateway import (
    GATEWAY_GROUP,
    FromNamespaces,
    Gateway,
    Listener,
    ListenerProtocol,
    ParentReference,
    RouteGroupKind,
)
from agent.model.grpcroute import GRPCRoute
from agent.model.httproute import HTTPRoute
from agent.model.l4route import TCPRoute, UDPRoute
from agent.model.listenerset import ListenerSet
from agent.model.tlsroute import TLSRoute
from gatewayapi.backendclientcert import Resolution, resolve
from gatewayapi.backends import Grants
from gatewayapi.frontendtls import NO_VALID_CA, ClientValidation, client_validation
from gatewayapi.hostnames import HostKey, effective_hostnames
from gatewayapi.listenersets import ListenerOrigin, conflicts, merged_listeners

HTTPROUTE_KIND = RouteGroupKind(kind="HTTPRoute", group=GATEWAY_GROUP)
GRPCROUTE_KIND = RouteGroupKind(kind="GRPCRoute", group=GATEWAY_GROUP)
ROUTE_KINDS = (HTTPROUTE_KIND, GRPCROUTE_KIND)
"""What HTTP and HTTPS listeners serve: GRPCRoute needs HTTP/2 with prior knowledge (h2c)
on HTTP and ALPN h2 on HTTPS, which the waypoint offers."""
TLSROUTE_KIND = RouteGroupKind(kind="TLSRoute", group=GATEWAY_GROUP)
TCPROUTE_KIND = RouteGroupKind(kind="TCPRoute", group=GATEWAY_GROUP)
UDPROUTE_KIND = RouteGroupKind(kind="UDPRoute", group=GATEWAY_GROUP)
Route = HTTPRoute | GRPCRoute | TLSRoute | TCPRoute | UDPRoute
HTTP_PROTOCOLS = (ListenerProtocol.HTTP, ListenerProtocol.HTTPS)
L4_PROTOCOLS = (ListenerProtocol.TCP, ListenerProtocol.UDP)
LISTENER_KINDS: dict[ListenerProtocol, tuple[RouteGroupKind, ...]] = {
    ListenerProtocol.HTTP: ROUTE_KINDS,
    ListenerProtocol.HTTPS: ROUTE_KINDS,
    ListenerProtocol.TLS: (TLSROUTE_KIND,),  # Passthrough and Terminate (gatewayapi.tlsroutes)
    ListenerProtocol.TCP: (TCPROUTE_KIND,),  # served in the kernel (gatewayapi/l4routes.py)
    ListenerProtocol.UDP: (UDPROUTE_KIND,),
}
"""The route kinds each listener protocol serves (ListenerStatus.supportedKinds)."""


def _transport(protocol: ListenerProtocol) -> str:
    """UDP listeners share a port number with TCP-carried ones without conflict."""
    return "udp" if protocol is ListenerProtocol.UDP else "tcp"
NAME_LABEL = "kubernetes.io/metadata.name"
TLS_SECRET = "kubernetes.io/tls"


@dataclass(slots=True)
class ListenerState:
    gateway: Gateway
    listener: Listener
    supported_kinds: tuple[RouteGroupKind, ...]
    accepted: tuple[bool, str, str]
    """(status, reason, message) of the Accepted condition."""
    conflicted: str = ""
    """The Conflicted reason, "" for none."""
    refs: list[tuple[str, str]] = field(default_factory=list)
    """ResolvedRefs problems (reason, message)."""
    origin: ListenerOrigin | None = None
    """The ListenerSet this listener came from; None for the Gateway's own."""

    @property
    def owner_namespace(self) -> str:
        """Where allowedRoutes "Same" and certificate references point."""
        return self.origin.namespace if self.origin else self.gateway.metadata.namespace
    client: ClientValidation | None = None
    """Client-certificate validation of an HTTPS listener's port (GEP-91); None: none."""
    held: bool = False
    """The whole Gateway is refused (``GatewayState.invalid_parameters``): not served."""

    def serves(self, kind: str) -> bool:
        return RouteGroupKind(kind=kind, group=GATEWAY_GROUP) in self.supported_kinds

    @property
    def programmed(self) -> bool:
        """Served by the waypoints. Unsupported route kinds do not block the listener
        (spec: ListenerStatus.supportedKinds keeps the valid ones); bad certificates do. A bad
        CA reference does not while another CA resolves (with none, Accepted is False)."""
        ca_problems = self.client.problems if self.client is not None else ()
        blocking = [
            ref for ref in self.refs if ref[0] != "InvalidRouteKinds" and ref not in ca_problems
        ]
        return self.accepted[0] and not self.conflicted and not blocking and not self.held


@dataclass(slots=True)
class GatewayState:
    gateway: Gateway
    listeners: list[ListenerState]
    unsupported_addresses: list[str]
    backend_client: Resolution | None = None
    """``spec.tls.backend.clientCertificateRef`` resolved (gatewayapi.backendclientcert)."""
    invalid_parameters: str | None = None
    """Why its parametersRef, or its class's, is invalid (``gatewayapi.parameters``): the
    Gateway is not Accepted, no listener is served and no route attaches."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.gateway.metadata.namespace, self.gateway.metadata.name)


CertificateCheck = Callable[[bytes, bytes], str | None]
"""Why a certificate and key cannot serve TLS, or None: the caller's (this package parses no
PEM itself; the lab passes `l7proxy.tls.certificate_problem`). Status only: the waypoint's
tables are compiled without it, so it still binds such a listener and refuses its TLS
handshakes, each recorded as a flow."""


def _certificate_problems(
    owner: tuple[str, str],
    listener: Listener,
    secrets: Mapping[tuple[str, str], Secret],
    grants: Grants,
    check: CertificateCheck | None = None,
) -> list[tuple[str, str]]:
    """``owner``: (kind, namespace) of the Gateway or ListenerSet that declared the
    listener: grants are not inherited between them (listenerset_types.go)."""
    problems: list[tuple[str, str]] = []
    if listener.tls is None:
        return problems
    owner_kind, gw_ns = owner
    for ref in listener.tls.certificate_refs:
        ns = ref.namespace or gw_ns
        where = f"{ns}/{ref.name}"
        if (ref.group, ref.kind) != ("", "Secret"):
            problems.append(("InvalidCertificateRef", f"{ref.kind} {where} is not a Secret"))
        elif not grants.allows(GATEWAY_GROUP, owner_kind, gw_ns, "", "Secret", ns, ref.name):
            problems.append(
                (
                    "RefNotPermitted",
                    f"no ReferenceGrant in {ns} allows {owner_kind}s from {gw_ns} "
                    f"to use Secret {where}",
                )
            )
        elif (secret := secrets.get((ns, ref.name))) is None:
            problems.append(("InvalidCertificateRef", f"Secret {where} not found"))
        elif secret.type != TLS_SECRET or not (
            secret.data.get("tls.crt") and secret.data.get("tls.key")
        ):
            problems.append(
                (
                    "InvalidCertificateRef",
                    f"Secret {where} must be of type {TLS_SECRET} with tls.crt and tls.key",
                )
            )
        elif check is not None and (why := check(secret.data["tls.crt"], secret.data["tls.key"])):
            problems.append(("InvalidCertificateRef", f"Secret {where}: {why}"))
    return problems


def gateway_state(
    gateway: Gateway,
    secrets: Mapping[tuple[str, str], Secret],
    grants: Grants,
    check: CertificateCheck | None = None,
    listener_sets: Sequence[ListenerSet] = (),
    config_maps: Mapping[tuple[str, str], ConfigMap] | None = None,
) -> GatewayState:
    """``listener_sets``: those the Gateway admits, in precedence order
    (``gatewayapi.listenersets.judge``); their listeners follow the Gateway's own."""
    protocols_by_port: dict[tuple[int, str], set[ListenerProtocol]] = {}
    for listener in gateway.spec.listeners:
        where = (listener.port, _transport(listener.protocol))
        protocols_by_port.setdefault(where, set()).add(listener.protocol)
    added = [entry for ls in listener_sets for entry in merged_listeners(ls)]
    found = conflicts(gateway.spec.listeners, [listener for listener, _ in added])
    every: list[tuple[Listener, ListenerOrigin | None, tuple[str, str]]] = [
        (listener, None, ("", "")) for listener in gateway.spec.listeners
    ]
    every += [(listener, origin, c) for (listener, origin), c in zip(added, found, strict=True)]
    states = []
    for listener, origin, conflict in every:
        owner = (
            ("ListenerSet", origin.namespace) if origin else ("Gateway", gateway.metadata.namespace)
        )
        refs: list[tuple[str, str]] = []
        client: ClientValidation | None = None
        served = LISTENER_KINDS.get(listener.protocol)
        if served is None:
            accepted = (
                False,
                "UnsupportedProtocol",
                f"protocol {listener.protocol} is not supported"
                " (HTTP, HTTPS, TLS, TCP and UDP are)",
            )
            kinds: tuple[RouteGroupKind, ...] = ()
        else:
            asked = listener.allowed_routes.kinds or served
            kinds = tuple(k for k in asked if k in served)
            invalid = [f"{k.group}/{k.kind}" for k in asked if k not in served]
            if invalid:
                refs.append(("InvalidRouteKinds", f"unsupported route kinds: {', '.join(invalid)}"))
            refs.extend(_certificate_problems(owner, listener, secrets, grants, check))
            accepted = (True, "Accepted", "")
            client = client_validation(gateway, listener, config_maps or {}, grants)
            if client is not None:
                refs.extend(client.problems)
                if not client.usable:
                    accepted = (False, NO_VALID_CA, "no caCertificateRefs entry of the port's "
                                "client certificate validation resolves")
        conflicted = ""
        if conflict[0]:  # a ListenerSet's listener losing to an earlier one
            conflicted = conflict[0]
            accepted = (False, *conflict)
        elif origin is None and len(
            protocols_by_port[(listener.port, _transport(listener.protocol))]
        ) > 1:
            conflicted = "ProtocolConflict"
            accepted = (
                False,
                "ProtocolConflict",
                f"port {listener.port} is used by listeners of different protocols",
            )
        states.append(
            ListenerState(gateway, listener, kinds, accepted, conflicted, refs, origin, client)
        )
    unsupported = [a.value for a in gateway.spec.addresses if a.type != "IPAddress"]
    return GatewayState(gateway, states, unsupported, resolve(gateway, secrets, grants, check))


# --- parentRefs ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListenerAttachment:
    state: ListenerState
    hostnames: tuple[tuple[str | None, HostKey], ...]


@dataclass(frozen=True, slots=True)
class ServiceAttachment:
    service: Service
    port: int
    consumer_namespace: str | None
    """The route's namespace for a consumer route; None for a producer route."""


@dataclass(slots=True)
class ParentResult:
    """Where one parentRef attached, or why it did not (reason, message)."""

    ref: ParentReference
    listeners: list[ListenerAttachment] = field(default_factory=list)
    services: list[ServiceAttachment] = field(default_factory=list)
    reason: str = "Accepted"
    message: str = ""

    @property
    def attached(self) -> bool:
        return bool(self.listeners or self.services)


def namespace_labels(namespace: str, labels: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """A namespace's labels, with the name label Kubernetes always sets."""
    return {**labels.get(namespace, {}), NAME_LABEL: namespace}


def _admits(state: ListenerState, route: Route, labels: Mapping[str, Mapping[str, str]]) -> bool:
    if not state.serves(route.kind):
        return False
    namespaces = state.listener.allowed_routes.namespaces
    route_ns = route.metadata.namespace
    match namespaces.from_:
        case FromNamespaces.ALL:
            return True
        case FromNamespaces.SAME:
            return route_ns == state.owner_namespace
        case FromNamespaces.SELECTOR:
            selector = namespaces.selector
            return selector is not None and selector.matches(namespace_labels(route_ns, labels))
    return False


def attach_gateway(
    route: Route,
    ref: ParentReference,
    gateway: GatewayState,
    labels: Mapping[str, Mapping[str, str]],
    listener_set: tuple[str, str] | None = None,
) -> ParentResult:
    """``listener_set``: the ListenerSet a parentRef of kind ListenerSet names (its
    listeners only); None for a parentRef to the Gateway (its own listeners only)."""
    result = ParentResult(ref)
    selected = [
        s
        for s in gateway.listeners
        if (s.origin.key if s.origin else None) == listener_set
        and (ref.section_name is None or _entry_name(s) == ref.section_name)
        and (ref.port is None or s.listener.port == ref.port)
    ]
    gw = gateway.gateway.metadata.key
    if listener_set is not None:
        gw = f"{gw} (ListenerSet {listener_set[0]}/{listener_set[1]})"
    if gateway.invalid_parameters is not None:
        # Not Accepted, so it has no listener to attach to; the spec names no route reason.
        result.reason = "NoMatchingParent"
        result.message = f"Gateway {gw} is not accepted: {gateway.invalid_parameters}"
        return result
    if not selected:
        wanted = " and ".join(
            part
            for part in (
                f"name {ref.section_name}" if ref.section_name is not None else "",
                f"port {ref.port}" if ref.port is not None else "",
            )
            if part
        )
        result.reason, result.message = (
            "NoMatchingParent",
            f"Gateway {gw} has no listener with {wanted}",
        )
        return result
    admitted = [s for s in selected if _admits(s, route, labels)]
    if not admitted:
        result.reason = "NotAllowedByListeners"
        result.message = (
            f"no listener of Gateway {gw} allows {route.kind}s from namespace "
            f"{route.metadata.namespace}"
        )
        return result
    if isinstance(route, TCPRoute | UDPRoute):  # no hostnames: the port alone routes
        result.listeners = [ListenerAttachment(state, ()) for state in admitted]
        return result
    for state in admitted:
        hostnames = effective_hostnames(state.listener.hostname, route.spec.hostnames)
        if hostnames:
            result.listeners.append(ListenerAttachment(state, tuple(hostnames)))
    if not result.listeners:
        result.reason = "NoMatchingListenerHostname"
        result.message = f"no hostname of the route intersects a listener hostname of Gateway {gw}"
    return result


def _entry_name(state: ListenerState) -> str:
    return state.origin.entry if state.origin else state.listener.name


def attach_service(
    route: Route, ref: ParentReference, services: Mapping[tuple[str, str], Service]
) -> ParentResult:
    result = ParentResult(ref)
    ns = ref.namespace or route.metadata.namespace
    service = services.get((ns, ref.name))
    if service is None:
        result.reason, result.message = "NoMatchingParent", f"Service {ns}/{ref.name} not found"
        return result
    if service.spec.headless:
        result.reason = "NoMatchingParent"
        result.message = f"Service {ns}/{ref.name} is headless and has no frontend to route"
        return result
    ports = [
        p.port
        for p in service.spec.ports
        if (ref.port is None or p.port == ref.port)
        and (ref.section_name is None or p.name == ref.section_name)
    ]
    if not ports:
        result.reason = "NoMatchingParent"
        result.message = f"Service {ns}/{ref.name} has no port matching the parentRef"
        return result
    consumer = route.metadata.namespace if route.metadata.namespace != ns else None
    result.services = [ServiceAttachment(service, port, consumer) for port in ports]
    return result


def is_gateway_ref(ref: ParentReference) -> bool:
    return ref.group == GATEWAY_GROUP and ref.kind == "Gateway"


def is_listener_set_ref(ref: ParentReference) -> bool:
    return ref.group == GATEWAY_GROUP and ref.kind == "ListenerSet"


def is_service_ref(ref: ParentReference) -> bool:
    return ref.group == "" and ref.kind == "Service"
