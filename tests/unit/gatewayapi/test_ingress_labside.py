"""What `tulle convert --verify --lab` applies to a lab and deletes afterwards
(gatewayapi/ingress/labside.py): renamed copies that never collide with the originals,
the lab's classes, the rewritten references, the cleanup plan, missing backends."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from gatewayapi.ingress import convert
from gatewayapi.ingress.labside import (
    LABEL,
    backend_of,
    backend_services,
    lab_plan,
    missing_services,
    verify_name,
)
from gatewayapi.ingress.sides import VerifyError

DOCS = list(yaml.safe_load_all("""\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
  uid: 1234
  resourceVersion: "77"
  annotations: {kubernetes.io/ingress.class: nginx, nginx.ingress.kubernetes.io/ssl-redirect: "false"}
spec:
  tls: [{hosts: [a.example], secretName: certs}]
  rules:
  - host: a.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 8080}}}}
status: {loadBalancer: {ingress: [{ip: 192.0.2.9}]}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: api, namespace: other}
spec:
  ingressClassName: nginx
  defaultBackend: {service: {name: api, port: {number: 80}}}
"""))
SECRET = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
          "metadata": {"name": "certs", "namespace": "shop"}, "data": {"tls.crt": "x", "tls.key": "y"}}


def plan_of(docs: list[dict[str, Any]] | None = None, suffix: str = "ab12") -> Any:
    docs = DOCS if docs is None else docs
    return lab_plan(docs, convert(docs), [SECRET], suffix)


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def test_every_object_is_renamed_and_labelled_as_the_run() -> None:
    plan = plan_of()
    originals = {(o["kind"], o["metadata"]["name"]) for o in
                 [*DOCS, SECRET, *convert(DOCS).objects]}
    for obj in plan.objects:
        assert obj["metadata"]["name"].endswith("-verify-ab12"), obj
        assert (obj["kind"], obj["metadata"]["name"]) not in originals
        assert obj["metadata"]["labels"][LABEL] == "ab12"
    assert [o["kind"] for o in plan.objects][0] == "Secret"
    assert {o["kind"] for o in plan.objects} >= {"Secret", "Gateway", "HTTPRoute", "Ingress",
                                                 "ReferenceGrant"}


def test_ingress_copies_are_of_the_labs_class_with_their_own_metadata_only() -> None:
    plan = plan_of()
    web, api = by_kind(plan.objects, "Ingress")
    assert web["metadata"]["name"] == "web-verify-ab12" and web["metadata"]["namespace"] == "shop"
    assert web["spec"]["ingressClassName"] == api["spec"]["ingressClassName"] == "tulle"
    assert "kubernetes.io/ingress.class" not in web["metadata"]["annotations"]
    assert web["metadata"]["annotations"]["nginx.ingress.kubernetes.io/ssl-redirect"] == "false"
    assert "uid" not in web["metadata"] and "resourceVersion" not in web["metadata"]
    assert "status" not in web
    assert web["spec"]["tls"] == [{"hosts": ["a.example"], "secretName": "certs-verify-ab12"}]
    assert web["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "web"
    assert plan.ingresses == [("shop", "web-verify-ab12"), ("other", "api-verify-ab12")]
    assert any("shop/web (class nginx)" in n for n in plan.notes)
    assert DOCS[0]["metadata"]["name"] == "web"  # the input is not changed


def test_gateway_is_the_labs_class_and_routes_and_certificates_follow_the_renames() -> None:
    plan = plan_of()
    (gw,) = by_kind(plan.objects, "Gateway")
    assert gw["spec"]["gatewayClassName"] == "tulle" and "addresses" not in gw["spec"]
    assert plan.gateway == ("default", "nginx-verify-ab12")
    refs = [c for listener in gw["spec"]["listeners"]
            for c in (listener.get("tls") or {}).get("certificateRefs", [])]
    assert refs and all(c["name"] == "certs-verify-ab12" for c in refs)
    routes = by_kind(plan.objects, "HTTPRoute")
    assert routes and plan.routes == [(r["metadata"]["namespace"], r["metadata"]["name"])
                                      for r in routes]
    for route in routes:
        assert {p["name"] for p in route["spec"]["parentRefs"]} == {gw["metadata"]["name"]}
    (grant,) = by_kind(plan.objects, "ReferenceGrant")  # the Gateway (default) -> shop's Secret
    assert grant["metadata"]["namespace"] == "shop"
    assert [t.get("name") for t in grant["spec"]["to"]] == ["certs-verify-ab12"]


def test_cleanup_deletes_exactly_what_is_applied_in_reverse() -> None:
    plan = plan_of()
    applied = [(o["apiVersion"], o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
               for o in plan.objects]
    assert plan.cleanup == list(reversed(applied))


def test_runs_do_not_collide_and_names_stay_dns_labels() -> None:
    assert {o["metadata"]["name"] for o in plan_of(suffix="aaaa1").objects}.isdisjoint(
        {o["metadata"]["name"] for o in plan_of(suffix="bbbb2").objects})
    name = verify_name("x" * 80 + "-", "c0ffee")
    assert len(name) <= 63 and name.endswith("x-verify-c0ffee")
    assert verify_name("web", "123456") == "web-verify-123456"  # token_hex may give digits
    for bad in ("", "UP", "a/b", "a" * 40, "é1", "a-b"):
        with pytest.raises(VerifyError, match="bad run suffix"):
            verify_name("web", bad)


def test_backend_services_must_be_in_the_lab() -> None:
    wanted = backend_services(DOCS, convert(DOCS))
    assert wanted == [("other", "api"), ("shop", "web")]
    assert missing_services(wanted, [("shop", "web"), ("other", "api"), ("x", "y")]) is None
    err = missing_services(wanted, [("shop", "web"), ("shop", "api")])
    assert err is not None and "no Service other/api" in err and "deploy them first" in err


def test_nothing_to_verify_is_an_error() -> None:
    with pytest.raises(VerifyError):
        plan_of([])


def test_backend_identity_is_the_workload_not_the_replica() -> None:
    a = backend_of({"namespace": "shop", "pod": "web-7d9f8b-x2k4q", "httpPort": 8080})
    b = backend_of({"namespace": "shop", "pod": "web-7d9f8b-p9z1m", "httpPort": 8080})
    assert a == b == "shop/web:8080"
    assert backend_of({"namespace": "shop", "pod": "loner", "httpPort": 80}) == "shop/loner:80"
    assert backend_of({}) == "/?:"
