"""The documents each side of `tulle convert --verify` serves (gatewayapi/ingress/sides.py)."""

from __future__ import annotations

import pytest
import yaml

from gatewayapi.ingress import convert
from gatewayapi.ingress.sides import (
    VerifyError,
    gateway_of,
    gateway_side,
    ingress_side,
    namespaces,
    services_and_targets,
    tls_secrets,
)

DOCS = list(yaml.safe_load_all("""\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{name: http, port: 8080}, {name: admin, port: 9090}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
  annotations: {kubernetes.io/ingress.class: nginx}
spec:
  defaultBackend: {service: {name: fallback, port: {number: 80}}}
  tls: [{hosts: [a.example, b.example], secretName: certs}]
  rules:
  - host: a.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 81}}}}
"""))


def test_services_are_the_inputs_plus_one_per_undefined_backend() -> None:
    services, targets = services_and_targets(DOCS, convert(DOCS))
    by_name = {s["metadata"]["name"]: s for s in services}
    assert by_name["web"] is not DOCS[0] and by_name["web"] == DOCS[0]  # the input's, as given
    assert by_name["api"]["spec"]["ports"] == [{"port": 81}]
    assert by_name["fallback"]["metadata"]["namespace"] == "shop"
    assert targets == [("shop", "api", 81), ("shop", "fallback", 80),
                       ("shop", "web", 8080), ("shop", "web", 9090)]


def test_ingress_side_puts_every_ingress_in_the_verified_class_served_by_tulle() -> None:
    docs = ingress_side(DOCS, "nginx")
    assert docs[0]["kind"] == "IngressClass"
    assert docs[0]["spec"]["controller"] == "tulle.io/ingress-controller"
    ing = docs[1]
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert "kubernetes.io/ingress.class" not in ing["metadata"]["annotations"]
    assert "kubernetes.io/ingress.class" in DOCS[1]["metadata"]["annotations"]  # not mutated


def test_gateway_side_namespaces_and_tls_secrets() -> None:
    conversion = convert(DOCS)
    gateway = gateway_of(conversion)
    docs = gateway_side(conversion, gateway)
    assert docs[0]["kind"] == "GatewayClass"
    assert docs[0]["spec"]["controllerName"] == "tulle.io/gateway-controller"
    assert [n["metadata"]["name"] for n in namespaces(docs)] == ["shop"]
    assert tls_secrets(DOCS) == {("shop", "certs"): ["a.example", "b.example"]}


def test_more_than_one_gateway_is_refused() -> None:
    other = yaml.safe_load(yaml.safe_dump(DOCS[1]))
    other["metadata"]["name"] = "other"
    other["metadata"]["annotations"] = {"kubernetes.io/ingress.class": "other"}
    with pytest.raises(VerifyError, match="one IngressClass at a time.*nginx, other"):
        gateway_of(convert([*DOCS, other]))
