"""Reader for GRPCRoute, with the defaults and validation of the Gateway API CRD (its
OpenAPI limits and CEL rules). Filters, header modifiers, mirrors and backend references
read as HTTPRoute's do (the same upstream types); only the filter types differ."""

from __future__ import annotations

import re
from collections import Counter

from agent.model.convert_gateway import read_parent_ref, read_route_status
from agent.model.convert_httpfilter import read_filter
from agent.model.convert_httproute import check_parent_refs, read_backend_ref
from agent.model.convert_session import read_session_persistence
from agent.model.gateway import RouteStatus
from agent.model.grpcroute import (
    GRPC_FILTER_TYPES,
    GRPCHeaderMatch,
    GRPCMatchType,
    GRPCMethodMatch,
    GRPCRoute,
    GRPCRouteMatch,
    GRPCRouteRule,
    GRPCRouteSpec,
)
from agent.model.httproute import FilterType, HTTPBackendRef, HTTPRouteFilter
from agent.model.meta import ObjectMeta
from agent.model.reader import REQUIRED, Reader
from agent.model.validation import (
    hostname,
    http_token,
    quote,
    regular_expression,
    section_name,
)

# The CRD's CEL rules for Exact matches (GRPCMethodMatch): a protobuf full name for the
# service, an identifier for the method; neither may hold "/", which separates them in
# the request path.
_SERVICE = re.compile(r"\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*", re.IGNORECASE)
_METHOD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
MAX_MATCH_VALUE = 1024


def read_grpc_route(r: Reader, metadata: ObjectMeta) -> GRPCRoute:
    return GRPCRoute(
        metadata=metadata,
        spec=r.obj("spec", _read_spec, REQUIRED),
        status=r.obj("status", read_route_status, RouteStatus()),
    )


def _read_spec(r: Reader) -> GRPCRouteSpec:
    spec = GRPCRouteSpec(
        parent_refs=r.objects("parentRefs", read_parent_ref, max_items=32),
        hostnames=r.string_list("hostnames", check=hostname, max_items=16),
        rules=r.objects("rules", _read_rule, max_items=16),
    )
    check_parent_refs(r, spec.parent_refs)
    r.check_unique("rules", [rule.name for rule in spec.rules], "name")
    if sum(len(rule.matches) for rule in spec.rules) > 128:
        r.fail("rules", "the total number of matches across all rules must be at most 128")
    return spec


def _read_rule(r: Reader) -> GRPCRouteRule:
    return GRPCRouteRule(
        name=r.string("name", check=section_name),
        matches=r.objects("matches", _read_match, max_items=8),
        filters=_read_filters(r, "filters"),
        backend_refs=r.objects("backendRefs", _read_backend_ref, max_items=16),
        session_persistence=r.obj("sessionPersistence", read_session_persistence),
    )


def _read_backend_ref(r: Reader) -> HTTPBackendRef:
    return read_backend_ref(r, _read_filters)


def _read_filters(r: Reader, key: str) -> tuple[HTTPRouteFilter, ...]:
    filters = r.objects(key, read_filter, max_items=16)
    counts: Counter[FilterType] = Counter()
    for i, f in enumerate(filters):
        if f.type not in GRPC_FILTER_TYPES:
            allowed = ", ".join(t.value for t in GRPC_FILTER_TYPES)
            r.fail(
                f"{key}[{i}].type",
                f"unsupported value {quote(f.type.value)} for a GRPCRoute filter "
                f"(supported: {allowed})",
            )
        counts[f.type] += 1
        once = (FilterType.REQUEST_HEADER_MODIFIER, FilterType.RESPONSE_HEADER_MODIFIER)
        if counts[f.type] > 1 and f.type in once:
            r.fail(f"{key}[{i}].type", f"{f.type} filter cannot be repeated")
    return filters


# --- matches ---------------------------------------------------------------------------


def _read_match(r: Reader) -> GRPCRouteMatch:
    match = GRPCRouteMatch(
        method=r.obj("method", _read_method_match),
        headers=r.objects("headers", _read_header_match, max_items=16),
    )
    # listMapKey=name: the API server refuses repeated names; names differing only in case
    # are admitted and the later ones ignored when matching (GRPCHeaderMatch.name).
    r.check_unique("headers", [h.name for h in match.headers], "name")
    return match


def _read_method_match(r: Reader) -> GRPCMethodMatch:
    match = GRPCMethodMatch(
        type=r.enum("type", GRPCMatchType, GRPCMatchType.EXACT),
        service=r.string("service"),
        method=r.string("method"),
    )
    if not match.service and not match.method:
        r.fail(None, "one or both of 'service' or 'method' must be specified")
    for key, value, pattern, shape in (
        ("service", match.service, _SERVICE, r"^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$"),
        ("method", match.method, _METHOD, r"^[A-Za-z_][A-Za-z_0-9]*$"),
    ):
        if value is None:
            continue
        if len(value) > MAX_MATCH_VALUE:
            r.fail(key, f"must be no more than {MAX_MATCH_VALUE} characters")
        if match.type is GRPCMatchType.REGULAR_EXPRESSION:
            if (problem := regular_expression(value)) is not None:
                r.fail(key, problem)
        elif not pattern.fullmatch(value):
            r.fail(key, f"{key} must only contain valid characters (matching {shape})")
    return match


def _read_header_match(r: Reader) -> GRPCHeaderMatch:
    name = r.string("name", REQUIRED, check=http_token)
    match_type = r.enum("type", GRPCMatchType, GRPCMatchType.EXACT)
    value = r.string("value", REQUIRED)
    if not 1 <= len(value) <= 4096:
        r.fail("value", "must be 1 to 4096 characters")
    if match_type is GRPCMatchType.REGULAR_EXPRESSION:
        if (problem := regular_expression(value)) is not None:
            r.fail("value", problem)
    return GRPCHeaderMatch(name=name, value=value, type=match_type)
