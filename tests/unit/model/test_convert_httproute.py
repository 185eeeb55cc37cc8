"""Converter tests for HTTPRoute: every field, CRD defaults, and CRD/webhook validation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from agent.model.convert import from_dict, to_dict
from agent.model.gateway import (
    GATEWAY_GROUP,
    BackendObjectReference,
    ParentReference,
    RouteStatus,
)
from agent.model.httproute import (
    DEFAULT_MATCHES,
    DEFAULT_RULES,
    FilterType,
    Fraction,
    HTTPHeader,
    HTTPMethod,
    HTTPRoute,
    HTTPRouteMatch,
    PathMatch,
    PathMatchType,
    PathModifier,
    PathModifierType,
    StringMatchType,
)
from agent.model.meta import ConditionStatus
from tests.unit.model.helpers import DELETE, edit, error_of, round_trip

ROUTE: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "orders", "namespace": "shop"},
    "spec": {
        "parentRefs": [
            {"name": "edge", "namespace": "infra", "sectionName": "https"},
            {"name": "edge", "namespace": "infra", "sectionName": "http"},
            {"group": "", "kind": "Service", "name": "orders", "port": 8080},
        ],
        "hostnames": ["shop.example.com", "*.shop.example.com"],
        "rules": [
            {
                "name": "api",
                "matches": [
                    {
                        "path": {"type": "PathPrefix", "value": "/api"},
                        "headers": [
                            {"name": "x-version", "value": "2"},
                            {"type": "RegularExpression", "name": "x-user", "value": "^a.*"},
                        ],
                        "queryParams": [{"name": "debug", "value": "1"}],
                        "method": "POST",
                    },
                    {"path": {"type": "Exact", "value": "/health"}},
                    {"path": {"type": "RegularExpression", "value": "/items/[0-9]+"}},
                    {"headers": [{"name": "x-canary", "value": "yes"}]},
                ],
                "filters": [
                    {
                        "type": "RequestHeaderModifier",
                        "requestHeaderModifier": {
                            "set": [{"name": "x-route", "value": "orders"}],
                            "add": [{"name": "x-trace", "value": "1"}],
                            "remove": ["x-internal"],
                        },
                    },
                    {
                        "type": "ResponseHeaderModifier",
                        "responseHeaderModifier": {"set": [{"name": "server", "value": "tulle"}]},
                    },
                    {
                        "type": "RequestMirror",
                        "requestMirror": {
                            "backendRef": {"name": "shadow", "port": 80},
                            "fraction": {"numerator": 5},
                        },
                    },
                    {
                        "type": "RequestMirror",
                        "requestMirror": {
                            "backendRef": {"name": "audit", "port": 80},
                            "percent": 10,
                        },
                    },
                    {
                        "type": "CORS",
                        "cors": {
                            "allowOrigins": [
                                "https://shop.example.com",
                                "https://*.example.org:8443",
                            ],
                            "allowCredentials": True,
                            "allowMethods": ["GET", "POST"],
                            "allowHeaders": ["x-user"],
                            "exposeHeaders": ["x-request-id"],
                        },
                    },
                    {
                        "type": "ExtensionRef",
                        "extensionRef": {"group": "tulle.dev", "kind": "RateLimit", "name": "rl"},
                    },
                ],
                "backendRefs": [
                    {"name": "orders", "port": 8080, "weight": 90},
                    {
                        "name": "orders-v2",
                        "namespace": "canary",
                        "port": 8080,
                        "weight": 10,
                        "filters": [
                            {
                                "type": "URLRewrite",
                                "urlRewrite": {
                                    "hostname": "orders.internal",
                                    "path": {"type": "ReplaceFullPath", "replaceFullPath": "/v2"},
                                },
                            }
                        ],
                    },
                    {"group": "tulle.dev", "kind": "Backend", "name": "static"},
                ],
                "timeouts": {"request": "2h", "backendRequest": "1h2m"},
                "retry": {"codes": [502, 503], "attempts": 3, "backoff": "100ms"},
            },
            {
                "matches": [{"path": {"value": "/old"}}],
                "filters": [
                    {
                        "type": "RequestRedirect",
                        "requestRedirect": {
                            "scheme": "https",
                            "hostname": "new.example.com",
                            "port": 443,
                            "statusCode": 301,
                            "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"},
                        },
                    }
                ],
            },
            {
                "matches": [{"path": {"value": "/legacy"}}],
                "filters": [
                    {
                        "type": "URLRewrite",
                        "urlRewrite": {
                            "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": ""}
                        },
                    }
                ],
                "backendRefs": [{"name": "legacy", "port": 80, "weight": 0}],
            },
        ],
    },
    "status": {
        "parents": [
            {
                "parentRef": {"name": "edge", "namespace": "infra", "sectionName": "https"},
                "controllerName": "tulle.dev/gateway-controller",
                "conditions": [
                    {"type": "Accepted", "status": "True", "reason": "Accepted"},
                    {"type": "ResolvedRefs", "status": "False", "reason": "BackendNotFound"},
                ],
            }
        ]
    },
}

MINIMAL: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1beta1",
    "kind": "HTTPRoute",
    "metadata": {"name": "web"},
    "spec": {
        "parentRefs": [{"name": "edge"}],
        "rules": [{"backendRefs": [{"name": "web", "port": 80}]}],
    },
}


def test_route_reads_matches_and_backends() -> None:
    route = round_trip(ROUTE)
    assert isinstance(route, HTTPRoute)
    spec = route.spec
    assert spec.parent_refs[0] == ParentReference(
        name="edge", group=GATEWAY_GROUP, kind="Gateway", namespace="infra", section_name="https"
    )
    assert (spec.parent_refs[2].group, spec.parent_refs[2].kind) == ("", "Service")
    assert spec.hostnames == ("shop.example.com", "*.shop.example.com")
    api = spec.rules[0]
    assert api.name == "api"
    first, exact, regex, header_only = api.matches
    assert first.path == PathMatch(PathMatchType.PATH_PREFIX, "/api")
    assert [(h.name, h.type) for h in first.headers] == [
        ("x-version", StringMatchType.EXACT),
        ("x-user", StringMatchType.REGULAR_EXPRESSION),
    ]
    assert first.query_params[0].type is StringMatchType.EXACT
    assert first.method is HTTPMethod.POST
    assert exact.path.type is PathMatchType.EXACT
    assert regex.path == PathMatch(PathMatchType.REGULAR_EXPRESSION, "/items/[0-9]+")
    # A match without a path gets the CRD default PathPrefix "/".
    assert header_only.path == PathMatch(PathMatchType.PATH_PREFIX, "/")
    weights = [(b.name, b.namespace, b.weight) for b in api.backend_refs]
    assert weights == [("orders", None, 90), ("orders-v2", "canary", 10), ("static", None, 1)]
    assert (api.backend_refs[0].group, api.backend_refs[0].kind) == ("", "Service")
    assert api.backend_refs[2].port is None  # only core Services need a port
    assert spec.rules[2].backend_refs[0].weight == 0
    assert api.timeouts is not None
    assert api.timeouts.request == timedelta(hours=2)
    assert api.timeouts.backend_request == timedelta(hours=1, minutes=2)
    assert api.retry is not None
    assert (api.retry.codes, api.retry.attempts) == ((502, 503), 3)
    assert api.retry.backoff == timedelta(milliseconds=100)


def test_route_reads_filters() -> None:
    route = from_dict(ROUTE)
    assert isinstance(route, HTTPRoute)
    api, redirect_rule, rewrite_rule = route.spec.rules
    types = [f.type for f in api.filters]
    assert types == [
        FilterType.REQUEST_HEADER_MODIFIER,
        FilterType.RESPONSE_HEADER_MODIFIER,
        FilterType.REQUEST_MIRROR,
        FilterType.REQUEST_MIRROR,
        FilterType.CORS,
        FilterType.EXTENSION_REF,
    ]
    request_headers = api.filters[0].request_header_modifier
    assert request_headers is not None
    assert request_headers.set == (HTTPHeader("x-route", "orders"),)
    assert request_headers.remove == ("x-internal",)
    assert api.filters[0].response_header_modifier is None
    mirror = api.filters[2].request_mirror
    assert mirror is not None
    assert mirror.backend_ref == BackendObjectReference(name="shadow", port=80)
    assert mirror.fraction == Fraction(numerator=5, denominator=100)
    assert api.filters[3].request_mirror is not None
    assert api.filters[3].request_mirror.percent == 10
    cors = api.filters[4].cors
    assert cors is not None
    assert (cors.allow_credentials, cors.max_age) == (True, 5)
    extension = api.filters[5].extension_ref
    assert extension is not None and extension.kind == "RateLimit"
    rewrite = api.backend_refs[1].filters[0].url_rewrite
    assert rewrite is not None and rewrite.hostname == "orders.internal"
    assert rewrite.path == PathModifier(PathModifierType.REPLACE_FULL_PATH, replace_full_path="/v2")
    redirect = redirect_rule.filters[0].request_redirect
    assert redirect is not None
    assert (redirect.scheme, redirect.hostname, redirect.port, redirect.status_code) == (
        "https",
        "new.example.com",
        443,
        301,
    )
    prefix_rewrite = rewrite_rule.filters[0].url_rewrite
    assert prefix_rewrite is not None and prefix_rewrite.path is not None
    assert prefix_rewrite.path.replace_prefix_match == ""


def test_route_status_is_typed() -> None:
    route = from_dict(ROUTE)
    assert isinstance(route, HTTPRoute)
    assert route.status is not None
    parent = route.status.parents[0]
    assert parent.parent_ref.section_name == "https"
    assert parent.controller_name == "tulle.dev/gateway-controller"
    assert [(c.type, c.status) for c in parent.conditions] == [
        ("Accepted", ConditionStatus.TRUE),
        ("ResolvedRefs", ConditionStatus.FALSE),
    ]


def test_route_defaults_are_applied_and_written() -> None:
    route = round_trip(MINIMAL)
    assert isinstance(route, HTTPRoute)
    assert route.metadata.namespace == "default"
    assert route.spec.parent_refs[0] == ParentReference(name="edge")
    assert route.status == RouteStatus()
    rule = route.spec.rules[0]
    assert rule.matches == DEFAULT_MATCHES == (HTTPRouteMatch(path=PathMatch()),)
    assert rule.backend_refs[0].weight == 1
    written = to_dict(route)
    assert "status" not in written
    assert written["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert written["spec"]["rules"][0]["matches"] == [
        {"path": {"type": "PathPrefix", "value": "/"}}
    ]
    assert written["spec"]["parentRefs"][0] == {
        "name": "edge",
        "group": GATEWAY_GROUP,
        "kind": "Gateway",
    }


def test_route_without_rules_gets_the_default_rule() -> None:
    route = round_trip(edit(MINIMAL, "spec.rules", DELETE))
    assert isinstance(route, HTTPRoute)
    assert route.spec.rules == DEFAULT_RULES


def test_empty_matches_mean_the_default_match() -> None:
    route = from_dict(edit(MINIMAL, "spec.rules[0].matches", []))
    assert isinstance(route, HTTPRoute)
    assert route.spec.rules[0].matches == DEFAULT_MATCHES


def test_filter_defaults() -> None:
    doc = edit(
        MINIMAL,
        "spec.rules[0]",
        {
            "filters": [
                {"type": "RequestRedirect", "requestRedirect": {"scheme": "https"}},
                {"type": "CORS", "cors": {"allowOrigins": ["*"]}},
            ]
        },
    )
    route = round_trip(doc)
    assert isinstance(route, HTTPRoute)
    redirect, cors = route.spec.rules[0].filters
    assert redirect.request_redirect is not None and redirect.request_redirect.status_code == 302
    assert cors.cors is not None and cors.cors.max_age == 5


def test_zero_request_timeout_allows_any_backend_timeout() -> None:
    doc = edit(MINIMAL, "spec.rules[0].timeouts", {"request": "0s", "backendRequest": "30s"})
    route = round_trip(doc)
    assert isinstance(route, HTTPRoute)
    assert route.spec.rules[0].timeouts is not None
    assert route.spec.rules[0].timeouts.request == timedelta(0)
    assert to_dict(route)["spec"]["rules"][0]["timeouts"] == {
        "request": "0s",
        "backendRequest": "30s",
    }


R = "HTTPRoute shop/orders"
M = "HTTPRoute default/web"


def rule0(doc: dict[str, Any], rule: dict[str, Any]) -> dict[str, Any]:
    return edit(doc, "spec.rules[0]", rule)


def redirect_filter(path_type: str = "ReplacePrefixMatch") -> dict[str, Any]:
    key = "replacePrefixMatch" if path_type == "ReplacePrefixMatch" else "replaceFullPath"
    return {
        "type": "RequestRedirect",
        "requestRedirect": {"path": {"type": path_type, key: "/x"}},
    }


ERRORS = [
    (
        edit(ROUTE, "spec.rules[0].matches[1].path.type", "Regex"),
        f'{R}: spec.rules[0].matches[1].path.type: unsupported value "Regex" '
        "(supported: Exact, PathPrefix, RegularExpression)",
    ),
    (
        edit(ROUTE, "spec.rules[0].matches[1].path.value", "health"),
        f'{R}: spec.rules[0].matches[1].path.value: invalid value "health": must be an '
        'absolute path and start with "/"',
    ),
    (
        edit(ROUTE, "spec.rules[0].matches[0].path.value", "/api//v1"),
        f'{R}: spec.rules[0].matches[0].path.value: invalid value "/api//v1": '
        'must not contain "//"',
    ),
    (
        edit(ROUTE, "spec.rules[0].matches[0].path.value", "/api/../admin"),
        f'{R}: spec.rules[0].matches[0].path.value: invalid value "/api/../admin": '
        'must not contain "/../"',
    ),
    (
        edit(ROUTE, "spec.rules[0].matches[0].path.value", "/api/."),
        f'{R}: spec.rules[0].matches[0].path.value: invalid value "/api/.": must not end with "/."',
    ),
    (
        edit(ROUTE, "spec.rules[0].matches[0].path.value", "/a b"),
        f'{R}: spec.rules[0].matches[0].path.value: invalid value "/a b": must only contain '
        "valid path characters (RFC 3986)",
    ),
    (
        edit(ROUTE, "spec.rules[0].matches[2].path.value", "/items/[0-9+"),
        f'{R}: spec.rules[0].matches[2].path.value: invalid value "/items/[0-9+": regular '
        "expression is not valid RE2 syntax (missing ]: [0-9+)",
    ),
    (
        edit(ROUTE, "spec.rules[0].matches[0].headers[0].name", "x version"),
        f'{R}: spec.rules[0].matches[0].headers[0].name: invalid value "x version": must be a '
        "valid HTTP header name (RFC 7230 token characters)",
    ),
    (
        edit(ROUTE, "spec.rules[0].matches[0].headers[0].name", ":authority"),
        f'{R}: spec.rules[0].matches[0].headers[0].name: invalid value ":authority": must be a '
        "valid HTTP header name (RFC 7230 token characters)",
    ),
    (
        edit(ROUTE, "spec.rules[0].matches[0].headers[1].name", "x-version"),
        f'{R}: spec.rules[0].matches[0].headers[1].name: duplicate value "x-version"',
    ),
    (
        edit(ROUTE, "spec.rules[0].matches[0].headers[0].value", ""),
        f"{R}: spec.rules[0].matches[0].headers[0].value: must be 1 to 4096 characters",
    ),
    (
        edit(ROUTE, "spec.rules[0].matches[0].headers[0].type", "Prefix"),
        f'{R}: spec.rules[0].matches[0].headers[0].type: unsupported value "Prefix" '
        "(supported: Exact, RegularExpression)",
    ),
    (
        edit(ROUTE, "spec.rules[0].matches[0].method", "get"),
        f'{R}: spec.rules[0].matches[0].method: unsupported value "get" '
        "(supported: GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH)",
    ),
    (
        edit(ROUTE, "spec.rules[0].backendRefs[0].weight", 1_000_001),
        f"{R}: spec.rules[0].backendRefs[0].weight: must be between 0 and 1000000, got 1000001",
    ),
    (
        edit(ROUTE, "spec.rules[0].backendRefs[0].weight", -1),
        f"{R}: spec.rules[0].backendRefs[0].weight: must be between 0 and 1000000, got -1",
    ),
    (
        edit(ROUTE, "spec.rules[0].backendRefs[0].port", DELETE),
        f"{R}: spec.rules[0].backendRefs[0].port: required when referring to a Service",
    ),
    (
        edit(ROUTE, "spec.rules[0].backendRefs[0].port", 65536),
        f"{R}: spec.rules[0].backendRefs[0].port: must be between 1 and 65535, got 65536",
    ),
    (
        edit(ROUTE, "spec.rules[0].backendRefs[0].name", DELETE),
        f"{R}: spec.rules[0].backendRefs[0].name: required",
    ),
    (
        edit(ROUTE, "spec.rules[1].filters[0].requestRedirect.statusCode", 304),
        f"{R}: spec.rules[1].filters[0].requestRedirect.statusCode: unsupported value 304 "
        "(supported: 301, 302, 303, 307, 308)",
    ),
    (
        edit(ROUTE, "spec.rules[1].filters[0].requestRedirect.scheme", "ftp"),
        f'{R}: spec.rules[1].filters[0].requestRedirect.scheme: unsupported value "ftp" '
        "(supported: http, https)",
    ),
    (
        edit(ROUTE, "spec.rules[1].filters[0].requestRedirect.hostname", "*.example.com"),
        f'{R}: spec.rules[1].filters[0].requestRedirect.hostname: invalid value "*.example.com": '
        "wildcards are not allowed here",
    ),
    (
        edit(ROUTE, "spec.rules[1].filters[0].requestRedirect.path.type", "ReplaceFullPath"),
        f"{R}: spec.rules[1].filters[0].requestRedirect.path.replaceFullPath: required when "
        "type is ReplaceFullPath",
    ),
    (
        edit(ROUTE, "spec.rules[1].filters[0].requestRedirect.path.type", "ReplaceSuffix"),
        f"{R}: spec.rules[1].filters[0].requestRedirect.path.type: unsupported value "
        '"ReplaceSuffix" (supported: ReplaceFullPath, ReplacePrefixMatch)',
    ),
    (
        edit(ROUTE, "spec.rules[1].matches[0].path.type", "Exact"),
        f"{R}: spec.rules[1].filters[0].requestRedirect.path.type: ReplacePrefixMatch requires "
        "the rule to have exactly one match, of type PathPrefix",
    ),
    (
        rule0(MINIMAL, {"matches": [{}, {}], "filters": [redirect_filter()]}),
        f"{M}: spec.rules[0].filters[0].requestRedirect.path.type: ReplacePrefixMatch requires "
        "the rule to have exactly one match, of type PathPrefix",
    ),
    (
        edit(ROUTE, "spec.rules[2].matches[0].path.type", "RegularExpression"),
        f"{R}: spec.rules[2].filters[0].urlRewrite.path.type: ReplacePrefixMatch requires "
        "the rule to have exactly one match, of type PathPrefix",
    ),
    (
        rule0(MINIMAL, {"filters": [redirect_filter()], "backendRefs": [{"name": "a", "port": 1}]}),
        f"{M}: spec.rules[0].filters[0]: RequestRedirect filter must not be used with backendRefs",
    ),
    (
        rule0(
            MINIMAL,
            {
                "filters": [
                    redirect_filter("ReplaceFullPath"),
                    {"type": "URLRewrite", "urlRewrite": {"hostname": "a.example.com"}},
                ]
            },
        ),
        f"{M}: spec.rules[0].filters: may specify either RequestRedirect or URLRewrite, but "
        "not both",
    ),
    (
        rule0(
            MINIMAL,
            {"filters": [redirect_filter("ReplaceFullPath"), redirect_filter("ReplaceFullPath")]},
        ),
        f"{M}: spec.rules[0].filters[1].type: RequestRedirect filter cannot be repeated",
    ),
    (
        edit(ROUTE, "spec.rules[0].filters[0].type", "ResponseHeaderModifier"),
        f"{R}: spec.rules[0].filters[0].requestHeaderModifier: must not be set when type is "
        "ResponseHeaderModifier",
    ),
    (
        edit(ROUTE, "spec.rules[0].filters[0]", {"type": "RequestHeaderModifier"}),
        f"{R}: spec.rules[0].filters[0].requestHeaderModifier: required",
    ),
    (
        edit(ROUTE, "spec.rules[0].filters[0].type", "AddHeader"),
        f'{R}: spec.rules[0].filters[0].type: unsupported value "AddHeader" (supported: '
        "RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, RequestRedirect, "
        "URLRewrite, CORS, ExtensionRef)",
    ),
    (
        edit(ROUTE, "spec.rules[0].filters[0].requestHeaderModifier.remove", ["X-Route"]),
        f'{R}: spec.rules[0].filters[0].requestHeaderModifier.remove[0]: header "X-Route" is '
        "already modified by this filter",
    ),
    (
        edit(ROUTE, "spec.rules[0].filters[2].requestMirror.percent", 50),
        f"{R}: spec.rules[0].filters[2].requestMirror.fraction: only one of percent or fraction "
        "may be specified",
    ),
    (
        edit(ROUTE, "spec.rules[0].filters[2].requestMirror.fraction.numerator", 101),
        f"{R}: spec.rules[0].filters[2].requestMirror.fraction.numerator: must be less than or "
        "equal to denominator",
    ),
    (
        edit(ROUTE, "spec.rules[0].filters[3].requestMirror.percent", 101),
        f"{R}: spec.rules[0].filters[3].requestMirror.percent: must be between 0 and 100, got 101",
    ),
    (
        edit(ROUTE, "spec.rules[0].filters[3].requestMirror.backendRef.port", DELETE),
        f"{R}: spec.rules[0].filters[3].requestMirror.backendRef.port: required when referring "
        "to a Service",
    ),
    (
        edit(ROUTE, "spec.rules[0].filters[4].cors.allowOrigins", ["*", "https://a.example"]),
        f'{R}: spec.rules[0].filters[4].cors.allowOrigins: "*" cannot be combined with other '
        "values",
    ),
    (
        edit(ROUTE, "spec.rules[0].filters[4].cors.allowOrigins", ["shop.example.com"]),
        f'{R}: spec.rules[0].filters[4].cors.allowOrigins[0]: invalid value "shop.example.com": '
        'must be "*" or an origin such as https://example.com',
    ),
    (
        edit(ROUTE, "spec.rules[0].filters[4].cors.maxAge", 0),
        f"{R}: spec.rules[0].filters[4].cors.maxAge: must be at least 1, got 0",
    ),
    (
        edit(ROUTE, "spec.rules[0].filters[5].extensionRef.group", DELETE),
        f"{R}: spec.rules[0].filters[5].extensionRef.group: required",
    ),
    (
        edit(ROUTE, "spec.rules[0].timeouts.request", "10"),
        f'{R}: spec.rules[0].timeouts.request: invalid duration "10": must be 1 to 4 components '
        "of up to 5 digits, each followed by a unit h, m, s or ms (for example 10s, 500ms, 1h2m)",
    ),
    (
        edit(ROUTE, "spec.rules[0].timeouts.request", "1.5s"),
        f'{R}: spec.rules[0].timeouts.request: invalid duration "1.5s": must be 1 to 4 '
        "components of up to 5 digits, each followed by a unit h, m, s or ms (for example 10s, "
        "500ms, 1h2m)",
    ),
    (
        edit(ROUTE, "spec.rules[0].timeouts.backendRequest", "2h1s"),
        f"{R}: spec.rules[0].timeouts.backendRequest: must not be longer than the request timeout",
    ),
    (
        edit(ROUTE, "spec.rules[0].retry.codes", [503, 200]),
        f"{R}: spec.rules[0].retry.codes[1]: must be between 400 and 599, got 200",
    ),
    (
        edit(ROUTE, "spec.rules[0].retry.attempts", -1),
        f"{R}: spec.rules[0].retry.attempts: must be between 0 and 10, got -1",
    ),
    (  # issue 9: retries are capped (each holds a body and a backend connection)
        edit(ROUTE, "spec.rules[0].retry.attempts", 11),
        f"{R}: spec.rules[0].retry.attempts: must be between 0 and 10, got 11",
    ),
    # issue 9, item 4: nothing from a route may smuggle bytes onto the wire.
    (
        edit(ROUTE, "spec.rules[0].filters[0].requestHeaderModifier.set[0].value", "a\r\nx: 1"),
        f"{R}: spec.rules[0].filters[0].requestHeaderModifier.set[0].value: invalid value "
        '"a\\r\\nx: 1": must not contain a control character ("\\r" at offset 1)',
    ),
    (
        edit(ROUTE, "spec.rules[0].filters[0].requestHeaderModifier.add[0].value", "1\x00"),
        f"{R}: spec.rules[0].filters[0].requestHeaderModifier.add[0].value: invalid value "
        '"1\\u0000": must not contain a control character ("\\u0000" at offset 1)',
    ),
    (
        edit(ROUTE, "spec.rules[0].filters[1].responseHeaderModifier.set[0].value", "tulle\n"),
        f"{R}: spec.rules[0].filters[1].responseHeaderModifier.set[0].value: invalid value "
        '"tulle\\n": must not contain a control character ("\\n" at offset 5)',
    ),
    (
        edit(ROUTE, "spec.rules[0].filters[1].responseHeaderModifier.set[0].value", " tulle"),
        f"{R}: spec.rules[0].filters[1].responseHeaderModifier.set[0].value: invalid value "
        '" tulle": must not begin or end with whitespace',
    ),
    (
        edit(ROUTE, "spec.rules[0].filters[0].requestHeaderModifier.set[0].name", "x-route\n"),
        f"{R}: spec.rules[0].filters[0].requestHeaderModifier.set[0].name: invalid value "
        '"x-route\\n": must be a valid HTTP header name (RFC 7230 token characters)',
    ),
    (
        edit(ROUTE, "spec.rules[0].matches[0].path.value", "/api\n"),
        f'{R}: spec.rules[0].matches[0].path.value: invalid value "/api\\n": must only contain '
        "valid path characters (RFC 3986)",
    ),
    (
        edit(
            ROUTE,
            "spec.rules[0].backendRefs[1].filters[0].urlRewrite.path.replaceFullPath",
            "/v2 HTTP/1.1\r\nHost: evil",
        ),
        f"{R}: spec.rules[0].backendRefs[1].filters[0].urlRewrite.path.replaceFullPath: "
        'invalid value "/v2 HTTP/1.1\\r\\nHost: evil": must only contain valid path '
        "characters (RFC 3986)",
    ),
    (
        edit(
            ROUTE,
            "spec.rules[0].backendRefs[1].filters[0].urlRewrite.path.replaceFullPath",
            "/v2/../admin",
        ),
        f"{R}: spec.rules[0].backendRefs[1].filters[0].urlRewrite.path.replaceFullPath: "
        'invalid value "/v2/../admin": must not contain "/../"',
    ),
    (
        edit(
            ROUTE,
            "spec.rules[0].backendRefs[1].filters[0].urlRewrite.hostname",
            "orders.internal\n",
        ),
        f"{R}: spec.rules[0].backendRefs[1].filters[0].urlRewrite.hostname: invalid value "
        '"orders.internal\\n": must be a lowercase RFC 1123 hostname, optionally prefixed '
        "by '*.'",
    ),
    (
        edit(ROUTE, "spec.rules[1].filters[0].requestRedirect.path.replacePrefixMatch", "x"),
        f"{R}: spec.rules[1].filters[0].requestRedirect.path.replacePrefixMatch: invalid value "
        '"x": must be an absolute path and start with "/"',
    ),
    (
        edit(ROUTE, "spec.rules[1].filters[0].requestRedirect.path.replacePrefixMatch", "/a%2F"),
        f"{R}: spec.rules[1].filters[0].requestRedirect.path.replacePrefixMatch: invalid value "
        '"/a%2F": must not contain "%2F"',
    ),
    (
        edit(ROUTE, "spec.rules[1].filters[0].requestRedirect.hostname", "a.example\r"),
        f"{R}: spec.rules[1].filters[0].requestRedirect.hostname: invalid value "
        "\"a.example\\r\": must be a lowercase RFC 1123 hostname, optionally prefixed by '*.'",
    ),
    # issue 9, item 6: regular expressions are RE2 (linear time), capped at 1024 bytes.
    (
        edit(ROUTE, "spec.rules[0].matches[2].path.value", "/(a)/\\1"),
        f'{R}: spec.rules[0].matches[2].path.value: invalid value "/(a)/\\\\1": regular '
        "expression uses backreferences (\\1 ... \\9), which RE2 does not support: Tulle "
        "matches regular expressions in linear time (RE2 syntax)",
    ),
    (
        edit(ROUTE, "spec.rules[0].matches[0].headers[1].value", "(?!admin).*"),
        f"{R}: spec.rules[0].matches[0].headers[1].value: invalid value "
        '"(?!admin).*": regular expression uses negative lookahead (?!...), which RE2 does '
        "not support: Tulle matches regular expressions in linear time (RE2 syntax)",
    ),
    (
        edit(ROUTE, "spec.rules[0].matches[0].headers[1].value", "a" * 1025),
        f"{R}: spec.rules[0].matches[0].headers[1].value: invalid value "
        f'"{"a" * 77}...": regular expression is 1025 bytes long; regular expressions are '
        "limited to 1024 bytes",
    ),
    (
        edit(ROUTE, "spec.rules[1].name", "api"),
        f'{R}: spec.rules[1].name: duplicate value "api"',
    ),
    (
        edit(ROUTE, "spec.rules", [{}] * 17),
        f"{R}: spec.rules: must have at most 16 items, got 17",
    ),
    (edit(ROUTE, "spec.rules", []), f"{R}: spec.rules: must have at least 1 item"),
    (
        edit(ROUTE, "spec.rules", [{"matches": [{}] * 64}, {"matches": [{}] * 64}, {}]),
        f"{R}: spec.rules: the total number of matches across all rules must be at most 128",
    ),
    (
        edit(ROUTE, "spec.hostnames[1]", "*"),
        f'{R}: spec.hostnames[1]: invalid value "*": must be a lowercase RFC 1123 hostname, '
        "optionally prefixed by '*.'",
    ),
    (
        edit(ROUTE, "spec.hostnames", "shop.example.com"),
        f'{R}: spec.hostnames: expected array, got string "shop.example.com"',
    ),
    (
        edit(ROUTE, "spec.parentRefs[1].sectionName", "https"),
        f"{R}: spec.parentRefs[1]: duplicates parentRefs[0]",
    ),
    (
        edit(ROUTE, "spec.parentRefs[1].sectionName", DELETE),
        f"{R}: spec.parentRefs[1]: sectionName or port must be specified alike when "
        "parentRefs[0] refers to the same parent",
    ),
    (
        edit(ROUTE, "spec.parentRefs[0].name", DELETE),
        f"{R}: spec.parentRefs[0].name: required",
    ),
    (
        edit(ROUTE, "status.parents[0].controllerName", DELETE),
        f"{R}: status.parents[0].controllerName: required",
    ),
    (edit(ROUTE, "spec", DELETE), f"{R}: spec: required"),
    (edit(ROUTE, "spec.rules[0]", "api"), f'{R}: spec.rules[0]: expected object, got string "api"'),
]


@pytest.mark.parametrize(("doc", "message"), ERRORS, ids=[m for _, m in ERRORS])
def test_invalid_routes_name_route_and_field(doc: dict[str, Any], message: str) -> None:
    assert error_of(doc) == message
