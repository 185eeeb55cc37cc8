"""networking.k8s.io/v1 Ingress and IngressClass: read, written back, and refused by field
with the API server's validation rules."""

from __future__ import annotations

from typing import Any

import pytest

from agent.model.convert import from_dict
from agent.model.ingress import Ingress, IngressClass, PathType
from agent.model.kinds import resolve_kind
from tests.unit.model.helpers import DELETE, edit, error_of, round_trip


def svc() -> dict[str, Any]:
    return {"service": {"name": "web", "port": {"number": 80}}}


INGRESS: dict[str, Any] = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "Ingress",
    "metadata": {"name": "shop", "namespace": "web"},
    "spec": {
        "ingressClassName": "tulle",
        "defaultBackend": svc(),
        "tls": [{"hosts": ["shop.example.com", "*.example.com"], "secretName": "shop-tls"}],
        "rules": [
            {
                "host": "*.example.com",
                "http": {
                    "paths": [
                        {"path": "/cart", "pathType": "Prefix", "backend": svc()},
                        {"path": "/x", "pathType": "Exact",
                         "backend": {"service": {"name": "web", "port": {"name": "http"}}}},
                        {"pathType": "ImplementationSpecific", "backend": {"resource": {
                            "apiGroup": "k8s.example.com", "kind": "Bucket", "name": "b"}}},
                    ]
                },
            }
        ],
    },
    "status": {"loadBalancer": {"ingress": [{"ip": "10.96.0.7"}]}},
}
WHERE = "Ingress web/shop"
CLASS: dict[str, Any] = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "IngressClass",
    "metadata": {"name": "tulle",
                 "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
    "spec": {"controller": "tulle.io/ingress-controller"},
}


def test_reads_every_field_and_round_trips() -> None:
    ing = round_trip(INGRESS)
    assert isinstance(ing, Ingress)
    assert ing.class_name == "tulle"
    paths = ing.spec.rules[0].http.paths  # type: ignore[union-attr]
    assert [p.path_type for p in paths] == [PathType.PREFIX, PathType.EXACT,
                                            PathType.IMPLEMENTATION_SPECIFIC]
    assert paths[1].backend.service.port.name == "http"  # type: ignore[union-attr]
    assert paths[2].backend.resource.kind == "Bucket"  # type: ignore[union-attr]
    assert ing.status.load_balancer.ingress[0].ip == "10.96.0.7"
    cls = round_trip(CLASS)
    assert isinstance(cls, IngressClass) and cls.is_default
    assert cls.spec.controller == "tulle.io/ingress-controller"


def test_kind_names_resolve() -> None:
    assert resolve_kind("ing").kind == "Ingress"
    assert resolve_kind("ingressclasses.networking.k8s.io").kind == "IngressClass"
    assert not resolve_kind("ingressclass").namespaced


def test_legacy_annotation_names_the_class() -> None:
    doc = edit(edit(INGRESS, "spec.ingressClassName", DELETE),
               "metadata.annotations", {"kubernetes.io/ingress.class": "tulle"})
    ing = from_dict(doc)
    assert isinstance(ing, Ingress) and ing.class_name == "tulle"


P0 = "spec.rules[0].http.paths[0]"
REFUSED = [
    ("spec", {}, "spec: either `defaultBackend` or `rules` must be specified"),
    ("spec.rules[0].host", "10.0.0.1", "spec.rules[0].host: invalid value \"10.0.0.1\": must be a DNS name, not an IP address"),
    ("spec.rules[0].host", "foo.*.com", "spec.rules[0].host: invalid value \"foo.*.com\""),
    ("spec.rules[0].host", "*foo.com", "spec.rules[0].host: invalid value \"*foo.com\""),
    ("spec.rules[0].host", "Foo.com", "spec.rules[0].host: invalid value \"Foo.com\""),
    ("spec.tls[0].hosts[0]", "a.*.com", "spec.tls[0].hosts[0]: invalid value \"a.*.com\""),
    (f"{P0}.pathType", DELETE, f"{P0}.pathType: required"),
    (f"{P0}.pathType", "Regex", f"{P0}.pathType: unsupported value \"Regex\" (supported: Exact, Prefix, ImplementationSpecific)"),
    (f"{P0}.path", "cart", f"{P0}.path: invalid value \"cart\": must be an absolute path"),
    (f"{P0}.path", DELETE, f"{P0}.path: must be an absolute path for pathType Prefix"),
    (f"{P0}.path", "/a//b", f"{P0}.path: invalid value \"/a//b\": must not contain '//'"),
    (f"{P0}.path", "/a/../b", f"{P0}.path: invalid value \"/a/../b\": must not contain '/../'"),
    (f"{P0}.path", "/a%2fb", "must not contain '%2f'"),
    (f"{P0}.path", "/a/..", f"{P0}.path: invalid value \"/a/..\": cannot end with '/..'"),
    (f"{P0}.backend", DELETE, f"{P0}.backend: required"),
    (f"{P0}.backend", {}, f"{P0}.backend: one backend must be specified: service or resource"),
    (f"{P0}.backend.resource", {"kind": "B", "name": "b"}, f"{P0}.backend: cannot set both resource and service backends"),
    (f"{P0}.backend.service.port", {"number": 80, "name": "http"}, f"{P0}.backend.service.port: cannot set both port name & port number"),
    (f"{P0}.backend.service.port", {}, f"{P0}.backend.service.port: port name or number is required"),
    (f"{P0}.backend.service.port.number", 0, f"{P0}.backend.service.port.number: must be"),
    (f"{P0}.backend.service.port.number", 70000, f"{P0}.backend.service.port.number: must be"),
    (f"{P0}.backend.service.name", "Web_1", f"{P0}.backend.service.name: invalid value"),
    ("spec.rules[0].http.paths", [], "spec.rules[0].http.paths: must have at least 1 item"),
    ("spec.ingressClassName", "Not_A_Name", "spec.ingressClassName: invalid value"),
    ("metadata.annotations", {"kubernetes.io/ingress.class": "x"}, "metadata.annotations[kubernetes.io/ingress.class]: can not be set when the class field is also set"),
]


@pytest.mark.parametrize(("path", "value", "message"), REFUSED)
def test_refused_with_the_field_named(path: str, value: Any, message: str) -> None:
    assert error_of(edit(INGRESS, path, value)).startswith(f"{WHERE}: ") or path == "spec"
    assert message in error_of(edit(INGRESS, path, value))


def test_exact_and_prefix_rules_do_not_bind_implementation_specific() -> None:
    doc = edit(INGRESS, f"{P0}.pathType", "ImplementationSpecific")
    ing = from_dict(edit(doc, f"{P0}.path", "/a//b"))  # the controller decides what it means
    assert isinstance(ing, Ingress)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("spec", DELETE, "IngressClass tulle: spec: required"),
        ("spec.controller", DELETE, "spec.controller: required"),
        ("spec.controller", "no-domain", "spec.controller: invalid value \"no-domain\""),
        ("spec.controller", "a.io/" + "x" * 250, "spec.controller: must be no more than 250 characters"),
        ("spec.parameters", {"kind": "K", "name": "n", "scope": "Namespace"}, "spec.parameters.namespace: required when scope is Namespace"),
        ("spec.parameters", {"kind": "K", "name": "n", "scope": "Galaxy"}, "spec.parameters.scope: unsupported value"),
    ],
)
def test_ingress_class_refused_with_the_field_named(path: str, value: Any, message: str) -> None:
    assert message in error_of(edit(CLASS, path, value))
