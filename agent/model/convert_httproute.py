"""Reader for HTTPRoute, with the defaults and validation of the Gateway API CRD (its
OpenAPI limits and CEL rules) and of the former admission webhook."""

from __future__ import annotations

from collections.abc import Callable

from agent.model.convert_core import MAX_PORT, MIN_PORT
from agent.model.convert_gateway import (
    read_parent_ref,
    read_route_status,
    require_service_port,
)
from agent.model.convert_httpfilter import read_filters
from agent.model.convert_session import read_session_persistence
from agent.model.gateway import ParentReference, RouteStatus
from agent.model.httproute import (
    DEFAULT_MATCHES,
    DEFAULT_RULES,
    FilterType,
    HeaderMatch,
    HTTPBackendRef,
    HTTPMethod,
    HTTPRoute,
    HTTPRouteFilter,
    HTTPRouteMatch,
    HTTPRouteRetry,
    HTTPRouteRule,
    HTTPRouteSpec,
    HTTPRouteTimeouts,
    PathMatch,
    PathMatchType,
    PathModifierType,
    QueryParamMatch,
    StringMatchType,
)
from agent.model.meta import ObjectMeta
from agent.model.reader import REQUIRED, Reader
from agent.model.validation import (
    dns1123_label,
    gateway_group,
    gateway_kind,
    hostname,
    http_path,
    http_token,
    object_name,
    regular_expression,
    section_name,
)


def read_http_route(r: Reader, metadata: ObjectMeta) -> HTTPRoute:
    return HTTPRoute(
        metadata=metadata,
        spec=r.obj("spec", _read_spec, REQUIRED),
        status=r.obj("status", read_route_status, RouteStatus()),
    )


def _read_spec(r: Reader) -> HTTPRouteSpec:
    spec = HTTPRouteSpec(
        parent_refs=r.objects("parentRefs", read_parent_ref, max_items=32),
        hostnames=r.string_list("hostnames", check=hostname, max_items=16),
        rules=r.objects("rules", _read_rule, min_items=1, max_items=16)
        if r.has("rules")
        else DEFAULT_RULES,
    )
    check_parent_refs(r, spec.parent_refs)
    r.check_unique("rules", [rule.name for rule in spec.rules], "name")
    if sum(len(rule.matches) for rule in spec.rules) > 128:
        r.fail("rules", "the total number of matches across all rules must be at most 128")
    return spec


def check_parent_refs(r: Reader, parent_refs: tuple[ParentReference, ...]) -> None:
    """References to one parent must all set sectionName/port alike, and differ in them."""
    first: dict[tuple[str, str, str, str], int] = {}
    for i, ref in enumerate(parent_refs):
        j = first.setdefault((ref.group, ref.kind, ref.namespace or "", ref.name), i)
        if j == i:
            continue
        other = parent_refs[j]
        if (ref.section_name is None) != (other.section_name is None) or (ref.port is None) != (
            other.port is None
        ):
            r.fail(
                f"parentRefs[{i}]",
                f"sectionName or port must be specified alike when parentRefs[{j}] "
                "refers to the same parent",
            )
        if (ref.section_name, ref.port) == (other.section_name, other.port):
            r.fail(f"parentRefs[{i}]", f"duplicates parentRefs[{j}]")


# --- rules -----------------------------------------------------------------------------


def _read_rule(r: Reader) -> HTTPRouteRule:
    rule = HTTPRouteRule(
        name=r.string("name", check=section_name),
        matches=r.objects("matches", _read_match, max_items=64) or DEFAULT_MATCHES,
        filters=read_filters(r, "filters"),
        backend_refs=r.objects("backendRefs", _read_backend_ref, max_items=16),
        timeouts=r.obj("timeouts", _read_timeouts),
        retry=r.obj("retry", _read_retry),
        session_persistence=r.obj("sessionPersistence", read_session_persistence),
    )
    for i, f in enumerate(rule.filters):
        if f.type is FilterType.REQUEST_REDIRECT and rule.backend_refs:
            r.fail(f"filters[{i}]", "RequestRedirect filter must not be used with backendRefs")
    prefix = PathMatchType.PATH_PREFIX
    if not (len(rule.matches) == 1 and rule.matches[0].path.type is prefix):
        for key, filters in [("filters", rule.filters)] + [
            (f"backendRefs[{b}].filters", ref.filters) for b, ref in enumerate(rule.backend_refs)
        ]:
            for i, f in enumerate(filters):
                if (where := _replace_prefix_field(f)) is not None:
                    r.fail(
                        f"{key}[{i}].{where}.path.type",
                        "ReplacePrefixMatch requires the rule to have exactly one match, "
                        "of type PathPrefix",
                    )
    return rule


def _replace_prefix_field(f: HTTPRouteFilter) -> str | None:
    """The field ("requestRedirect"/"urlRewrite") of a ReplacePrefixMatch filter, if any."""
    for field, value in (("requestRedirect", f.request_redirect), ("urlRewrite", f.url_rewrite)):
        if value is not None and value.path is not None:
            if value.path.type is PathModifierType.REPLACE_PREFIX_MATCH:
                return field
    return None


def _read_timeouts(r: Reader) -> HTTPRouteTimeouts:
    timeouts = HTTPRouteTimeouts(
        request=r.duration("request"), backend_request=r.duration("backendRequest")
    )
    request, backend = timeouts.request, timeouts.backend_request
    if request and backend is not None and backend > request:
        r.fail("backendRequest", "must not be longer than the request timeout")
    return timeouts


MAX_RETRY_ATTEMPTS = 10
"""Retries per request: each one holds the request body and a backend connection, so an
unbounded count lets one route multiply its load on a failing backend (Envoy's default
circuit breaker allows 3 concurrent retries; Linkerd's budget is 20% extra load)."""


def _read_retry(r: Reader) -> HTTPRouteRetry:
    return HTTPRouteRetry(
        codes=r.integer_list("codes", minimum=400, maximum=599, unique=True),
        attempts=r.integer("attempts", minimum=0, maximum=MAX_RETRY_ATTEMPTS),
        backoff=r.duration("backoff"),
    )


def _read_backend_ref(r: Reader) -> HTTPBackendRef:
    return read_backend_ref(r, read_filters)


def read_backend_ref(
    r: Reader, read_filters: Callable[[Reader, str], tuple[HTTPRouteFilter, ...]]
) -> HTTPBackendRef:
    """A backendRef of an HTTPRoute or GRPCRoute rule; ``read_filters`` applies the route
    kind's own filter rules."""
    ref = HTTPBackendRef(
        name=r.string("name", REQUIRED, check=object_name),
        group=r.string("group", "", check=gateway_group),
        kind=r.string("kind", "Service", check=gateway_kind),
        namespace=r.string("namespace", check=dns1123_label),
        port=r.integer("port", minimum=MIN_PORT, maximum=MAX_PORT),
        weight=r.integer("weight", 1, minimum=0, maximum=1_000_000),
        filters=read_filters(r, "filters"),
    )
    require_service_port(r, ref.group, ref.kind, ref.port)
    return ref


# --- matches ---------------------------------------------------------------------------


def _read_match(r: Reader) -> HTTPRouteMatch:
    match = HTTPRouteMatch(
        path=r.obj("path", _read_path_match, PathMatch()),
        headers=r.objects("headers", _read_header_match, max_items=16),
        query_params=r.objects("queryParams", _read_query_param_match, max_items=16),
        method=r.enum("method", HTTPMethod),
    )
    r.check_unique("headers", [h.name for h in match.headers], "name")
    r.check_unique("queryParams", [q.name for q in match.query_params], "name")
    return match


def _read_path_match(r: Reader) -> PathMatch:
    path = PathMatch(
        type=r.enum("type", PathMatchType, PathMatchType.PATH_PREFIX), value=r.string("value", "/")
    )
    value = path.value
    if len(value) > 1024:
        r.fail("value", "must be no more than 1024 characters")
    if path.type is PathMatchType.REGULAR_EXPRESSION:
        if (problem := regular_expression(value)) is not None:
            r.fail("value", problem)
        return path
    if (problem := http_path(value)) is not None:
        r.fail("value", problem)
    return path


def _read_string_match_value(r: Reader, max_length: int) -> tuple[StringMatchType, str]:
    match_type = r.enum("type", StringMatchType, StringMatchType.EXACT)
    value = r.string("value", REQUIRED)
    if not 1 <= len(value) <= max_length:
        r.fail("value", f"must be 1 to {max_length} characters")
    if match_type is StringMatchType.REGULAR_EXPRESSION:
        if (problem := regular_expression(value)) is not None:
            r.fail("value", problem)
    return match_type, value


def _read_header_match(r: Reader) -> HeaderMatch:
    name = r.string("name", REQUIRED, check=http_token)
    match_type, value = _read_string_match_value(r, 4096)
    return HeaderMatch(name=name, value=value, type=match_type)


def _read_query_param_match(r: Reader) -> QueryParamMatch:
    name = r.string("name", REQUIRED, check=http_token)
    match_type, value = _read_string_match_value(r, 1024)
    return QueryParamMatch(name=name, value=value, type=match_type)
