"""Reader for TLSRoute (v1), with the bounds and CEL rules of the Gateway API v1.6 CRD:
hostnames required (1..1024, Hostname format, no IP), exactly one rule, 1..16 weighted
backendRefs (a core Service needs a port)."""

from __future__ import annotations

from agent.model.convert_gateway import read_parent_ref, read_route_status
from agent.model.convert_httproute import check_parent_refs
from agent.model.convert_l4route import read_l4_rule
from agent.model.gateway import RouteStatus
from agent.model.meta import ObjectMeta
from agent.model.reader import REQUIRED, Reader
from agent.model.tlsroute import TLSRoute, TLSRouteSpec
from agent.model.validation import hostname

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
        rules=r.objects("rules", read_l4_rule, min_items=1, max_items=1),
    )
    check_parent_refs(r, spec.parent_refs)
    return spec
