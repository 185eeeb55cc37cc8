"""The `tulle convert --verify` corpus (gatewayapi/ingress/corpus.py): the paths as written
and just outside them, host variants, annotation requests and their marks, user requests."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from gatewayapi.ingress import IngressError
from gatewayapi.ingress.corpus import (
    MAX_PROBES,
    UNLISTED_HOST,
    UNMATCHED_PATH,
    Probe,
    generate,
    ingresses_of,
    mark,
    path_variants,
    read_requests,
)

N = "nginx.ingress.kubernetes.io/"

DOCS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: plain, namespace: web}
spec:
  defaultBackend: {service: {name: fallback, port: {number: 80}}}
  rules:
  - host: app.example.com
    http:
      paths:
      - {path: /foo, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}
      - {path: /login, pathType: Exact, backend: {service: {name: app, port: {number: 80}}}}
  - host: "*.apps.example.com"
    http:
      paths:
      - {path: /, pathType: ImplementationSpecific, backend: {service: {name: app, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: api
  namespace: web
  annotations:
    nginx.ingress.kubernetes.io/enable-cors: "true"
    nginx.ingress.kubernetes.io/backend-protocol: HTTP
spec:
  tls: [{hosts: [api.example.com], secretName: api-tls}]
  rules:
  - host: api.example.com
    http:
      paths:
      - {path: /v1, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: api-canary
  namespace: web
  annotations: {nginx.ingress.kubernetes.io/canary: "true", nginx.ingress.kubernetes.io/canary-by-header: X-Canary}
spec:
  rules:
  - host: api.example.com
    http:
      paths:
      - {path: /v1, pathType: Prefix, backend: {service: {name: api-next, port: {number: 80}}}}
"""


def corpus() -> list[Probe]:
    return generate(ingresses_of(list(yaml.safe_load_all(DOCS))))


def find(probes: list[Probe], **want: Any) -> list[Probe]:
    return [p for p in probes if all(getattr(p, k) == v for k, v in want.items())]


def test_path_variants_cover_just_outside_the_path() -> None:
    assert [p for p, _ in path_variants("/foo", "Prefix")] == [
        "/foo", "/foo/", "/foo/deeper", "/foox", "/FOO"
    ]
    assert [p for p, _ in path_variants("/", "Prefix")] == ["/", "/any/deeper"]
    # an Exact path with a trailing slash: also without it (duplicates are dropped later)
    assert set(p for p, _ in path_variants("/a/", "Exact")) == {
        "/a/", "/a/deeper", "/ax", "/A", "/a"
    }


def test_every_path_of_every_host_with_its_variants_and_the_unmatched_path() -> None:
    probes = corpus()
    for path in ("/foo", "/foo/", "/foo/deeper", "/foox", "/FOO", "/login", "/login/", UNMATCHED_PATH):
        assert find(probes, host="app.example.com", path=path, scheme="http"), path
    assert find(probes, host="APP.EXAMPLE.COM", path="/foo")
    # a wildcard: one and two labels under it, and its parent domain
    for host in ("one.apps.example.com", "two.one.apps.example.com", "apps.example.com"):
        assert find(probes, host=host, path="/"), host
    # the defaultBackend's: a host no rule names
    assert find(probes, host=UNLISTED_HOST, path="/")
    assert len({p.key for p in probes}) == len(probes)  # no duplicates
    assert probes == corpus()  # deterministic


def test_tls_hosts_get_https_probes_and_annotations_mark_their_hosts_only() -> None:
    probes = corpus()
    assert find(probes, host="api.example.com", scheme="https", path="/v1")
    assert not find(probes, host="app.example.com", scheme="https")
    plain = find(probes, host="app.example.com")
    assert plain and all(p.annotations == () for p in plain)
    api_http = find(probes, host="api.example.com", scheme="http", path="/v1")[0]
    # backend-protocol HTTP changes nothing: not a mark; ssl-redirect is nginx's default for TLS
    assert api_http.annotations == (
        N + "canary", N + "canary-by-header", N + "enable-cors", N + "ssl-redirect"
    )
    assert api_http.expect == ()  # canary and CORS have no single documented answer
    api_https = find(probes, host="api.example.com", scheme="https", path="/v1")[0]
    assert N + "ssl-redirect" not in api_https.annotations


def test_annotation_requests_canary_header_and_cors_preflight() -> None:
    probes = corpus()
    canary = find(probes, host="api.example.com", scheme="http", path="/v1", method="GET")
    assert {p.headers for p in canary} >= {(), (("X-Canary", "always"),), (("X-Canary", "never"),)}
    preflight = find(probes, method="OPTIONS", host="api.example.com", scheme="https")
    assert preflight and dict(preflight[0].headers)["Origin"].startswith("https://")


def test_ssl_redirect_false_is_not_a_mark() -> None:
    docs = list(yaml.safe_load_all(DOCS.replace(
        "nginx.ingress.kubernetes.io/backend-protocol: HTTP",
        "nginx.ingress.kubernetes.io/ssl-redirect: 'false'")))
    ing = [i for i in ingresses_of(docs) if i.name == "api"]
    http = find(generate(ing), host="api.example.com", scheme="http", path="/v1")[0]
    assert http.annotations == (N + "enable-cors",)


def test_user_requests_are_read_and_marked_by_the_hosts_they_reach() -> None:
    data = yaml.safe_load("""
requests:
- {host: api.example.com, path: /v1/x, headers: {X-Canary: always}}
- {method: post, host: app.example.com, path: /foo, scheme: http}
- {host: x.apps.example.com}
""")
    probes = read_requests(data, "r.yaml")
    assert probes[0] == Probe("GET", "http", "api.example.com", "/v1/x",
                              (("X-Canary", "always"),), "user request")
    assert probes[1].method == "POST" and probes[2].path == "/"
    ingresses = ingresses_of(list(yaml.safe_load_all(DOCS)))
    assert N + "enable-cors" in mark(probes[0], ingresses).annotations
    # app.example.com has no annotated Ingress; the host-less defaultBackend has none either
    assert mark(probes[1], ingresses).annotations == ()
    assert mark(probes[2], ingresses).annotations == ()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nope": []}, "expected a list"),
        ("GET /", "expected a list"),
        (["GET /"], r"r\[0\]: expected a mapping"),
        ([{"path": "/"}], r"r\[0\].host: required"),
        ([{"host": "a b"}], r"r\[0\].host"),
        ([{"host": "a", "path": "x"}], r"r\[0\].path: must start with /"),
        ([{"host": "a", "path": "/a b"}], r"r\[0\].path"),
        ([{"host": "a", "method": "BREW"}], r"r\[0\].method: 'BREW'"),
        ([{"host": "a", "scheme": "ftp"}], r"r\[0\].scheme"),
        ([{"host": "a", "headers": {"X": "a\r\nInjected: 1"}}], r"r\[0\].headers"),
        ([{"host": "a", "headers": {"Host": "b"}}], "give the Host as host:"),
        ([{"host": "a", "headers": ["X: 1"]}], r"r\[0\].headers"),
        ([{"host": "a", "body": "x"}], r"unknown field\(s\) body"),
        ([{"host": "a"}] * (MAX_PROBES + 1), "at most"),
    ],
)
def test_malformed_user_requests_are_refused_naming_the_entry(data: Any, message: str) -> None:
    with pytest.raises(IngressError, match=message):
        read_requests(data, "r")


def test_a_probe_only_ssl_redirect_reaches_expects_nginxs_308() -> None:
    docs = list(yaml.safe_load_all(DOCS.replace(
        "nginx.ingress.kubernetes.io/enable-cors: \"true\"", "")))
    ing = [i for i in ingresses_of(docs) if i.name == "api"]
    probes = generate(ing)
    http = find(probes, host="API.EXAMPLE.COM", scheme="http", path="/v1/deeper")[0]
    assert http.annotations == (N + "ssl-redirect",)
    assert dict(http.expect) == {"status": "308", "backend": "-", "backend path": "-",
                                 "location": "https://api.example.com/v1/deeper"}
    assert find(probes, host="api.example.com", scheme="https", path="/v1")[0].expect == ()


def test_permanent_redirect_expects_its_code_and_url_unless_values_disagree() -> None:
    moved = yaml.safe_load("""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: moved
  namespace: web
  annotations:
    nginx.ingress.kubernetes.io/permanent-redirect: https://new.example/
    nginx.ingress.kubernetes.io/permanent-redirect-code: "308"
spec:
  rules:
  - host: old.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}
""")
    ing = ingresses_of([moved])
    probe = mark(Probe("GET", "http", "old.example", "/a?b=c"), ing)
    assert dict(probe.expect) == {"status": "308", "backend": "-", "backend path": "-",
                                  "location": "https://new.example/"}
    other = yaml.safe_load(yaml.safe_dump(moved))
    other["metadata"]["name"] = "moved-2"
    other["metadata"]["annotations"][N + "permanent-redirect"] = "https://elsewhere.example/"
    assert mark(Probe("GET", "http", "old.example", "/a"), ingresses_of([moved, other])).expect == ()
