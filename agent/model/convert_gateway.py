"""Readers for GatewayClass, Gateway, ReferenceGrant and the Gateway API references and
route status shared with HTTPRoute. Limits and rules follow the Gateway API CRDs."""

from __future__ import annotations

from agent.model.convert_core import MAX_PORT, MIN_PORT
from agent.model.convert_infrastructure import read_class_parameters_ref, read_infrastructure
from agent.model.convert_meta import read_conditions, read_label_selector
from agent.model.gateway import (
    GATEWAY_GROUP,
    AllowedListeners,
    AllowedRoutes,
    BackendObjectReference,
    FromNamespaces,
    FrontendTLSConfig,
    FrontendTLSSettings,
    FrontendTLSValidation,
    FrontendValidationMode,
    Gateway,
    GatewayAddress,
    GatewayBackendTLS,
    GatewayClass,
    GatewayClassSpec,
    GatewayClassStatus,
    GatewaySpec,
    GatewaySpecTLS,
    GatewayStatus,
    GatewayTLSConfig,
    Listener,
    ListenerNamespaces,
    ListenerProtocol,
    ListenersFrom,
    ListenerStatus,
    LocalObjectReference,
    ObjectReference,
    ParentReference,
    ReferenceGrant,
    ReferenceGrantFrom,
    ReferenceGrantSpec,
    ReferenceGrantTo,
    RouteGroupKind,
    RouteNamespaces,
    RouteParentStatus,
    RouteStatus,
    SecretObjectReference,
    TLSMode,
    TLSPortConfig,
)
from agent.model.meta import ObjectMeta
from agent.model.reader import REQUIRED, Reader
from agent.model.validation import (
    controller_name,
    dns1123_label,
    gateway_group,
    gateway_kind,
    hostname,
    ip_address,
    object_name,
    quote,
    section_name,
)

# --- references ------------------------------------------------------------------------


def read_parent_ref(r: Reader) -> ParentReference:
    return ParentReference(
        name=r.string("name", REQUIRED, check=object_name),
        group=r.string("group", GATEWAY_GROUP, check=gateway_group),
        kind=r.string("kind", "Gateway", check=gateway_kind),
        namespace=r.string("namespace", check=dns1123_label),
        section_name=r.string("sectionName", check=section_name),
        port=r.integer("port", minimum=MIN_PORT, maximum=MAX_PORT),
    )


def read_backend_object_ref(r: Reader) -> BackendObjectReference:
    ref = BackendObjectReference(
        name=r.string("name", REQUIRED, check=object_name),
        group=r.string("group", "", check=gateway_group),
        kind=r.string("kind", "Service", check=gateway_kind),
        namespace=r.string("namespace", check=dns1123_label),
        port=r.integer("port", minimum=MIN_PORT, maximum=MAX_PORT),
    )
    require_service_port(r, ref.group, ref.kind, ref.port)
    return ref


def require_service_port(r: Reader, group: str, kind: str, port: int | None) -> None:
    if group == "" and kind == "Service" and port is None:
        r.fail("port", "required when referring to a Service")


def _read_secret_ref(r: Reader) -> SecretObjectReference:
    return SecretObjectReference(
        name=r.string("name", REQUIRED, check=object_name),
        group=r.string("group", "", check=gateway_group),
        kind=r.string("kind", "Secret", check=gateway_kind),
        namespace=r.string("namespace", check=dns1123_label),
    )


def read_local_object_ref(r: Reader) -> LocalObjectReference:
    return LocalObjectReference(
        group=r.string("group", REQUIRED, check=gateway_group),
        kind=r.string("kind", REQUIRED, check=gateway_kind),
        name=r.string("name", REQUIRED, check=object_name),
    )


def read_route_status(r: Reader) -> RouteStatus:
    return RouteStatus(parents=r.objects("parents", _read_route_parent_status, max_items=32))


def _read_route_parent_status(r: Reader) -> RouteParentStatus:
    return RouteParentStatus(
        parent_ref=r.obj("parentRef", read_parent_ref, REQUIRED),
        controller_name=r.string("controllerName", REQUIRED, check=controller_name),
        conditions=read_conditions(r),
    )


# --- GatewayClass ----------------------------------------------------------------------


def read_gateway_class(r: Reader, metadata: ObjectMeta) -> GatewayClass:
    return GatewayClass(
        metadata=metadata,
        spec=r.obj("spec", _read_gateway_class_spec, REQUIRED),
        status=r.obj("status", _read_gateway_class_status, GatewayClassStatus()),
    )


def _read_gateway_class_spec(r: Reader) -> GatewayClassSpec:
    description = r.string("description")
    if description is not None and len(description) > 64:
        r.fail("description", "must be no more than 64 characters")
    return GatewayClassSpec(
        controller_name=r.string("controllerName", REQUIRED, check=controller_name),
        description=description,
        parameters_ref=r.obj("parametersRef", read_class_parameters_ref),
    )


def _read_gateway_class_status(r: Reader) -> GatewayClassStatus:
    return GatewayClassStatus(conditions=read_conditions(r))


# --- Gateway ---------------------------------------------------------------------------

_NO_TLS = (ListenerProtocol.HTTP, ListenerProtocol.TCP, ListenerProtocol.UDP)
_NO_HOSTNAME = (ListenerProtocol.TCP, ListenerProtocol.UDP)


def read_gateway(r: Reader, metadata: ObjectMeta) -> Gateway:
    return Gateway(
        metadata=metadata,
        spec=r.obj("spec", _read_gateway_spec, REQUIRED),
        status=r.obj("status", _read_gateway_status, GatewayStatus()),
    )


def _read_gateway_spec(r: Reader) -> GatewaySpec:
    spec = GatewaySpec(
        gateway_class_name=r.string("gatewayClassName", REQUIRED, check=object_name),
        listeners=r.objects("listeners", read_listener, min_items=1, max_items=64),
        addresses=r.objects("addresses", _read_spec_address, max_items=16),
        allowed_listeners=r.obj("allowedListeners", _read_allowed_listeners),
        tls=r.obj("tls", _read_gateway_tls),
        infrastructure=r.obj("infrastructure", read_infrastructure),
    )
    check_listeners(r, spec.listeners)
    r.check_unique("addresses", [a.value for a in spec.addresses if a.value], "value")
    return spec


def check_listeners(r: Reader, listeners: tuple[Listener, ...]) -> None:
    """Names unique, and port, protocol and hostname unique together (the CRDs' CEL rules,
    for a Gateway's listeners and a ListenerSet's alike)."""
    r.check_unique("listeners", [listener.name for listener in listeners], "name")
    first_with: dict[tuple[int, str, str | None], int] = {}
    for i, lis in enumerate(listeners):
        j = first_with.setdefault((lis.port, lis.protocol, lis.hostname), i)
        if j != i:
            r.fail(f"listeners[{i}]", f"port, protocol and hostname duplicate listeners[{j}]")


def _read_allowed_listeners(r: Reader) -> AllowedListeners:
    return AllowedListeners(
        namespaces=r.obj("namespaces", _read_listener_namespaces, ListenerNamespaces())
    )


def _read_listener_namespaces(r: Reader) -> ListenerNamespaces:
    namespaces = ListenerNamespaces(
        from_=r.enum("from", ListenersFrom, ListenersFrom.NONE),
        selector=r.obj("selector", read_label_selector),
    )
    if namespaces.from_ is ListenersFrom.SELECTOR and namespaces.selector is None:
        r.fail("selector", "required when from is Selector")
    return namespaces


def read_listener(r: Reader) -> Listener:
    listener = Listener(
        name=r.string("name", REQUIRED, check=section_name),
        port=r.integer("port", REQUIRED, minimum=MIN_PORT, maximum=MAX_PORT),
        protocol=r.enum("protocol", ListenerProtocol, REQUIRED),
        hostname=r.string("hostname", check=hostname),
        tls=r.obj("tls", _read_tls),
        allowed_routes=r.obj("allowedRoutes", _read_allowed_routes, AllowedRoutes()),
    )
    protocol = listener.protocol
    if protocol in _NO_TLS and listener.tls is not None:
        r.fail("tls", f"must not be specified for protocol {protocol}")
    if protocol not in _NO_TLS and listener.tls is None:
        r.fail("tls", f"required for protocol {protocol}")
    if (
        protocol is ListenerProtocol.HTTPS
        and listener.tls is not None
        and listener.tls.mode is not TLSMode.TERMINATE
    ):
        r.fail("tls.mode", "must be Terminate for protocol HTTPS")
    if protocol is ListenerProtocol.TLS and not r.child("tls").has("mode"):
        r.fail("tls.mode", "must be set for protocol TLS")  # the v1.6 CRD's CEL rule
    if protocol in _NO_HOSTNAME and listener.hostname is not None:
        r.fail("hostname", f"must not be specified for protocol {protocol}")
    return listener


def _read_tls(r: Reader) -> GatewayTLSConfig:
    tls = GatewayTLSConfig(
        mode=r.enum("mode", TLSMode, TLSMode.TERMINATE),
        certificate_refs=r.objects("certificateRefs", _read_secret_ref, max_items=64),
    )
    if tls.mode is TLSMode.TERMINATE and not tls.certificate_refs:
        r.fail("certificateRefs", "at least one is required when mode is Terminate")
    return tls


def _read_gateway_tls(r: Reader) -> GatewaySpecTLS:
    return GatewaySpecTLS(
        frontend=r.obj("frontend", _read_frontend_tls),
        backend=r.obj("backend", _read_backend_tls),
    )


def _read_backend_tls(r: Reader) -> GatewayBackendTLS:
    return GatewayBackendTLS(
        client_certificate_ref=r.obj("clientCertificateRef", _read_secret_ref)
    )


def _read_frontend_tls(r: Reader) -> FrontendTLSConfig:
    config = FrontendTLSConfig(
        default=r.obj("default", _read_tls_settings, REQUIRED),
        per_port=r.objects("perPort", _read_tls_port_config, max_items=64),
    )
    r.check_unique("perPort", [entry.port for entry in config.per_port], "port")
    return config


def _read_tls_port_config(r: Reader) -> TLSPortConfig:
    return TLSPortConfig(
        port=r.integer("port", REQUIRED, minimum=MIN_PORT, maximum=MAX_PORT),
        tls=r.obj("tls", _read_tls_settings, REQUIRED),
    )


def _read_tls_settings(r: Reader) -> FrontendTLSSettings:
    return FrontendTLSSettings(validation=r.obj("validation", _read_frontend_validation))


def _read_frontend_validation(r: Reader) -> FrontendTLSValidation:
    return FrontendTLSValidation(
        ca_certificate_refs=r.objects(
            "caCertificateRefs", _read_object_ref, min_items=1, max_items=16
        ),
        mode=r.enum("mode", FrontendValidationMode, FrontendValidationMode.ALLOW_VALID_ONLY),
    )


def _read_object_ref(r: Reader) -> ObjectReference:
    return ObjectReference(
        group=r.string("group", "", check=gateway_group),
        kind=r.string("kind", REQUIRED, check=gateway_kind),
        name=r.string("name", REQUIRED, check=object_name),
        namespace=r.string("namespace", check=dns1123_label),
    )


def _read_allowed_routes(r: Reader) -> AllowedRoutes:
    return AllowedRoutes(
        namespaces=r.obj("namespaces", _read_route_namespaces, RouteNamespaces()),
        kinds=r.objects("kinds", _read_route_group_kind, max_items=8),
    )


def _read_route_namespaces(r: Reader) -> RouteNamespaces:
    namespaces = RouteNamespaces(
        from_=r.enum("from", FromNamespaces, FromNamespaces.SAME),
        selector=r.obj("selector", read_label_selector),
    )
    if namespaces.from_ is FromNamespaces.SELECTOR and namespaces.selector is None:
        r.fail("selector", "required when from is Selector")
    return namespaces


def _read_route_group_kind(r: Reader) -> RouteGroupKind:
    return RouteGroupKind(
        kind=r.string("kind", REQUIRED, check=gateway_kind),
        group=r.string("group", GATEWAY_GROUP, check=gateway_group),
    )


def _address_type(value: str) -> str | None:
    if value in ("IPAddress", "Hostname", "NamedAddress") or "/" in value:
        return None
    return (
        f"unsupported value {quote(value)} "
        "(supported: IPAddress, Hostname, NamedAddress, or a domain-prefixed type)"
    )


def _read_spec_address(r: Reader) -> GatewayAddress:
    """A requested address: ``value`` may be left out (GatewaySpecAddress, v1.3+; the
    GatewayAddressEmpty feature): "an address of this type", which the implementation
    picks; a value given must be valid for its type."""
    if not r.string("value"):  # absent or empty: the same request
        return GatewayAddress(type=r.string("type", "IPAddress", check=_address_type), value="")
    return _read_address(r)


def _read_address(r: Reader) -> GatewayAddress:
    address = GatewayAddress(
        type=r.string("type", "IPAddress", check=_address_type),
        value=r.string("value", REQUIRED),
    )
    if not 1 <= len(address.value) <= 253:
        r.fail("value", "must be 1 to 253 characters")
    check = {"IPAddress": ip_address, "Hostname": hostname}.get(address.type)
    if check is not None and (problem := check(address.value)) is not None:
        r.fail("value", problem)
    return address


def _read_gateway_status(r: Reader) -> GatewayStatus:
    return GatewayStatus(
        addresses=r.objects("addresses", _read_address, max_items=16),
        conditions=read_conditions(r),
        listeners=r.objects("listeners", read_listener_status, max_items=64),
        attached_listener_sets=r.integer("attachedListenerSets", minimum=0),
    )


def read_listener_status(r: Reader) -> ListenerStatus:
    return ListenerStatus(
        name=r.string("name", REQUIRED, check=section_name),
        attached_routes=r.integer("attachedRoutes", REQUIRED, minimum=0),
        supported_kinds=r.objects("supportedKinds", _read_route_group_kind, max_items=8),
        conditions=read_conditions(r),
    )


# --- ReferenceGrant --------------------------------------------------------------------


def read_reference_grant(r: Reader, metadata: ObjectMeta) -> ReferenceGrant:
    return ReferenceGrant(metadata=metadata, spec=r.obj("spec", _read_grant_spec, REQUIRED))


def _read_grant_spec(r: Reader) -> ReferenceGrantSpec:
    return ReferenceGrantSpec(
        from_=r.objects("from", _read_grant_from, min_items=1, max_items=16),
        to=r.objects("to", _read_grant_to, min_items=1, max_items=16),
    )


def _read_grant_from(r: Reader) -> ReferenceGrantFrom:
    return ReferenceGrantFrom(
        group=r.string("group", REQUIRED, check=gateway_group),
        kind=r.string("kind", REQUIRED, check=gateway_kind),
        namespace=r.string("namespace", REQUIRED, check=dns1123_label),
    )


def _read_grant_to(r: Reader) -> ReferenceGrantTo:
    return ReferenceGrantTo(
        group=r.string("group", REQUIRED, check=gateway_group),
        kind=r.string("kind", REQUIRED, check=gateway_kind),
        name=r.string("name", check=object_name),
    )
