"""GATEWAY-HTTP: HTTPRoutes on a Gateway listener, requests from a pod to the Gateway's
address. Each case has its own hostname, so all of them can be applied at once. The
behaviour asserted is the upstream test of the same name (conformance/tests/<name>.go)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conformance.case import Case
from conformance.cases.common import (
    GATEWAY_BASE,
    INFRA,
    OTHER,
    Expect,
    backend,
    gateway_parent,
    http_route,
    prefix,
    via_gateway,
)
from conformance.lab import Lab

PROFILE = "GATEWAY-HTTP"
CORE = ("Gateway", "HTTPRoute")
V1, V2 = "infra-backend-v1", "infra-backend-v2"


def _host(name: str) -> str:
    return name.lower() + ".example.com"


def _case(name: str, features: tuple[str, ...], rules: list[dict[str, Any]],
          expects: list[Expect], extra: tuple[dict[str, Any], ...] = ()) -> Case:
    host = _host(name)
    manifest = http_route(INFRA, name.lower(), gateway_parent(), rules, hostnames=[host])

    def check(lab: Lab) -> None:
        via_gateway(lab, host, expects)

    return Case(name, PROFILE, CORE + features, (*GATEWAY_BASE, *extra, manifest), check)


def _redirect(name: str, feature: str, redirect: dict[str, Any], path: str, status: int,
              location: Callable[[str], str]) -> Case:
    rules = [{"matches": [prefix("/")],
              "filters": [{"type": "RequestRedirect", "requestRedirect": redirect}]}]
    host = _host(name)
    return _case(name, (feature,) if feature else (), rules,
                 [Expect(path=path, status=status, location=location(host))])


def _header_filter(kind: str, set_: dict[str, str], add: dict[str, str], remove: list[str]
                   ) -> dict[str, Any]:
    return {"set": [{"name": k, "value": v} for k, v in set_.items()],
            "add": [{"name": k, "value": v} for k, v in add.items()], "remove": remove}


CASES = [
    _case("HTTPRouteSimpleSameNamespace", (), [{"backendRefs": [backend(V1)]}],
          [Expect(path="/", backend=V1)]),
    _case("HTTPRouteMatching", (), [
        {"matches": [prefix("/")], "backendRefs": [backend(V1)]},
        {"matches": [prefix("/v2")], "backendRefs": [backend(V2)]},
        {"matches": [{**prefix("/"), "headers": [{"name": "version", "value": "two"}]}],
         "backendRefs": [backend(V2)]},
    ], [Expect(path="/", backend=V1), Expect(path="/example", backend=V1),
        Expect(path="/v2", backend=V2), Expect(path="/v2/example", backend=V2),
        Expect(path="/v2example", backend=V1),  # PathPrefix matches whole path elements
        Expect(path="/", headers={"version": "two"}, backend=V2)]),  # more matches win
    _case("HTTPRouteReferenceGrant", ("ReferenceGrant",),
          [{"backendRefs": [backend("app-backend-v1", ns=OTHER)]}],
          [Expect(path="/", backend="app-backend-v1")],
          extra=({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
                  "metadata": {"name": "reference-grant", "namespace": OTHER},
                  "spec": {"from": [{"group": "gateway.networking.k8s.io",
                                     "kind": "HTTPRoute", "namespace": INFRA}],
                           "to": [{"group": "", "kind": "Service",
                                   "name": "app-backend-v1"}]}},)),
    _case("HTTPRouteInvalidCrossNamespaceBackendRef", ("ReferenceGrant",),
          [{"backendRefs": [backend("infra-backend-v1", ns=OTHER)]}],
          [Expect(path="/", status=500)]),  # no grant in that namespace: the spec's 500
    _case("HTTPRouteRequestHeaderModifier", (), [{
        "backendRefs": [backend(V1)],
        "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": _header_filter(
            "request", {"X-Header-Set": "set-overwrites-values"},
            {"X-Header-Add": "add-appends-values"}, ["X-Header-Remove"])}]}],
        [Expect(path="/", headers={"X-Header-Set": "some-other-value",
                                   "X-Header-Add": "add-value", "X-Header-Remove": "gone"},
                backend=V1,
                request_headers={"X-Header-Set": "set-overwrites-values",
                                 "X-Header-Add": "add-value,add-appends-values",
                                 "X-Header-Remove": None})]),
    _case("HTTPRouteQueryParamMatching", ("HTTPRouteQueryParamMatching",), [
        {"matches": [{"queryParams": [{"name": "animal", "value": "whale"}]}],
         "backendRefs": [backend(V1)]},
        {"matches": [{"queryParams": [{"name": "animal", "value": "dolphin"}]}],
         "backendRefs": [backend(V2)]},
    ], [Expect(path="/?animal=whale", backend=V1), Expect(path="/?animal=dolphin", backend=V2),
        Expect(path="/?animal=dolphin&color=blue", backend=V2),
        Expect(path="/?ANIMAL=Whale", status=404), Expect(path="/", status=404)]),
    _case("HTTPRouteMethodMatching", ("HTTPRouteMethodMatching",), [
        {"matches": [{"method": "POST"}], "backendRefs": [backend(V1)]},
        {"matches": [{"method": "GET"}], "backendRefs": [backend(V2)]},
    ], [Expect(method="POST", backend=V1), Expect(method="GET", backend=V2),
        Expect(method="HEAD", status=404)]),
    _case("HTTPRouteResponseHeaderModifier", ("HTTPRouteResponseHeaderModification",), [{
        "backendRefs": [backend(V1)],
        "filters": [{"type": "ResponseHeaderModifier",
                     "responseHeaderModifier": _header_filter(
                         "response", {"X-Header-Set": "set-overwrites-values"},
                         {"X-Header-Add": "header-add"}, ["X-Header-Remove"])}]}],
        [Expect(path="/", headers={"X-Echo-Set-Header":
                                   "X-Header-Set:original,X-Header-Remove:val"},
                backend=V1, response_headers={"X-Header-Set": "set-overwrites-values",
                                              "X-Header-Add": "header-add",
                                              "X-Header-Remove": None})]),
    _case("HTTPRouteBackendRequestHeaderModifier",
          ("HTTPRouteBackendRequestHeaderModification",), [{
              "backendRefs": [backend(V1, filters=[{
                  "type": "RequestHeaderModifier", "requestHeaderModifier": _header_filter(
                      "request", {"X-Backend-Set": "v1"}, {}, ["X-Header-Remove"])}])]}],
          [Expect(path="/", headers={"X-Header-Remove": "gone"}, backend=V1,
                  request_headers={"X-Backend-Set": "v1", "X-Header-Remove": None})]),
    _redirect("HTTPRoutePathRedirect", "HTTPRoutePathRedirect",
              {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/full-path"}},
              "/original", 302, lambda h: f"http://{h}/full-path"),
    _redirect("HTTPRouteSchemeRedirect", "HTTPRouteSchemeRedirect",
              {"scheme": "https"}, "/scheme", 302, lambda h: f"https://{h}/scheme"),
    _redirect("HTTPRoutePortRedirect", "HTTPRoutePortRedirect",
              {"port": 8083}, "/port", 302, lambda h: f"http://{h}:8083/port"),
    _redirect("HTTPRouteRedirectHostAndStatus", "",
              {"hostname": "example.org", "statusCode": 301}, "/hostname", 301,
              lambda _h: "http://example.org/hostname"),
    *(_redirect(f"HTTPRoute{code}Redirect", f"HTTPRoute{code}RedirectStatusCode",
                {"statusCode": code, "path": {"type": "ReplacePrefixMatch",
                                              "replacePrefixMatch": "/new"}},
                "/old", code, lambda h: f"http://{h}/new/old")
      for code in (303, 307, 308)),
    _case("HTTPRouteRewritePath", ("HTTPRoutePathRewrite",), [
        {"matches": [prefix("/prefix/one")], "backendRefs": [backend(V1)],
         "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {
             "type": "ReplacePrefixMatch", "replacePrefixMatch": "/one"}}}]},
        {"matches": [prefix("/full/one")], "backendRefs": [backend(V1)],
         "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {
             "type": "ReplaceFullPath", "replaceFullPath": "/one"}}}]},
    ], [Expect(path="/prefix/one/two", backend=V1, seen_path="/one/two"),
        Expect(path="/full/one/two?q=1", backend=V1, seen_path="/one?q=1")]),
    _case("HTTPRouteRewriteHost", ("HTTPRouteHostRewrite",), [
        {"backendRefs": [backend(V1)],
         "filters": [{"type": "URLRewrite", "urlRewrite": {"hostname": "one.example.org"}}]},
    ], [Expect(path="/", backend=V1, seen_host="one.example.org")]),
    _case("HTTPRouteRequestTimeout", ("HTTPRouteRequestTimeout",), [
        {"matches": [prefix("/request-timeout")], "backendRefs": [backend(V1)],
         "timeouts": {"request": "500ms"}},
    ], [Expect(path="/request-timeout?delay=1s", status=504),
        Expect(path="/request-timeout", backend=V1)]),
    _case("HTTPRouteBackendTimeout", ("HTTPRouteBackendTimeout",), [
        {"matches": [prefix("/backend-timeout")], "backendRefs": [backend(V1)],
         "timeouts": {"request": "2s", "backendRequest": "500ms"}},
    ], [Expect(path="/backend-timeout?delay=1s", status=504),
        Expect(path="/backend-timeout", backend=V1)]),
    _case("HTTPRouteNamedRule", ("HTTPRouteNamedRouteRule",), [
        {"name": "named-rule", "matches": [prefix("/named")], "backendRefs": [backend(V1)]},
        {"matches": [prefix("/unnamed")], "backendRefs": [backend(V2)]},
    ], [Expect(path="/named", backend=V1), Expect(path="/unnamed", backend=V2)]),
    _case("HTTPRouteCORS", ("HTTPRouteCORS",), [
        {"backendRefs": [backend(V1)], "filters": [{"type": "CORS", "cors": {
            "allowOrigins": ["https://www.foo.com"], "allowMethods": ["GET", "OPTIONS"],
            "allowHeaders": ["x-header-1"], "maxAge": 3600}}]},
    ], [Expect(path="/", method="OPTIONS", status=200,
               headers={"Origin": "https://www.foo.com", "Access-Control-Request-Method": "GET"},
               response_headers={"Access-Control-Allow-Origin": "https://www.foo.com"}),
        Expect(path="/", headers={"Origin": "https://www.foo.com"}, backend=V1,
               response_headers={"Access-Control-Allow-Origin": "https://www.foo.com"})]),
]
