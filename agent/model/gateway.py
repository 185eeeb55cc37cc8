"""gateway.networking.k8s.io kinds: GatewayClass, Gateway, ReferenceGrant, and the
references and route status shared with HTTPRoute (see ``httproute.py``).

Defaults are those of the Gateway API CRDs and are applied by the converter, so a field
documented "default X" always holds X when the manifest omitted it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from agent.model.frozen import EMPTY, FrozenMap
from agent.model.meta import Condition, LabelSelector, ObjectMeta

GATEWAY_GROUP = "gateway.networking.k8s.io"


# --- references ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParentReference:
    """A route's parent. group default gateway.networking.k8s.io, kind default Gateway;
    ``namespace`` None means the route's namespace."""

    name: str
    group: str = GATEWAY_GROUP
    kind: str = "Gateway"
    namespace: str | None = None
    section_name: str | None = None
    port: int | None = None


@dataclass(frozen=True, slots=True)
class BackendObjectReference:
    """group default "" (core), kind default Service; a core Service needs ``port``."""

    name: str
    group: str = ""
    kind: str = "Service"
    namespace: str | None = None
    port: int | None = None


@dataclass(frozen=True, slots=True)
class SecretObjectReference:
    """group default "" (core), kind default Secret."""

    name: str
    group: str = ""
    kind: str = "Secret"
    namespace: str | None = None


@dataclass(frozen=True, slots=True)
class LocalObjectReference:
    """An ExtensionRef target in the route's namespace; group may be "" (core)."""

    group: str
    kind: str
    name: str


# --- status ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteParentStatus:
    parent_ref: ParentReference
    controller_name: str
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class RouteStatus:
    parents: tuple[RouteParentStatus, ...] = ()


# --- GatewayClass ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParametersReference:
    """A GatewayClass's ``spec.parametersRef``: cluster-scoped, or namespaced when
    ``namespace`` is set."""

    group: str
    kind: str
    name: str
    namespace: str | None = None


@dataclass(frozen=True, slots=True)
class GatewayClassSpec:
    controller_name: str
    description: str | None = None
    parameters_ref: ParametersReference | None = None


@dataclass(frozen=True, slots=True)
class GatewayClassStatus:
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class GatewayClass:
    kind: ClassVar[str] = "GatewayClass"
    metadata: ObjectMeta
    spec: GatewayClassSpec
    status: GatewayClassStatus = GatewayClassStatus()


# --- Gateway ---------------------------------------------------------------------------


class ListenerProtocol(StrEnum):
    HTTP = "HTTP"
    HTTPS = "HTTPS"
    TLS = "TLS"
    TCP = "TCP"
    UDP = "UDP"


class TLSMode(StrEnum):
    TERMINATE = "Terminate"
    PASSTHROUGH = "Passthrough"


@dataclass(frozen=True, slots=True)
class GatewayTLSConfig:
    """mode default Terminate; Terminate needs at least one certificate ref."""

    mode: TLSMode = TLSMode.TERMINATE
    certificate_refs: tuple[SecretObjectReference, ...] = ()


class FromNamespaces(StrEnum):
    ALL = "All"
    SAME = "Same"
    SELECTOR = "Selector"


@dataclass(frozen=True, slots=True)
class RouteNamespaces:
    """from_ default Same; ``selector`` is set exactly when from_ is Selector."""

    from_: FromNamespaces = FromNamespaces.SAME
    selector: LabelSelector | None = None


@dataclass(frozen=True, slots=True)
class RouteGroupKind:
    kind: str
    group: str = GATEWAY_GROUP


@dataclass(frozen=True, slots=True)
class AllowedRoutes:
    """Empty ``kinds`` means the kinds the listener protocol supports."""

    namespaces: RouteNamespaces = field(default_factory=RouteNamespaces)
    kinds: tuple[RouteGroupKind, ...] = ()


@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    port: int
    protocol: ListenerProtocol
    hostname: str | None = None
    tls: GatewayTLSConfig | None = None
    allowed_routes: AllowedRoutes = field(default_factory=AllowedRoutes)


@dataclass(frozen=True, slots=True)
class GatewayAddress:
    """type default IPAddress (else Hostname or a domain-prefixed implementation type); in
    spec.addresses an empty value asks for any address of that type (GatewayAddressEmpty)."""

    value: str
    type: str = "IPAddress"


class ListenersFrom(StrEnum):
    """Where a Gateway takes ListenerSets from (``allowedListeners.namespaces.from``)."""

    NONE = "None"
    SAME = "Same"
    ALL = "All"
    SELECTOR = "Selector"


@dataclass(frozen=True, slots=True)
class ListenerNamespaces:
    """from_ default None (no ListenerSets); ``selector`` is set exactly when Selector."""

    from_: ListenersFrom = ListenersFrom.NONE
    selector: LabelSelector | None = None


@dataclass(frozen=True, slots=True)
class AllowedListeners:
    namespaces: ListenerNamespaces = field(default_factory=ListenerNamespaces)
class FrontendValidationMode(StrEnum):
    """GEP-91: AllowValidOnly (Core, the default) needs a client certificate that the CAs
    validate; AllowInsecureFallback (Extended) accepts clients without one."""

    ALLOW_VALID_ONLY = "AllowValidOnly"
    ALLOW_INSECURE_FALLBACK = "AllowInsecureFallback"


@dataclass(frozen=True, slots=True)
class ObjectReference:
    """group "" is core; ``namespace`` None means the Gateway's (another needs a
    ReferenceGrant)."""

    group: str
    kind: str
    name: str
    namespace: str | None = None


@dataclass(frozen=True, slots=True)
class FrontendTLSValidation:
    """Client certificate validation (GEP-91): 1 to 16 CA references (Core: one ConfigMap
    with ``ca.crt``); mode default AllowValidOnly."""

    ca_certificate_refs: tuple[ObjectReference, ...]
    mode: FrontendValidationMode = FrontendValidationMode.ALLOW_VALID_ONLY


@dataclass(frozen=True, slots=True)
class FrontendTLSSettings:
    """Go's ``TLSConfig``: what applies to the HTTPS listeners of a port."""

    validation: FrontendTLSValidation | None = None


@dataclass(frozen=True, slots=True)
class TLSPortConfig:
    port: int
    tls: FrontendTLSSettings


@dataclass(frozen=True, slots=True)
class FrontendTLSConfig:
    """``default`` for every HTTPS listener, unless ``per_port`` names its port (unique)."""

    default: FrontendTLSSettings
    per_port: tuple[TLSPortConfig, ...] = ()

    def for_port(self, port: int) -> FrontendTLSValidation | None:
        for entry in self.per_port:
            if entry.port == port:
                return entry.tls.validation
        return self.default.validation


@dataclass(frozen=True, slots=True)
class GatewayBackendTLS:
    """``spec.tls.backend`` (GEP-3155): the client certificate the Gateway presents when it
    opens TLS to a backend (a BackendTLSPolicy's); Core: a ``kubernetes.io/tls`` Secret."""

    client_certificate_ref: SecretObjectReference | None = None


@dataclass(frozen=True, slots=True)
class GatewaySpecTLS:
    """``spec.tls`` (Go's ``GatewayTLSConfig``): what the Gateway asks of clients
    (``frontend``) and what it presents to backends (``backend``)."""

    frontend: FrontendTLSConfig | None = None
    backend: GatewayBackendTLS | None = None


@dataclass(frozen=True, slots=True)
class LocalParametersReference:
    """``spec.infrastructure.parametersRef``: an object in the Gateway's namespace."""

    group: str
    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class GatewayInfrastructure:
    """``spec.infrastructure`` (GEP-1762): labels and annotations for the objects created
    in response to the Gateway, and implementation-specific parameters."""

    labels: FrozenMap[str, str] = EMPTY
    annotations: FrozenMap[str, str] = EMPTY
    parameters_ref: LocalParametersReference | None = None


@dataclass(frozen=True, slots=True)
class GatewaySpec:
    gateway_class_name: str
    listeners: tuple[Listener, ...]
    addresses: tuple[GatewayAddress, ...] = ()
    allowed_listeners: AllowedListeners | None = None
    """None: no ListenerSets may attach (the CRD's default ``{from: None}``)."""
    tls: GatewaySpecTLS | None = None
    infrastructure: GatewayInfrastructure | None = None


@dataclass(frozen=True, slots=True)
class ListenerStatus:
    name: str
    attached_routes: int = 0
    supported_kinds: tuple[RouteGroupKind, ...] = ()
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    addresses: tuple[GatewayAddress, ...] = ()
    conditions: tuple[Condition, ...] = ()
    listeners: tuple[ListenerStatus, ...] = ()
    attached_listener_sets: int | None = None


@dataclass(frozen=True, slots=True)
class Gateway:
    kind: ClassVar[str] = "Gateway"
    metadata: ObjectMeta
    spec: GatewaySpec
    status: GatewayStatus = GatewayStatus()


# --- ReferenceGrant --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReferenceGrantFrom:
    group: str
    kind: str
    namespace: str


@dataclass(frozen=True, slots=True)
class ReferenceGrantTo:
    """``name`` None grants every object of the group and kind."""

    group: str
    kind: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ReferenceGrantSpec:
    from_: tuple[ReferenceGrantFrom, ...]
    to: tuple[ReferenceGrantTo, ...]


@dataclass(frozen=True, slots=True)
class ReferenceGrant:
    kind: ClassVar[str] = "ReferenceGrant"
    metadata: ObjectMeta
    spec: ReferenceGrantSpec
