"""Reader for TLSRoute (v1), with the bounds and CEL rules of the Gateway API v1.6 CRD:
hostnames required (1..1024, Hostname format, no IP), exactly one rule, 1..16 weighted
backendRefs (a core Service needs a port)."""

from __future__ import annotations

from agent.model.convert_core import MAX_PORT, MIN_PORT
from agent.model.convert_gateway import read_parent_ref, read_route_status, require_service_port
from agent.model.convert_httproute import check_parent_refs
from agent.model.gateway import RouteStatus
from agent.model.meta import ObjectMeta
from agent.model.reader import REQUIRED, Reader
from agent.model.tlsroute import TLSBackendRef, TLSRoute, TLSRouteRule, TLSRouteSpec
from agent.model.validation import (
    dns1123_label,
    gateway_group,
    gateway_kind,
    hostname,
    object_name,
    section_name,
)

MAX_HOSTNAMES = 1024


def read_tls_route(r: Reader, metadata: ObjectMeta) -> TLSRoute:
    return TLSRoute(
        metadata=metadata,
        spec=r.obj("spec", _read_spec, REQUIRED),
        status=r.obj("status", read_route_status, RouteStatus()),
    )


def _read_spec(r: Reader) -> TLSRouteSpec:
    spec = TLSRouteSpec(
        parent_refs=r.objects("parentRefs", read_parent_ref, max_items=32),
        hostnames=r.string_list(
            "hostnames", check=hostname, min_items=1, max_items=MAX_HOSTNAMES
        ),
        rules=r.objects("rules", _read_rule, min_items=1, max_items=1),
    )
    check_parent_refs(r, spec.parent_refs)
    return spec


def _read_rule(r: Reader) -> TLSRouteRule:
    return TLSRouteRule(
        name=r.string("name", check=section_name),
        backend_refs=r.objects("backendRefs", _read_backend_ref, min_items=1, max_items=16),
    )


def _read_backend_ref(r: Reader) -> TLSBackendRef:
    ref = TLSBackendRef(
        name=r.string("name", REQUIRED, check=object_name),
        group=r.string("group", "", check=gateway_group),
        kind=r.string("kind", "Service", check=gateway_kind),
        namespace=r.string("namespace", check=dns1123_label),
        port=r.integer("port", minimum=MIN_PORT, maximum=MAX_PORT),
        weight=r.integer("weight", 1, minimum=0, maximum=1_000_000),
    )
    require_service_port(r, ref.group, ref.kind, ref.port)
    return ref
