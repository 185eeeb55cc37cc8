"""Ingress served by its own semantics: the Kubernetes Ingress docs' tables (hosts, path
types, precedence, defaultBackend), class selection, backends and TLS hosts."""

from __future__ import annotations

import pytest

from agent.model.ingress import Ingress
from gatewayapi import Forward, Request, Respond, RouteTables
from gatewayapi.actions import Answer
from gatewayapi.headers import Headers
from gatewayapi.ingress.classes import served_ingresses
from gatewayapi.ingress.serve import compile_ingresses
from gatewayapi.types import IngressParent, NoRoute
from tests.unit.gatewayapi.helpers import service
from tests.unit.gatewayapi.ingress_helpers import (
    backend,
    ingress,
    ingress_class,
    path,
    rule,
)

HTTP = IngressParent("tulle", 80)
SERVICES = [service(n, ports=(8080, (9090, "admin"))) for n in
            ("a", "b", "c", "d", "def", "def2", "other")]


def tables(*ingresses: Ingress, classes=None) -> RouteTables:
    ing = compile_ingresses(
        ingresses, classes if classes is not None else [ingress_class()], SERVICES
    )
    return RouteTables({}, {}, {}, ()).with_ingresses(ing)


def route(t: RouteTables, target: str, host: str = "foo.com", parent=HTTP) -> Forward | Respond:
    return t.route(parent, Request("GET", "http", host, target, Headers((("Host", host),))))


def backend_of(t: RouteTables, target: str, host: str = "foo.com") -> str | int:
    """The Service a request goes to, or the status it is answered with."""
    result = route(t, target, host)
    if isinstance(result, Forward):
        return result.backend.name
    return result.response.status


# The "Examples" table of https://kubernetes.io/docs/concepts/services-networking/ingress/
DOCS_TABLE = [
    ("Prefix", ["/"], "/anything/at/all", True),
    ("Exact", ["/foo"], "/foo", True),
    ("Exact", ["/foo"], "/bar", False),
    ("Exact", ["/foo"], "/foo/", False),
    ("Exact", ["/foo/"], "/foo", False),
    ("Prefix", ["/foo"], "/foo", True),
    ("Prefix", ["/foo"], "/foo/", True),
    ("Prefix", ["/foo/"], "/foo", True),
    ("Prefix", ["/foo/"], "/foo/", True),
    ("Prefix", ["/aaa/bb"], "/aaa/bbb", False),
    ("Prefix", ["/aaa/bbb"], "/aaa/bbb", True),
    ("Prefix", ["/aaa/bbb/"], "/aaa/bbb", True),
    ("Prefix", ["/aaa/bbb"], "/aaa/bbb/", True),
    ("Prefix", ["/aaa/bbb"], "/aaa/bbb/ccc", True),
    ("Prefix", ["/aaa/bbb"], "/aaa/bbbxyz", False),
    ("ImplementationSpecific", ["/aaa/bbb"], "/aaa/bbb/ccc", True),
    ("ImplementationSpecific", ["/aaa/bbb"], "/aaa/bbbxyz", False),
    ("ImplementationSpecific", [None], "/x", True),
]


@pytest.mark.parametrize(("kind", "paths", "request_path", "matches"), DOCS_TABLE)
def test_path_types_follow_the_docs_table(kind, paths, request_path, matches):
    t = tables(ingress("web", rule("foo.com", *(path(p, "a", kind) for p in paths))))
    assert backend_of(t, request_path) == ("a" if matches else 404)


@pytest.mark.parametrize(
    ("paths", "request_path", "expected"),
    [
        ([("/", "a"), ("/aaa", "b")], "/aaa/ccc", "b"),
        ([("/", "a"), ("/aaa", "b"), ("/aaa/bbb", "c")], "/aaa/bbb", "c"),
        ([("/", "a"), ("/aaa", "b"), ("/aaa/bbb", "c")], "/ccc", "a"),
        ([("/aaa", "b")], "/ccc", "def"),  # the default backend
    ],
)
def test_longest_prefix_wins(paths, request_path, expected):
    t = tables(ingress("web", rule("foo.com", *(path(p, b) for p, b in paths)), default="def"))
    assert backend_of(t, request_path) == expected


def test_exact_beats_prefix_of_the_same_length_whatever_the_order():
    t = tables(ingress("web", rule("foo.com", path("/foo", "a"), path("/foo", "b", "Exact"))))
    assert backend_of(t, "/foo") == "b"
    assert backend_of(t, "/foo/x") == "a"


def test_older_ingress_wins_a_tie_across_ingresses():
    young = ingress("young", rule("foo.com", path("/x", "b")), created="2024-02-01T00:00:00Z")
    old = ingress("old", rule("foo.com", path("/x", "a")), created="2024-01-01T00:00:00Z")
    assert backend_of(tables(young, old), "/x") == "a"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("foo.bar.com", "a"),
        ("FOO.Bar.com", "a"),  # host names are case-insensitive
        ("foo.bar.com:8080", "a"),  # the port is not part of the host
        ("foo.bar.com.", "a"),  # nor is a trailing dot
        ("bar.foo.com", "b"),  # *.foo.com: exactly one label
        ("baz.bar.foo.com", "c"),  # two labels: not the wildcard, the host-less rule
        ("foo.com", "c"),  # the wildcard needs a label
        ("other.org", "c"),
    ],
)
def test_hosts_exact_then_one_label_wildcard_then_any(host, expected):
    t = tables(
        ingress(
            "web",
            rule("foo.bar.com", path("/", "a")),
            rule("*.foo.com", path("/", "b")),
            rule(None, path("/", "c")),
        )
    )
    assert backend_of(t, "/", host) == expected


def test_a_host_group_does_not_fall_through_to_less_specific_rules():
    t = tables(ingress("web", rule("foo.com", path("/a", "a")), rule(None, path("/", "c"))))
    assert backend_of(t, "/b", "foo.com") == 404
    assert backend_of(t, "/b", "bar.com") == "c"


def test_wildcard_at_two_labels_is_not_served_without_a_catch_all():
    t = tables(ingress("web", rule("*.foo.com", path("/", "a"))))
    assert backend_of(t, "/", "x.foo.com") == "a"
    assert backend_of(t, "/", "y.x.foo.com") == 404


def test_default_backend_only_and_404_without_one():
    assert backend_of(tables(ingress("web", default="def")), "/any", "x.org") == "def"
    no_default = tables(ingress("web", rule("foo.com", path("/a", "a"))))
    result = route(no_default, "/b")
    assert isinstance(result, Respond) and result.response.status == 404
    assert result.answer is Answer.NO_ROUTE


def test_host_group_uses_its_own_ingress_default_before_the_class_default():
    old = ingress("old", default="def", created="2024-01-01T00:00:00Z")
    shop = ingress("shop", rule("shop.com", path("/cart", "a")), default="def2",
                   created="2024-02-01T00:00:00Z")
    t = tables(old, shop)
    assert backend_of(t, "/other", "shop.com") == "def2"
    assert backend_of(t, "/other", "else.com") == "def"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/public/../admin", "admin"),  # normalized before matching: never "public"
        ("/public/%2e%2e/admin", "admin"),
        ("//admin", "admin"),
        ("/public/%2e%2e%2fadmin", 400),  # an encoded slash is refused
    ],
)
def test_traversal_is_matched_after_normalization(target, expected):
    t = tables(
        ingress("web", rule("foo.com", path("/public", "a"), path("/admin", "b", "Exact")))
    )
    got = backend_of(t, target)
    assert got == {"admin": "b"}.get(expected, expected)  # type: ignore[arg-type]


def test_flows_name_the_ingress_and_its_field():
    t = tables(ingress("web", rule("foo.com", path("/x", "a"), path("/y", "b")), default="def",
                       namespace="default"))
    fwd = route(t, "/y")
    assert isinstance(fwd, Forward)
    assert str(fwd.selection.ref) == "default/web#rules[0].paths[1]"
    assert (fwd.backend.namespace, fwd.backend.name, fwd.backend.port) == ("default", "b", 8080)
    default = route(t, "/z")
    assert isinstance(default, Forward) and str(default.selection.ref) == "default/web#defaultBackend"


def test_port_by_name_and_invalid_backends_answer_500_with_the_reason():
    by_name = ingress("named", rule("foo.com", {"path": "/n", "pathType": "Prefix",
                                                "backend": backend("a", "admin")}))
    missing = ingress("missing", rule("bar.com", path("/", "nosuch")))
    wrong_port = ingress("port", rule("baz.com", {"path": "/", "pathType": "Prefix",
                                                  "backend": backend("a", 1234)}))
    resource = ingress("res", rule("res.com", {"path": "/", "pathType": "Prefix", "backend": {
        "resource": {"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "b"}}}))
    t = tables(by_name, missing, wrong_port, resource)
    fwd = route(t, "/n")
    assert isinstance(fwd, Forward) and fwd.backend.port == 9090
    for host, reason in [("bar.com", "Service default/nosuch not found"),
                         ("baz.com", "has no port 1234"),
                         ("res.com", "resource backends are not supported")]:
        answered = route(t, "/", host)
        assert isinstance(answered, Respond) and answered.response.status == 500
        assert reason in answered.detail


# --- class selection -------------------------------------------------------------------


def test_class_by_field_annotation_and_default():
    by_field = ingress("f", rule("a.com", path("/", "a")))
    by_annotation = ingress("n", rule("b.com", path("/", "a")), class_name=None,
                            annotations={"kubernetes.io/ingress.class": "tulle"})
    by_default = ingress("d", rule("c.com", path("/", "a")), class_name=None)
    other = ingress("o", rule("d.com", path("/", "a")), class_name="nginx")
    classes = [ingress_class(default=True), ingress_class("nginx", "k8s.io/ingress-nginx")]
    served = served_ingresses([by_field, by_annotation, by_default, other], classes)
    assert sorted(i.metadata.name for i in served["tulle"]) == ["d", "f", "n"]
    assert "nginx" not in served
    t = tables(by_field, by_annotation, by_default, other, classes=classes)
    assert backend_of(t, "/", "d.com") == 404  # another class's Ingress is not served


@pytest.mark.parametrize(
    "classes",
    [
        [ingress_class()],  # no default class
        [ingress_class(default=True), ingress_class("t2", default=True)],  # two: none
        [ingress_class("nginx", "k8s.io/ingress-nginx", default=True), ingress_class()],
    ],
)
def test_classless_ingress_is_ours_only_under_our_single_default(classes):
    classless = ingress("d", rule("c.com", path("/", "a")), class_name=None)
    assert served_ingresses([classless], classes).get("tulle", []) == []


def test_unknown_class_and_missing_class_object_are_ignored():
    ing = ingress("x", rule("c.com", path("/", "a")), class_name="tulle")
    assert served_ingresses([ing], []) == {}
    assert served_ingresses([ing], [ingress_class("tulle", "example.com/other")]) == {}


# --- addresses and TLS -----------------------------------------------------------------


def test_addresses_come_from_status_and_map_both_ports():
    ing = ingress("web", rule("a.com", path("/", "a")), address="10.96.5.5")
    t = compile_ingresses([ing], [ingress_class()], SERVICES,
                          ignored_addresses=frozenset({"10.96.9.9"}))
    assert t.parents() == {("10.96.5.5", 80): IngressParent("tulle", 80),
                           ("10.96.5.5", 443): IngressParent("tulle", 443)}
    clash = ingress("web", rule("a.com", path("/", "a")), address="10.96.9.9")
    t = compile_ingresses([clash], [ingress_class()], SERVICES,
                          ignored_addresses=frozenset({"10.96.9.9"}))
    assert t.parents() == {}


def test_tls_hosts_become_https_listeners_oldest_first():
    old = ingress("old", rule("a.com", path("/", "a")), created="2024-01-01T00:00:00Z",
                  tls=[{"hosts": ["a.com", "*.b.com"], "secretName": "old-tls"}])
    young = ingress("young", rule("a.com", path("/", "a")), created="2024-02-01T00:00:00Z",
                    tls=[{"hosts": ["a.com"], "secretName": "young-tls"}, {"secretName": "any"}])
    ing = compile_ingresses([young, old], [ingress_class()], SERVICES)
    by_host = {i.hostname: i for i in ing.listeners()}
    assert by_host["a.com"].certificates == (("default", "old-tls"),)
    assert by_host["*.b.com"].certificates == (("default", "old-tls"),)
    assert by_host[None].certificates == (("default", "any"),)
    assert all(i.port == 443 and i.protocol == "HTTPS" for i in by_host.values())
    assert {i.parent for i in by_host.values()} == {IngressParent("tulle", 443)}
    parent = IngressParent("tulle", 443)
    assert not ing.misdirected(parent, "a.com", "a.com")
    assert not ing.misdirected(parent, "x.b.com", "*.b.com")
    assert ing.misdirected(parent, "y.x.b.com", "*.b.com")  # two labels: the any-host entry
    assert ing.misdirected(parent, "a.com", "*")  # SNI/Host mismatch: 421
    assert not ing.misdirected(parent, "x.b.com", "a.com")  # one Secret for both


def test_no_ingress_parent_without_tables():
    result = RouteTables({}, {}, {}, ()).select(HTTP, "a.com", "GET", "/", "", Headers())
    assert isinstance(result, NoRoute)
