"""MESH-HTTP (GAMMA): HTTPRoutes whose parent is a Service, requests from a client pod to the
Service by name (or ClusterIP), through the kernel's redirect to the node's waypoint. Cases
share the `echo` Service: each one owns a path prefix (upstream conformance/tests/mesh/)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from conformance.case import Case
from conformance.cases.common import (
    CONSUMER,
    MESH,
    MESH_BASE,
    Expect,
    backend,
    cluster_ip,
    http_route,
    prefix,
    service_parent,
    via_mesh,
)
from conformance.lab import Lab

PROFILE = "MESH-HTTP"
CORE = ("Mesh", "HTTPRoute")
V1, V2 = "echo-v1", "echo-v2"
HOST = f"echo.{MESH}"


def _case(name: str, features: tuple[str, ...], rules: list[dict[str, Any]],
          expects: list[Expect], ns: str = MESH,
          extra: tuple[dict[str, Any], ...] = ()) -> Case:
    parent = service_parent("echo")
    if ns != MESH:
        parent = {**parent, "namespace": MESH}
    manifest = http_route(ns, "mesh-" + name.lower(), parent, rules)

    def check(lab: Lab) -> None:
        via_mesh(lab, expects, ns=ns)
        if ns != MESH:  # a consumer route serves its own namespace's clients only
            via_mesh(lab, [replace(e, status=404, backend=None) for e in expects])

    return Case(name, PROFILE, CORE + features, (*MESH_BASE, *extra, manifest), check)


def _redirect(name: str, feature: str, redirect: dict[str, Any], path: str, location: str
              ) -> Case:
    rules = [{"matches": [prefix(path)],
              "filters": [{"type": "RequestRedirect", "requestRedirect": redirect}]}]
    return _case(name, (feature,), rules, [Expect(path=path, status=302, location=location)])


def _cluster_ip_check(lab: Lab) -> None:
    """The route applies whether the client names the Service or dials its ClusterIP
    (upstream MeshClusterIPMatching)."""
    ip = cluster_ip(lab, MESH, "echo")
    want = [Expect(path="/cluster-ip", backend=V2)] * 3
    via_mesh(lab, want)
    via_mesh(lab, want, service_host=ip)


CASES = [
    _case("MeshBasic", (), [{"matches": [prefix("/basic")], "backendRefs": [backend(V1)]}],
          [Expect(path="/basic", backend=V1)]),
    _case("MeshSplit", (), [
        {"matches": [prefix("/v1")], "backendRefs": [backend(V1)]},
        {"matches": [prefix("/v2")], "backendRefs": [backend(V2)]},
    ], [Expect(path="/v1", backend=V1), Expect(path="/v2", backend=V2)]),
    _case("MeshFrontendHostname", (), [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/hdr"},
                      "headers": [{"name": "x-mesh", "value": "two"}]}],
         "backendRefs": [backend(V2)]},
        {"matches": [prefix("/hdr")], "backendRefs": [backend(V1)]},
    ], [Expect(path="/hdr", headers={"x-mesh": "two"}, backend=V2),
        Expect(path="/hdr", backend=V1)]),
    _case("MeshHTTPRouteQueryParamMatching", ("MeshHTTPRouteQueryParamMatching",), [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/query"},
                      "queryParams": [{"name": "animal", "value": "dolphin"}]}],
         "backendRefs": [backend(V2)]},
        {"matches": [prefix("/query")], "backendRefs": [backend(V1)]},
    ], [Expect(path="/query?animal=dolphin", backend=V2),
        Expect(path="/query?animal=whale", backend=V1)]),
    _case("MeshHTTPRouteRewritePath", ("MeshHTTPRouteRewritePath",), [
        {"matches": [prefix("/rewrite/one")], "backendRefs": [backend(V1)],
         "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {
             "type": "ReplacePrefixMatch", "replacePrefixMatch": "/one"}}}]},
    ], [Expect(path="/rewrite/one/two", backend=V1, seen_path="/one/two")]),
    _redirect("MeshHTTPRouteRedirectPath", "MeshHTTPRouteRedirectPath",
              {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/moved"}},
              "/redirect-path", f"http://{HOST}/moved"),
    _redirect("MeshHTTPRouteSchemeRedirect", "MeshHTTPRouteSchemeRedirect",
              {"scheme": "https"}, "/redirect-scheme", f"https://{HOST}/redirect-scheme"),
    _redirect("MeshHTTPRouteRedirectPort", "MeshHTTPRouteRedirectPort",
              {"port": 8083}, "/redirect-port", f"http://{HOST}:8083/redirect-port"),
    _case("MeshHTTPRouteBackendRequestHeaderModifier",
          ("MeshHTTPRouteBackendRequestHeaderModification",), [
              {"matches": [prefix("/backend-header")], "backendRefs": [backend(V1, filters=[{
                  "type": "RequestHeaderModifier", "requestHeaderModifier": {
                      "set": [{"name": "X-Backend", "value": "v1"}],
                      "remove": ["X-Header-Remove"]}}])]}],
          [Expect(path="/backend-header", headers={"X-Header-Remove": "gone"}, backend=V1,
                  request_headers={"X-Backend": "v1", "X-Header-Remove": None})]),
    _case("MeshHTTPRouteNamedRule", ("MeshHTTPRouteNamedRouteRule",), [
        {"name": "named-rule", "matches": [prefix("/named")], "backendRefs": [backend(V2)]},
    ], [Expect(path="/named", backend=V2)]),
    Case("MeshClusterIPMatching", PROFILE, (*CORE, "MeshClusterIPMatching"),
         (*MESH_BASE, http_route(MESH, "mesh-cluster-ip", service_parent("echo"), [
             {"matches": [prefix("/cluster-ip")], "backendRefs": [backend(V2)]}])),
         _cluster_ip_check),
    _case("MeshConsumerRoute", ("MeshConsumerRoute",), [
        {"matches": [prefix("/consumer")], "backendRefs": [backend(V2, ns=MESH)]}],
        [Expect(path="/consumer", backend=V2)], ns=CONSUMER,
        extra=({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
                "metadata": {"name": "from-consumer", "namespace": MESH},
                "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                                   "namespace": CONSUMER}],
                         "to": [{"group": "", "kind": "Service", "name": "echo-v2"}]}},)),
]
