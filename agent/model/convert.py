"""The one translation between Kubernetes-shaped objects and the typed model.

``from_dict`` reads a manifest or API object (camelCase JSON, as dicts) into a frozen model
object, applying Kubernetes and Gateway API defaults and validation. ``to_dict`` writes a
model object back in Kubernetes shape, with defaults spelled out, so that
``from_dict(to_dict(x)) == x``. Per-kind readers live in ``convert_*.py``; the writer is
generic over the model dataclasses, whose field names are the snake_case of the Kubernetes
names (see ``_K8S_NAMES`` for the exceptions).

Manifest loading (``load_documents``, ``load_sources``) lives in ``documents.py`` and is
re-exported here.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from agent.model.convert_apps import read_deployment
from agent.model.convert_authz import read_authorization_policy
from agent.model.convert_backendpolicy import read_backend_traffic_policy
from agent.model.convert_backendtls import read_backend_tls_policy
from agent.model.convert_core import (
    read_config_map,
    read_endpoint_slice,
    read_namespace,
    read_pod,
    read_secret,
    read_service,
)
from agent.model.convert_fault import read_http_fault
from agent.model.convert_gateway import read_gateway, read_gateway_class, read_reference_grant
from agent.model.convert_grpcroute import read_grpc_route
from agent.model.convert_httproute import read_http_route
from agent.model.convert_ingress import read_ingress, read_ingress_class
from agent.model.convert_l4route import read_tcp_route, read_udp_route
from agent.model.convert_lbpool import read_load_balancer_ip_pool
from agent.model.convert_listenerset import read_listener_set
from agent.model.convert_meta import read_object_meta
from agent.model.convert_networking import read_network_policy
from agent.model.convert_node import read_node
from agent.model.convert_peerauth import read_peer_authentication
from agent.model.convert_ratelimit import read_http_local_rate_limit_policy
from agent.model.convert_tlsroute import read_tls_route
from agent.model.documents import LoadError, load_documents, load_sources
from agent.model.duration import format_duration
from agent.model.jsonvalue import describe
from agent.model.kinds import UnknownKindError, kind_info, known_kinds
from agent.model.meta import ObjectMeta
from agent.model.reader import FieldError, Reader
from agent.model.resource import Resource
from agent.model.validation import Check, dns1035_label, dns1123_label, dns1123_subdomain, quote

__all__ = [
    "ConversionError",
    "LoadError",
    "from_dict",
    "load_documents",
    "load_sources",
    "to_dict",
]


class ConversionError(ValueError):
    """An object that cannot become a model object.

    ``str()`` is ``"{kind} {namespace}/{name}: {path}: {message}"`` (``"{kind} {name}: ..."``
    for cluster-scoped kinds), e.g.
    ``HTTPRoute shop/orders: spec.rules[0].matches[1].path.type: unsupported value "Regex"
    (supported: Exact, PathPrefix, RegularExpression)``.
    """

    def __init__(self, kind: str, namespace: str, name: str, path: str, message: str) -> None:
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.path = path
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        name = self.name or "<unnamed>"
        where = f"{self.namespace}/{name}" if self.namespace else name
        subject = f"{self.kind or 'object'} {where}"
        if not self.path:
            return f"{subject}: {self.message}"
        return f"{subject}: {self.path}: {self.message}"


_Read = Callable[[Reader, ObjectMeta], Resource]

_READERS: dict[str, tuple[_Read, Check]] = {
    "Namespace": (read_namespace, dns1123_label),
    "Node": (read_node, dns1123_subdomain),
    "Pod": (read_pod, dns1123_subdomain),
    "Service": (read_service, dns1035_label),
    "Secret": (read_secret, dns1123_subdomain),
    "ConfigMap": (read_config_map, dns1123_subdomain),
    "EndpointSlice": (read_endpoint_slice, dns1123_subdomain),
    "Deployment": (read_deployment, dns1123_subdomain),
    "NetworkPolicy": (read_network_policy, dns1123_subdomain),
    "Ingress": (read_ingress, dns1123_subdomain),
    "IngressClass": (read_ingress_class, dns1123_subdomain),
    "GatewayClass": (read_gateway_class, dns1123_subdomain),
    "Gateway": (read_gateway, dns1123_subdomain),
    "HTTPRoute": (read_http_route, dns1123_subdomain),
    "GRPCRoute": (read_grpc_route, dns1123_subdomain),
    "TLSRoute": (read_tls_route, dns1123_subdomain),
    "ListenerSet": (read_listener_set, dns1123_subdomain),
    "TCPRoute": (read_tcp_route, dns1123_subdomain),
    "UDPRoute": (read_udp_route, dns1123_subdomain),
    "BackendTLSPolicy": (read_backend_tls_policy, dns1123_subdomain),
    "ReferenceGrant": (read_reference_grant, dns1123_subdomain),
    "PeerAuthentication": (read_peer_authentication, dns1123_subdomain),
    "BackendTrafficPolicy": (read_backend_traffic_policy, dns1123_subdomain),
    "AuthorizationPolicy": (read_authorization_policy, dns1123_subdomain),
    "HTTPFault": (read_http_fault, dns1123_subdomain),
    "HTTPLocalRateLimitPolicy": (read_http_local_rate_limit_policy, dns1123_subdomain),
    "LoadBalancerIPPool": (read_load_balancer_ip_pool, dns1123_subdomain),
}
"""kind -> (reader of the object, check of metadata.name)."""


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def from_dict(obj: Mapping[str, Any]) -> Resource:
    """Convert one Kubernetes object to its model object. Raises ConversionError.

    Namespaced kinds without ``metadata.namespace`` land in "default"; cluster-scoped kinds
    get namespace "". Unknown fields are ignored, as the API server would prune them.
    """
    if not isinstance(obj, Mapping):
        raise ConversionError("", "", "", "", f"expected an object, got {describe(obj)}")
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    kind, api_version = _text(obj.get("kind")), obj.get("apiVersion")
    name, namespace = _text(meta.get("name")), _text(meta.get("namespace"))

    def error(path: str, message: str) -> ConversionError:
        return ConversionError(kind, namespace, name, path, message)

    if not kind:
        found = obj.get("kind")
        problem = "required" if found in (None, "") else f"expected string, got {describe(found)}"
        raise error("kind", problem)
    try:
        info = kind_info(kind)
    except UnknownKindError:
        raise error(
            "kind",
            f"unknown kind {quote(kind)} (apiVersion {api_version}); known kinds: {known_kinds()}",
        ) from None
    namespace = (namespace or "default") if info.namespaced else ""
    if api_version is None:
        raise error("apiVersion", "required")
    if api_version not in info.api_versions:
        raise error(
            "apiVersion",
            f"unsupported apiVersion {quote(api_version)} for kind {kind} "
            f"(supported: {', '.join(info.api_versions)})",
        )
    read, name_check = _READERS[kind]
    try:
        r = Reader(obj)
        metadata = read_object_meta(r.child("metadata"), name_check)
        return read(r, dataclasses.replace(metadata, namespace=namespace))
    except FieldError as exc:
        raise error(exc.path, exc.message) from None


# --- writing ---------------------------------------------------------------------------

_K8S_NAMES = {
    "cluster_ip": "clusterIP",
    "pod_ip": "podIP",
    "host_ip": "hostIP",
    "client_ip": "clientIP",
    "pod_cidr": "podCIDR",
    "pod_cidrs": "podCIDRs",
    "from_": "from",
    "except_": "except",
    "well_known_ca_certificates": "wellKnownCACertificates",
}
"""Model field names whose Kubernetes name is not their plain camelCase."""


def _k8s_name(field: str) -> str:
    if field in _K8S_NAMES:
        return _K8S_NAMES[field]
    first, *rest = field.split("_")
    return first + "".join(part.capitalize() for part in rest)


def to_dict(resource: Resource) -> dict[str, Any]:
    """Write a model object as a Kubernetes-shaped dict (apiVersion, kind, metadata, ...).

    Unset optional fields and empty defaults are omitted; other defaults are written out,
    as the API server returns them. Secret data is base64-encoded, durations use GEP-2257
    form and timestamps RFC 3339 UTC.
    """
    info = kind_info(resource.kind)
    return {"apiVersion": info.api_version, "kind": info.kind, **_write_dataclass(resource)}


def _write_dataclass(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        if value is None or (value == field.default and _writes_empty(field.default)):
            continue
        out[_k8s_name(field.name)] = _write(value)
    return out


def _writes_empty(default: object) -> bool:
    """Whether a field default is "empty" ("", [], {}, or an all-empty object), so a field
    holding it is left out, as Kubernetes omits empty optional fields. Fields whose default
    is meaningful (a "" core group where the default group is another) are always written.
    """
    return default is not dataclasses.MISSING and _write(default) in ("", [], {})


def _write(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _write_dataclass(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bool | int | float | str):  # float: HTTPFault's percentages
        return value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, tuple):
        return [_write(item) for item in value]
    if isinstance(value, Mapping):  # JSON keys are strings (PeerAuthentication's ports)
        return {str(key): _write(item) for key, item in value.items()}
    raise TypeError(f"cannot write {type(value).__name__} to a Kubernetes object")
