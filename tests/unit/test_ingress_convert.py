"""gatewayapi.ingress: Ingress -> Gateway API conversion tables, refusals, malformed input.

Every converted object is read back through Tulle's model (agent.model.convert.from_dict),
so a conversion that Tulle itself would refuse fails here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.model.convert import from_dict, load_sources
from gatewayapi.ingress import Conversion, IngressError, Severity, convert

N = "nginx.ingress.kubernetes.io/"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ingress"


def path(p: str = "/", kind: str = "Prefix", svc: str = "web", port: Any = 80) -> dict[str, Any]:
    ref = {"number": port} if isinstance(port, int) else {"name": port}
    return {"path": p, "pathType": kind, "backend": {"service": {"name": svc, "port": ref}}}


def ing(
    name: str = "web",
    ns: str = "shop",
    annotations: dict[str, str] | None = None,
    host: str | None = "a.example.com",
    paths: list[dict[str, Any]] | None = None,
    tls: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    rule: dict[str, Any] = {"http": {"paths": paths if paths is not None else [path()]}}
    if host is not None:
        rule["host"] = host
    body: dict[str, Any] = {"ingressClassName": "nginx", "rules": [rule], **spec}
    if tls is not None:
        body["tls"] = tls
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations or {}},
        "spec": body,
    }


def run(*docs: dict[str, Any], **kw: Any) -> Conversion:
    result = convert(list(docs), **kw)
    for obj in result.objects:
        from_dict(obj)  # Tulle's model accepts every converted object
    return result


def kinds(result: Conversion, kind: str) -> list[dict[str, Any]]:
    return [o for o in result.objects if o["kind"] == kind]


def route(result: Conversion, name: str) -> dict[str, Any]:
    (found,) = [o for o in kinds(result, "HTTPRoute") if o["metadata"]["name"] == name]
    return found


def rules(result: Conversion, name: str = "web-a.example.com") -> list[dict[str, Any]]:
    return route(result, name)["spec"]["rules"]


def findings(result: Conversion, severity: Severity) -> list[str]:
    return [f"{f.feature}: {f.reason}" for f in result.findings if f.severity is severity]


@pytest.mark.parametrize(
    ("kind", "annotations", "match"),
    [
        ("Exact", {}, {"type": "Exact", "value": "/x"}),
        ("Prefix", {}, {"type": "PathPrefix", "value": "/x"}),
        ("ImplementationSpecific", {}, {"type": "PathPrefix", "value": "/x"}),
        (
            "ImplementationSpecific",
            {N + "use-regex": "true"},
            {"type": "RegularExpression", "value": "(?i)/x.*"},
        ),
        ("Prefix", {N + "use-regex": "true"}, {"type": "RegularExpression", "value": "(?i)/x.*"}),
        ("Exact", {N + "use-regex": "true"}, {"type": "Exact", "value": "/x"}),
    ],
)
def test_path_types_map_exactly(
    kind: str, annotations: dict[str, str], match: dict[str, str]
) -> None:
    result = run(ing(annotations=annotations, paths=[path("/x", kind)]))
    assert rules(result) == [
        {"matches": [{"path": match}], "backendRefs": [{"name": "web", "port": 80}]}
    ]
    assert result.exact  # mappings are notes, not differences


def test_gateway_has_a_listener_per_host_and_tls_secret() -> None:
    tls = [{"hosts": ["a.example.com"], "secretName": "a-tls"}]
    result = run(ing(tls=tls, annotations={N + "ssl-redirect": "false"}))
    (gw,) = kinds(result, "Gateway")
    assert gw["metadata"] == {"name": "nginx", "namespace": "shop"}
    assert gw["spec"]["gatewayClassName"] == "tulle"
    assert gw["spec"]["listeners"] == [
        {"name": "http-a.example.com", "port": 80, "protocol": "HTTP", "hostname": "a.example.com"},
        {
            "name": "https-a.example.com",
            "port": 443,
            "protocol": "HTTPS",
            "hostname": "a.example.com",
            "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": "a-tls"}]},
        },
    ]
    # Same rules on both ports: one route attached to both listeners.
    assert route(result, "web-a.example.com")["spec"]["parentRefs"] == [
        {"name": "nginx", "sectionName": "https-a.example.com"},
        {"name": "nginx", "sectionName": "http-a.example.com"},
    ]
    assert not kinds(result, "ReferenceGrant")
    assert result.exact


def test_gateway_class_is_a_parameter() -> None:
    (gw,) = kinds(run(ing(), gateway_class="other"), "Gateway")
    assert gw["spec"]["gatewayClassName"] == "other"


def test_ssl_redirect_is_default_with_tls_and_answers_308() -> None:
    result = run(ing(tls=[{"hosts": ["a.example.com"], "secretName": "a-tls"}]))
    assert route(result, "web-a.example.com")["spec"]["parentRefs"] == [
        {"name": "nginx", "sectionName": "https-a.example.com"}
    ]
    http = route(result, "web-a.example.com-http")
    assert http["spec"]["parentRefs"] == [{"name": "nginx", "sectionName": "http-a.example.com"}]
    assert http["spec"]["rules"] == [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "filters": [
                {
                    "type": "RequestRedirect",
                    "requestRedirect": {"scheme": "https", "statusCode": 308},
                }
            ],
        }
    ]
    assert result.exact


def test_force_ssl_redirect_without_tls() -> None:
    result = run(ing(annotations={N + "force-ssl-redirect": "true"}))
    (only,) = rules(result)
    assert only["filters"][0]["requestRedirect"] == {"scheme": "https", "statusCode": 308}
    assert "backendRefs" not in only


def test_no_redirect_without_tls() -> None:
    (only,) = rules(run(ing()))
    assert "filters" not in only


@pytest.mark.parametrize(
    ("p", "target", "match", "rewrite", "severity"),
    [
        (
            "/old",
            "/new",
            {"type": "RegularExpression", "value": "(?i)/old.*"},
            {"type": "ReplaceFullPath", "replaceFullPath": "/new"},
            None,
        ),
        (
            "/api(/|$)(.*)",
            "/$2",
            {"type": "PathPrefix", "value": "/api"},
            {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"},
            Severity.APPROXIMATED,
        ),
        (
            "/api(/|$)(.*)",
            "/v2/$2",
            {"type": "PathPrefix", "value": "/api"},
            {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2"},
            Severity.APPROXIMATED,
        ),
    ],
)
def test_rewrite_target(
    p: str, target: str, match: dict[str, str], rewrite: dict[str, str], severity: Severity | None
) -> None:
    result = run(
        ing(annotations={N + "rewrite-target": target}, paths=[path(p, "ImplementationSpecific")])
    )
    (only,) = rules(result)
    assert only["matches"] == [{"path": match}]
    assert only["filters"] == [{"type": "URLRewrite", "urlRewrite": {"path": rewrite}}]
    if severity is None:
        assert result.exact
    else:
        assert [f.severity for f in result.findings] == [severity]


@pytest.mark.parametrize(
    ("p", "target"),
    [
        ("/foo/(.*)", "/$1"),
        ("/(a)(b)(/|$)(.*)", "/$4"),
        ("/api(/|$)(.*)", "/$1/x"),
        ("/x(.*)", "/$2"),
    ],
)
def test_rewrite_target_captures_not_expressible_are_refused(p: str, target: str) -> None:
    other = ing("other", paths=[path("/ok", "Exact")])
    result = run(
        ing(annotations={N + "rewrite-target": target}, paths=[path(p, "ImplementationSpecific")]),
        other,
    )
    assert [r["matches"][0]["path"]["value"] for r in rules(result, "other-a.example.com")] == [
        "/ok"
    ]
    assert any(
        "rewrite-target" in f and "regex substitution" in f
        for f in findings(result, Severity.REFUSED)
    )
    assert not result.exact


def test_regex_that_re2_refuses_is_refused() -> None:
    result = run(
        ing(
            annotations={N + "use-regex": "true"},
            paths=[path("/(a)\\1", "ImplementationSpecific"), path("/ok", "Exact")],
        )
    )
    assert len(rules(result)) == 1
    assert any("backreference" in f for f in findings(result, Severity.REFUSED))


def test_regex_on_one_ingress_makes_the_whole_host_regex_and_precedence_is_reported() -> None:
    plain = ing("plain", paths=[path("/", "Prefix")])
    rx = ing(
        "rx",
        annotations={N + "use-regex": "true"},
        paths=[path("/api/.+", "ImplementationSpecific")],
    )
    result = run(plain, rx)
    values = [r["matches"][0]["path"] for r in rules(result, "plain-a.example.com")]
    assert values == [
        {"type": "RegularExpression", "value": "(?i)/.*"},
        {"type": "RegularExpression", "value": "(?i)/api/.+.*"},
    ]
    assert any("another Ingress" in f for f in findings(result, Severity.NOTE))


def test_prefix_shadowed_by_a_regex_is_reported() -> None:
    # /api (prefix rewrite) and a regex "/.*" of the same host: Tulle ranks the regex first.
    result = run(
        ing(
            "a",
            annotations={N + "rewrite-target": "/$2"},
            paths=[path("/api(/|$)(.*)", "ImplementationSpecific")],
        ),
        ing("b", annotations={N + "use-regex": "true"}, paths=[path("/", "Prefix")]),
    )
    (shadowed,) = [f for f in result.findings if "ranks before PathPrefix" in f.reason]
    assert (shadowed.subject, shadowed.feature) == ("Ingress shop/a", "path '/api'")


def canary(annotations: dict[str, str], p: dict[str, Any] | None = None) -> dict[str, Any]:
    return ing(
        "web-canary",
        annotations={N + "canary": "true", **annotations},
        paths=[p or path(svc="next")],
    )


def test_canary_by_weight() -> None:
    result = run(ing(), canary({N + "canary-weight": "10"}))
    assert rules(result) == [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "backendRefs": [
                {"name": "web", "port": 80, "weight": 90},
                {"name": "next", "port": 80, "weight": 10},
            ],
        }
    ]
    assert result.exact


def test_canary_weight_total() -> None:
    result = run(ing(), canary({N + "canary-weight": "1", N + "canary-weight-total": "1000"}))
    assert [b["weight"] for b in rules(result)[0]["backendRefs"]] == [999, 1]


def test_canary_by_header_always_and_never() -> None:
    result = run(ing(), canary({N + "canary-by-header": "X-Canary"}))
    prefix = {"type": "PathPrefix", "value": "/"}
    assert rules(result) == [
        {
            "matches": [{"path": prefix, "headers": [{"name": "X-Canary", "value": "always"}]}],
            "backendRefs": [{"name": "next", "port": 80}],
        },
        {
            "matches": [{"path": prefix, "headers": [{"name": "X-Canary", "value": "never"}]}],
            "backendRefs": [{"name": "web", "port": 80}],
        },
        {"matches": [{"path": prefix}], "backendRefs": [{"name": "web", "port": 80}]},
    ]


def test_canary_by_header_value_with_weight() -> None:
    result = run(
        ing(),
        canary(
            {
                N + "canary-by-header": "X-Env",
                N + "canary-by-header-value": "beta",
                N + "canary-weight": "5",
            }
        ),
    )
    r = rules(result)
    assert [m["headers"] for x in r[:-1] for m in x["matches"]] == [
        [{"name": "X-Env", "value": "beta"}]
    ]
    assert [b["weight"] for b in r[-1]["backendRefs"]] == [95, 5]


@pytest.mark.parametrize(
    ("annotations", "p", "why"),
    [
        ({N + "canary-by-cookie": "c"}, None, "cookie"),
        ({N + "canary-by-header-pattern": "a.*"}, None, "header regex"),
        ({N + "canary-weight": "10"}, path("/other", svc="next"), "no main Ingress"),
        ({N + "canary-weight": "200"}, None, "exceeds the total"),
        ({N + "canary-weight": "x"}, None, "not an integer"),
    ],
)
def test_canary_refusals(annotations: dict[str, str], p: dict[str, Any] | None, why: str) -> None:
    result = run(ing(), canary(annotations, p))
    assert any(why in f for f in findings(result, Severity.REFUSED)), result.findings


def test_canary_ignores_its_other_annotations_as_nginx_does() -> None:
    result = run(ing(), canary({N + "canary-weight": "10", N + "enable-cors": "true"}))
    assert not any(f["type"] == "CORS" for r in rules(result) for f in r.get("filters", []))
    assert any("ignored on a canary" in f for f in findings(result, Severity.NOTE))


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        ("HTTP", None),
        ("http", None),
        ("GRPC", "GRPCRoute"),
        ("HTTPS", "BackendTLSPolicy"),
        ("GRPCS", "GRPCRoute"),
        ("FCGI", "FastCGI"),
        ("AUTO_HTTP", "sniffing"),
        ("SPDY", "unknown protocol"),
    ],
)
def test_backend_protocol(value: str, refused: str | None) -> None:
    result = run(ing(annotations={N + "backend-protocol": value}))
    assert len(rules(result)) == 1  # the route is still written
    if refused is None:
        assert result.exact
    else:
        assert any(refused in f for f in findings(result, Severity.REFUSED))


def test_enable_cors_with_ingress_nginx_defaults() -> None:
    (only,) = rules(run(ing(annotations={N + "enable-cors": "true"})))
    assert only["filters"] == [
        {
            "type": "CORS",
            "cors": {
                "allowOrigins": ["*"],
                "allowMethods": ["GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"],
                "allowHeaders": [
                    "DNT",
                    "Keep-Alive",
                    "User-Agent",
                    "X-Requested-With",
                    "If-Modified-Since",
                    "Cache-Control",
                    "Content-Type",
                    "Range",
                    "Authorization",
                ],
                "allowCredentials": True,
                "maxAge": 1728000,
            },
        }
    ]


def test_enable_cors_settings() -> None:
    a = {
        N + "enable-cors": "true",
        N + "cors-allow-origin": "https://a.com, https://b.com",
        N + "cors-allow-methods": "get,post",
        N + "cors-allow-headers": "X-A",
        N + "cors-expose-headers": "X-B",
        N + "cors-allow-credentials": "false",
        N + "cors-max-age": "60",
    }
    (only,) = rules(run(ing(annotations=a)))
    assert only["filters"][0]["cors"] == {
        "allowOrigins": ["https://a.com", "https://b.com"],
        "allowMethods": ["GET", "POST"],
        "allowHeaders": ["X-A"],
        "allowCredentials": False,
        "maxAge": 60,
        "exposeHeaders": ["X-B"],
    }


def test_cors_disabled_writes_nothing() -> None:
    (only,) = rules(
        run(ing(annotations={N + "enable-cors": "false", N + "cors-allow-origin": "https://a.com"}))
    )
    assert "filters" not in only


def test_timeouts() -> None:
    result = run(
        ing(
            annotations={
                N + "proxy-read-timeout": "30",
                N + "proxy-connect-timeout": "5",
                N + "proxy-send-timeout": "7",
            }
        )
    )
    assert rules(result)[0]["timeouts"] == {"request": "30s"}
    assert any("whole request" in f for f in findings(result, Severity.APPROXIMATED))
    refused = findings(result, Severity.REFUSED)
    assert any("connect timeout" in f for f in refused) and any(
        "between two writes" in f for f in refused
    )


def test_app_root() -> None:
    result = run(ing(annotations={N + "app-root": "/app"}))
    assert rules(result)[0] == {
        "matches": [{"path": {"type": "Exact", "value": "/"}}],
        "filters": [
            {
                "type": "RequestRedirect",
                "requestRedirect": {
                    "path": {"type": "ReplaceFullPath", "replaceFullPath": "/app"},
                    "statusCode": 302,
                },
            }
        ],
    }
    assert any("query string" in f for f in findings(result, Severity.APPROXIMATED))


def test_app_root_that_is_not_a_path_is_refused() -> None:
    result = run(ing(annotations={N + "app-root": "app"}))
    assert len(rules(result)) == 1 and findings(result, Severity.REFUSED)


@pytest.mark.parametrize(
    ("annotations", "redirect"),
    [
        (
            {N + "permanent-redirect": "https://b.example.com/new"},
            {
                "path": {"type": "ReplaceFullPath", "replaceFullPath": "/new"},
                "statusCode": 301,
                "scheme": "https",
                "hostname": "b.example.com",
            },
        ),
        (
            {
                N + "permanent-redirect": "http://b.example.com:8080",
                N + "permanent-redirect-code": "308",
            },
            {
                "path": {"type": "ReplaceFullPath", "replaceFullPath": "/"},
                "statusCode": 308,
                "scheme": "http",
                "hostname": "b.example.com",
                "port": 8080,
            },
        ),
        (
            {N + "permanent-redirect": "/moved"},
            {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/moved"}, "statusCode": 301},
        ),
    ],
)
def test_permanent_redirect(annotations: dict[str, str], redirect: dict[str, Any]) -> None:
    result = run(ing(annotations=annotations))
    (only,) = rules(result)
    assert only == {
        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
        "filters": [{"type": "RequestRedirect", "requestRedirect": redirect}],
    }


@pytest.mark.parametrize(
    ("annotations", "why"),
    [
        ({N + "permanent-redirect": "https://b.com/x?y=1"}, "query"),
        ({N + "permanent-redirect": "ftp://b.com/"}, "http(s)"),
        ({N + "permanent-redirect": "/x", N + "permanent-redirect-code": "300"}, "redirect code"),
    ],
)
def test_permanent_redirect_refusals(annotations: dict[str, str], why: str) -> None:
    result = run(ing(annotations=annotations))
    assert any(why in f for f in findings(result, Severity.REFUSED))


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("auth-url", "authentication"),
        ("affinity", "affinity"),
        ("configuration-snippet", "raw nginx"),
        ("some-future-thing", "unknown to tulle convert"),
        ("use-regex", "not a boolean"),
    ],
)
def test_other_nginx_annotations_are_reported(key: str, why: str) -> None:
    result = run(ing(annotations={N + key: "maybe"}))
    assert [f.feature for f in result.findings] == [N + key]
    assert why in result.findings[0].reason and not result.exact


def test_annotations_of_other_tools_are_not_nginx_features() -> None:
    assert run(ing(annotations={"cert-manager.io/cluster-issuer": "x"})).findings == []


def test_default_backend_is_served_for_requests_of_no_host() -> None:
    doc = ing(defaultBackend={"service": {"name": "fallback", "port": {"number": 8080}}})
    result = run(doc)
    hostless = route(result, "web-all-hosts")
    assert "hostnames" not in hostless["spec"]
    assert hostless["spec"]["parentRefs"] == [{"name": "nginx", "sectionName": "http"}]
    assert hostless["spec"]["rules"] == [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "backendRefs": [{"name": "fallback", "port": 8080}],
        }
    ]
    (gw,) = kinds(result, "Gateway")
    assert {"name": "http", "port": 80, "protocol": "HTTP"} in gw["spec"]["listeners"]


def test_wildcard_host() -> None:
    result = run(ing(host="*.example.com", tls=[{"hosts": ["*.example.com"], "secretName": "w"}]))
    (gw,) = kinds(result, "Gateway")
    assert [ls["name"] for ls in gw["spec"]["listeners"]] == [
        "http-wildcard.example.com",
        "https-wildcard.example.com",
    ]
    assert route(result, "web-wildcard.example.com")["spec"]["hostnames"] == ["*.example.com"]


def test_namespaces_apart_get_reference_grants_and_a_selector() -> None:
    a = ing("a", ns="one", tls=[{"hosts": ["a.example.com"], "secretName": "a-tls"}])
    b = ing(
        "b",
        ns="two",
        host="b.example.com",
        tls=[{"hosts": ["b.example.com"], "secretName": "b-tls"}],
    )
    result = run(a, b, gateway_namespace="edge")
    (gw,) = kinds(result, "Gateway")
    assert gw["metadata"] == {"name": "nginx", "namespace": "edge"}
    selector = {
        "namespaces": {
            "from": "Selector",
            "selector": {
                "matchExpressions": [
                    {
                        "key": "kubernetes.io/metadata.name",
                        "operator": "In",
                        "values": ["one", "two"],
                    }
                ]
            },
        }
    }
    assert all(ls["allowedRoutes"] == selector for ls in gw["spec"]["listeners"])
    https = [ls for ls in gw["spec"]["listeners"] if ls["protocol"] == "HTTPS"]
    assert [ls["tls"]["certificateRefs"] for ls in https] == [
        [{"kind": "Secret", "name": "a-tls", "namespace": "one"}],
        [{"kind": "Secret", "name": "b-tls", "namespace": "two"}],
    ]
    grants = kinds(result, "ReferenceGrant")
    assert [(g["metadata"]["namespace"], g["spec"]) for g in grants] == [
        (
            "one",
            {
                "from": [
                    {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "edge"}
                ],
                "to": [{"group": "", "kind": "Secret", "name": "a-tls"}],
            },
        ),
        (
            "two",
            {
                "from": [
                    {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "edge"}
                ],
                "to": [{"group": "", "kind": "Secret", "name": "b-tls"}],
            },
        ),
    ]
    assert route(result, "a-a.example.com")["spec"]["parentRefs"][0]["namespace"] == "edge"


def test_one_gateway_per_class_and_the_default_class() -> None:
    klass = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {
            "name": "public",
            "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"},
        },
        "spec": {"controller": "k8s.io/ingress-nginx"},
    }
    unclassed = ing("u", host="u.example.com")
    del unclassed["spec"]["ingressClassName"]
    legacy = ing("l", host="l.example.com", annotations={"kubernetes.io/ingress.class": "internal"})
    del legacy["spec"]["ingressClassName"]
    result = run(klass, ing(), unclassed, legacy)
    assert sorted(g["metadata"]["name"] for g in kinds(result, "Gateway")) == [
        "internal",
        "nginx",
        "public",
    ]
    assert route(result, "u-u.example.com")["spec"]["parentRefs"][0]["name"] == "public"


def test_without_any_class_the_gateway_is_named_ingress() -> None:
    doc = ing()
    del doc["spec"]["ingressClassName"]
    result = run(doc)
    assert [g["metadata"]["name"] for g in kinds(result, "Gateway")] == ["ingress"]
    assert any("--watch-ingress-without-class" in f for f in findings(result, Severity.NOTE))


def test_named_ports_resolve_through_services_in_the_input() -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"ports": [{"name": "http", "port": 8080}]},
    }
    result = run(svc, ing(paths=[path(port="http")]))
    assert rules(result)[0]["backendRefs"] == [{"name": "web", "port": 8080}]
    assert result.exact
    missing = run(ing(paths=[path(port="http"), path("/b")]))
    assert len(rules(missing)) == 1 and any(
        "port name" in f for f in findings(missing, Severity.REFUSED)
    )


def test_resource_backends_are_refused() -> None:
    doc = ing(
        paths=[
            {
                "path": "/",
                "pathType": "Prefix",
                "backend": {"resource": {"kind": "Bucket", "name": "b"}},
            },
            path("/b"),
        ]
    )
    result = run(doc)
    assert len(rules(result)) == 1 and findings(result, Severity.REFUSED)


@pytest.mark.parametrize(
    ("tls", "why"),
    [
        ([{"hosts": ["a.example.com"]}], "default certificate"),
        ([{"secretName": "s"}], "without hosts"),
    ],
)
def test_tls_refusals(tls: list[dict[str, Any]], why: str) -> None:
    result = run(ing(tls=tls))
    assert any(why in f for f in findings(result, Severity.REFUSED))
    (gw,) = kinds(result, "Gateway")
    assert all(ls["protocol"] == "HTTP" for ls in gw["spec"]["listeners"])


def test_two_certificates_for_one_host_refuse_the_second() -> None:
    a = ing("a", tls=[{"hosts": ["a.example.com"], "secretName": "one"}])
    b = ing("b", paths=[path("/b")], tls=[{"hosts": ["a.example.com"], "secretName": "two"}])
    result = run(a, b)
    assert any("already has certificate shop/one" in f for f in findings(result, Severity.REFUSED))


def test_more_than_sixteen_rules_split_into_routes() -> None:
    result = run(
        ing(paths=[path(f"/p{i}") for i in range(20)], annotations={N + "ssl-redirect": "false"})
    )
    assert [len(r["spec"]["rules"]) for r in kinds(result, "HTTPRoute")] == [16, 4]
    assert [r["metadata"]["name"] for r in kinds(result, "HTTPRoute")] == [
        "web-a.example.com",
        "web-a.example.com-2",
    ]


def test_other_kinds_are_skipped_with_a_note() -> None:
    result = run({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, ing())
    assert findings(result, Severity.NOTE) == ["kind: not an Ingress; skipped"] and result.exact


def mutate(change: Any) -> dict[str, Any]:
    doc = ing()
    change(doc)
    return doc


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d.update(apiVersion="extensions/v1beta1"),
            "Ingress shop/web: apiVersion: unsupported apiVersion 'extensions/v1beta1'",
        ),
        (lambda d: d.pop("metadata"), "Ingress <unnamed>: metadata: required"),
        (lambda d: d["metadata"].pop("name"), "Ingress <unnamed>: metadata.name: required"),
        (
            lambda d: d["metadata"].update(annotations={"a": 1}),
            "metadata.annotations[a]: expected string, got integer",
        ),
        (lambda d: d.update(spec=[]), "spec: expected object, got list"),
        (lambda d: d["spec"].update(rules={}), "spec.rules: expected list, got object"),
        (
            lambda d: d["spec"].update(rules=[]),
            "spec: either defaultBackend or rules must be specified",
        ),
        (
            lambda d: d["spec"]["rules"][0].update(host="a.*.com"),
            "spec.rules[0].host: invalid wildcard host",
        ),
        (
            lambda d: d["spec"]["rules"][0]["http"]["paths"][0].update(pathType="Regex"),
            "spec.rules[0].http.paths[0].pathType: unsupported value 'Regex' (supported: Exact, Prefix, ImplementationSpecific)",
        ),
        (
            lambda d: d["spec"]["rules"][0]["http"]["paths"][0].pop("pathType"),
            "spec.rules[0].http.paths[0].pathType: required",
        ),
        (
            lambda d: d["spec"]["rules"][0]["http"]["paths"][0].update(path="x"),
            "paths[0].path: must be an absolute path",
        ),
        (
            lambda d: d["spec"]["rules"][0]["http"]["paths"][0].pop("backend"),
            "paths[0].backend: required",
        ),
        (
            lambda d: d["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"].pop("name"),
            "backend.service.name: required",
        ),
        (
            lambda d: d["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"].update(
                port={}
            ),
            "backend.service.port: exactly one of number or name is required",
        ),
        (
            lambda d: d["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"].update(
                port={"number": 70000}
            ),
            "backend.service.port.number: must be a port 1-65535",
        ),
        (
            lambda d: d["spec"].update(tls=[{"hosts": "a"}]),
            "spec.tls[0].hosts: expected list, got string",
        ),
        (
            lambda d: d["spec"].update(ingressClassName=3),
            "spec.ingressClassName: expected string, got integer",
        ),
    ],
)
def test_malformed_ingress_is_a_clear_error(change: Any, message: str) -> None:
    with pytest.raises(IngressError) as err:
        convert([mutate(change)])
    assert message in str(err.value)


def test_the_same_ingress_twice_is_an_error() -> None:
    with pytest.raises(IngressError, match="Ingress shop/web: given twice"):
        convert([ing(), ing()])


def test_two_default_classes_is_an_error() -> None:
    def klass(name: str) -> dict[str, Any]:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {
                "name": name,
                "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"},
            },
            "spec": {"controller": "k8s.io/ingress-nginx"},
        }

    with pytest.raises(IngressError, match="more than one is the default"):
        convert([klass("a"), klass("b")])


def test_the_example_set_converts_to_valid_objects_with_the_expected_report() -> None:
    docs = [doc for _, doc in load_sources([str(EXAMPLES)], stdin=None)]  # type: ignore[arg-type]
    result = run(*docs)
    assert sorted(
        (o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]) for o in result.objects
    ) == [
        ("Gateway", "default", "nginx"),
        ("HTTPRoute", "blog", "blog-blog.example.com"),
        ("HTTPRoute", "blog", "blog-blog.example.com-http"),
        ("HTTPRoute", "blog", "blog-moved-news.example.com"),
        ("HTTPRoute", "blog", "legacy-all-hosts"),
        ("HTTPRoute", "blog", "legacy-www.blog.example.com"),
        ("HTTPRoute", "shop", "api-api.shop.example.com"),
        ("HTTPRoute", "shop", "api-api.shop.example.com-http"),
        ("HTTPRoute", "shop", "storefront-shop.example.com"),
        ("HTTPRoute", "shop", "storefront-shop.example.com-http"),
        ("ReferenceGrant", "blog", "nginx-default-tls"),
        ("ReferenceGrant", "shop", "nginx-default-tls"),
    ]
    assert sorted(
        (f.subject, f.feature.removeprefix(N))
        for f in result.findings
        if f.severity is not Severity.NOTE
    ) == [
        ("Ingress blog/blog-moved", "permanent-redirect"),
        ("Ingress shop/api", "proxy-read-timeout"),
        ("Ingress shop/api", "rewrite-target"),
        ("Ingress shop/storefront", "app-root"),
    ]
