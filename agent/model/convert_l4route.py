"""Reader for TCPRoute and UDPRoute, with the CRD's defaults and bounds: 1 to 16 rules,
each with 1 to 16 backendRefs (weight 0..1000000, default 1), rule names unique, and the
parentRefs rules every route kind shares."""

from __future__ import annotations

from agent.model.convert_core import MAX_PORT, MIN_PORT
from agent.model.convert_gateway import read_parent_ref, read_route_status, require_service_port
from agent.model.convert_httproute import check_parent_refs
from agent.model.gateway import RouteStatus
from agent.model.l4route import BackendRef, L4RouteRule, L4RouteSpec, TCPRoute, UDPRoute
from agent.model.meta import ObjectMeta
from agent.model.reader import REQUIRED, Reader
from agent.model.validation import (
    dns1123_label,
    gateway_group,
    gateway_kind,
    object_name,
    section_name,
)

MAX_WEIGHT = 1_000_000


def read_tcp_route(r: Reader, metadata: ObjectMeta) -> TCPRoute:
    return TCPRoute(
        metadata=metadata,
        spec=r.obj("spec", read_l4_route_spec, REQUIRED),
        status=r.obj("status", read_route_status, RouteStatus()),
    )


def read_udp_route(r: Reader, metadata: ObjectMeta) -> UDPRoute:
    return UDPRoute(
        metadata=metadata,
        spec=r.obj("spec", read_l4_route_spec, REQUIRED),
        status=r.obj("status", read_route_status, RouteStatus()),
    )


def read_l4_route_spec(r: Reader) -> L4RouteSpec:
    spec = L4RouteSpec(
        parent_refs=r.objects("parentRefs", read_parent_ref, max_items=32),
        rules=r.objects("rules", read_l4_rule, min_items=1, max_items=16),
    )
    check_parent_refs(r, spec.parent_refs)
    r.check_unique("rules", [rule.name for rule in spec.rules if rule.name], "name")
    return spec


def read_l4_rule(r: Reader) -> L4RouteRule:
    """A rule of weighted backendRefs, as TCPRoute, UDPRoute and TLSRoute have."""
    return L4RouteRule(
        name=r.string("name", check=section_name),
        backend_refs=r.objects("backendRefs", _read_backend_ref, min_items=1, max_items=16),
    )


def _read_backend_ref(r: Reader) -> BackendRef:
    ref = BackendRef(
        name=r.string("name", REQUIRED, check=object_name),
        group=r.string("group", "", check=gateway_group),
        kind=r.string("kind", "Service", check=gateway_kind),
        namespace=r.string("namespace", check=dns1123_label),
        port=r.integer("port", minimum=MIN_PORT, maximum=MAX_PORT),
        weight=r.integer("weight", 1, minimum=0, maximum=MAX_WEIGHT),
    )
    require_service_port(r, ref.group, ref.kind, ref.port)
    return ref

