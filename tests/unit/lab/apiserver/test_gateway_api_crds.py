"""The Gateway API kinds are served from their CustomResourceDefinitions only, as on a
cluster: not before the CRD is established, not after it is deleted; writes are checked
against the CRD's schema (errors worded as a cluster's), then by the typed model."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab import gateway_crds
from lab.apiserver import crds
from lab.apiserver.__main__ import bootstrap
from lab.apiserver.app import Api, Request
from lab.apiserver.crds import install_gateway_api
from lab.store import Store

TOKEN = "admin-token"
GW = "/apis/gateway.networking.k8s.io"
ROUTES = f"{GW}/v1/namespaces/default/httproutes"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


class Direct:
    """The API as a function (no sockets): status and body of one request."""

    def __init__(self, store: Store) -> None:
        self.api = Api(store, frozenset({TOKEN}))

    def __call__(
        self, method: str, path: str, body: Any = None, accept: str = "application/json"
    ) -> tuple[int, Any]:
        headers = {
            "authorization": f"Bearer {TOKEN}",
            "content-type": "application/json",
            "accept": accept,
        }
        data = json.dumps(body).encode() if body is not None else b""
        reply = self.api.handle(Request(method, path, {}, headers, data))
        if isinstance(reply.body, bytes) and reply.content_type == "application/json":
            return reply.status, json.loads(reply.body)  # a list spliced from stored JSON
        return reply.status, reply.body


@pytest.fixture
def bare(tmp_path: Path) -> Iterator[tuple[Store, Direct]]:
    """A cluster without the Gateway API CRDs."""
    store = Store(tmp_path / "store.db")
    bootstrap(store)
    try:
        yield store, Direct(store)
    finally:
        store.close()


@pytest.fixture
def api(bare: tuple[Store, Direct]) -> Direct:
    install_gateway_api(bare[0])
    return bare[1]


def route(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "shop"},
        "spec": spec,
    }


def causes(body: dict[str, Any]) -> dict[str, str]:
    return {c["field"]: c["message"] for c in body["details"]["causes"]}


# --- the manifests -------------------------------------------------------------------------


def _generator() -> Any:
    path = gateway_crds.REPO / "deploy" / "crds" / "generate.py"
    spec = importlib.util.spec_from_file_location("crd_generate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_crd_files_are_what_the_generator_writes() -> None:
    generator = _generator()
    for name, doc in generator.crds().items():
        assert (gateway_crds.CRD_DIR / name).read_text() == generator.render(doc), (
            f"{name} is stale: run python deploy/crds/generate.py"
        )


def test_the_crds_pass_the_servers_validation_and_serve_the_modelled_kinds() -> None:
    found = {}
    for crd in gateway_crds.manifests(gateway_crds.CRD_DIR):
        assert crds.problems(crd) == [], crd["metadata"]["name"]
        res = crds.resource_of(crd)
        assert res is not None and res.modelled and res.custom
        assert (
            res.categories == ("gateway-api",)
            and "status" in res.subresources
            or (res.kind == "ReferenceGrant")
        )
        found[res.kind] = res
    assert found["HTTPRoute"].versions == ("v1", "v1beta1")
    assert found["ReferenceGrant"].versions == ("v1beta1", "v1")  # v1beta1 is stored
    assert found["Gateway"].short_names == ("gtw",) and found["GatewayClass"].short_names == ("gc",)
    assert [c[0] for c in found["Gateway"].printer_columns] == [
        "Class",
        "Address",
        "Programmed",
        "Age",
    ]
    assert not found["GatewayClass"].namespaced


# --- serving -------------------------------------------------------------------------------


def test_gateway_kinds_are_served_only_while_their_crd_is_established(
    bare: tuple[Store, Direct],
) -> None:
    store, call = bare
    assert call("GET", ROUTES)[0] == 404
    assert call("GET", f"{GW}/v1")[0] == 404
    groups = [g["name"] for g in call("GET", "/apis")[1]["groups"]]
    assert "gateway.networking.k8s.io" not in groups
    # Stored but not yet established (no status): still not served.
    (routes_crd,) = [c for c in gateway_crds.manifests() if c["spec"]["names"]["kind"] == "HTTPRoute"]
    store.create(routes_crd)
    assert call("GET", ROUTES)[0] == 404
    store.update_status(
        crds.CRD_KIND,
        "",
        routes_crd["metadata"]["name"],
        {"conditions": [{"type": "Established", "status": "True"}]},
    )
    assert call("GET", ROUTES)[0] == 200
    listed = call("GET", f"{GW}/v1")[1]["resources"]
    assert {r["name"] for r in listed} == {"httproutes", "httproutes/status"}
    assert call("POST", ROUTES, route(hostnames=["a.example"]))[0] == 201
    status, _ = call("DELETE", f"{CRDS}/{routes_crd['metadata']['name']}")
    assert status == 200
    assert call("GET", ROUTES)[0] == 404
    assert store.list("HTTPRoute")[0] == []


def test_schema_errors_read_as_a_clusters(api: Direct) -> None:
    bad = route(rules=[{"matches": [{"path": {"type": "Foo", "value": "/"}}]}])
    status, body = api("POST", ROUTES, bad)
    assert status == 422
    assert causes(body) == {
        "spec.rules[0].matches[0].path.type": (
            'Unsupported value: "Foo": supported values: "Exact", "PathPrefix", "RegularExpression"'
        )
    }
    status, body = api("POST", ROUTES, route(hostnames=["a.example"] * 17))
    assert (
        status == 422
        and "Too many: 17: must have at most 16 items" in causes(body)["spec.hostnames"]
    )
    status, body = api("POST", ROUTES, route(rules=[{"backendRefs": [{"name": "web", "port": 0}]}]))
    assert status == 422 and causes(body) == {
        "spec.rules[0].backendRefs[0].port": "Invalid value: 0: should be >= 1"
    }
    status, body = api("POST", ROUTES, route(parentRefs=[{"kind": "Gateway"}]))
    assert status == 422 and causes(body) == {"spec.parentRefs[0].name": "Required value"}


def test_typed_admission_still_catches_what_the_schema_cannot(api: Direct) -> None:
    # Upstream says these with CEL rules and patterns; here the typed model does.
    two_matches = route(
        rules=[
            {
                "matches": [{"path": {"value": "/a"}}, {"path": {"value": "/b"}}],
                "filters": [
                    {
                        "type": "URLRewrite",
                        "urlRewrite": {
                            "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}
                        },
                    }
                ],
            }
        ]
    )
    status, body = api("POST", ROUTES, two_matches)
    assert status == 422
    assert (
        "ReplacePrefixMatch requires the rule to have exactly one match"
        in (causes(body)["spec.rules[0].filters[0].urlRewrite.path.type"])
    )
    bad_regex = route(rules=[{"matches": [{"path": {"type": "RegularExpression", "value": "(("}}]}])
    status, body = api("POST", ROUTES, bad_regex)
    assert status == 422 and "not valid RE2" in causes(body)["spec.rules[0].matches[0].path.value"]
    assert body["details"]["group"] == "gateway.networking.k8s.io"
    assert api("GET", ROUTES)[1]["items"] == []


def test_unknown_fields_are_pruned_by_the_schema_and_metadata_stays(api: Direct) -> None:
    # Warn (the server's default) prunes "matchs"; the CRD's `metadata: {type: object}`
    # must not prune the object's name and labels with it.
    typo = route(rules=[{"matchs": []}])
    typo["metadata"]["labels"] = {"app": "shop"}
    status, body = api("POST", ROUTES, typo)
    assert status == 201 and body["metadata"]["labels"] == {"app": "shop"}
    assert body["spec"]["rules"] == [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}
    ]


def test_printer_columns_as_upstreams(api: Direct, bare: tuple[Store, Direct]) -> None:
    store = bare[0]
    api("POST", ROUTES, route(hostnames=["a.example", "b.example"]))
    table = api("GET", ROUTES, accept=TABLE)[1]
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Hostnames", "Age"]
    assert table["rows"][0]["cells"][:2] == ["shop", '["a.example","b.example"]']
    gateway = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "edge"},
        "spec": {
            "gatewayClassName": "tulle",
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
        },
    }
    gateways = f"{GW}/v1/namespaces/default/gateways"
    assert api("POST", gateways, gateway)[0] == 201
    cells = api("GET", gateways, accept=TABLE)[1]["rows"][0]["cells"]
    assert cells[:4] == ["edge", "tulle", None, None]
    store.update_status(
        "Gateway",
        "default",
        "edge",
        {
            "addresses": [
                {"type": "IPAddress", "value": "10.96.0.9"},
                {"type": "IPAddress", "value": "10.96.0.10"},
            ],
            "conditions": [
                {"type": "Accepted", "status": "True"},
                {"type": "Programmed", "status": "False"},
            ],
        },
    )
    cells = api("GET", gateways, accept=TABLE)[1]["rows"][0]["cells"]
    assert cells[:4] == ["edge", "tulle", "10.96.0.9 10.96.0.10", "False"]
    assert cells[4].endswith("s")  # Age, as a duration


def test_status_written_through_the_subresource_is_kept(api: Direct) -> None:
    api("POST", ROUTES, route(hostnames=["a.example"]))
    status = {
        "parents": [
            {
                "parentRef": {"name": "edge"},
                "controllerName": "tulle.dev/gateway",
                "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted"}],
            }
        ]
    }
    current = api("GET", f"{ROUTES}/shop")[1]
    code, _ = api("PUT", f"{ROUTES}/shop/status", {**current, "status": status})
    assert code == 200
    assert api("GET", f"{ROUTES}/shop")[1]["status"] == status
    # A spec update keeps it (status is a subresource).
    current = api("GET", f"{ROUTES}/shop")[1]
    current["spec"]["hostnames"] = ["b.example"]
    assert api("PUT", f"{ROUTES}/shop", current)[0] == 200
    assert api("GET", f"{ROUTES}/shop")[1]["status"] == status


GRPC_ROUTES = f"{GW}/v1/namespaces/default/grpcroutes"


def grpc_route(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GRPCRoute",
        "metadata": {"name": "greeter"},
        "spec": spec,
    }


def test_grpcroutes_are_served_and_admitted_by_schema_then_model(api: Direct) -> None:
    good = grpc_route(
        parentRefs=[{"name": "gw"}],
        rules=[
            {
                "matches": [{"method": {"service": "helloworld.Greeter", "method": "SayHello"}}],
                "backendRefs": [{"name": "greeter", "port": 50051}],
            }
        ],
    )
    status, body = api("POST", GRPC_ROUTES, good)
    assert status == 201, body
    assert body["spec"]["rules"][0]["matches"][0]["method"]["type"] == "Exact"  # CRD default
    status, body = api("POST", GRPC_ROUTES, grpc_route(rules=[{"matches": [{}] * 9}]))
    assert status == 422 and "must have at most 8 items" in causes(body)["spec.rules[0].matches"]
    url_rewrite = {"type": "URLRewrite", "urlRewrite": {}}
    status, body = api("POST", GRPC_ROUTES, grpc_route(rules=[{"filters": [url_rewrite]}]))
    assert status == 422 and "Unsupported value" in causes(body)["spec.rules[0].filters[0].type"]
    slash = grpc_route(rules=[{"matches": [{"method": {"service": "a/b"}}]}])
    status, body = api("POST", GRPC_ROUTES, slash)
    assert status == 422
    assert "must only contain valid characters" in (
        causes(body)["spec.rules[0].matches[0].method.service"]
    )
    assert [i["metadata"]["name"] for i in api("GET", GRPC_ROUTES)[1]["items"]] == ["greeter"]


def test_session_persistence_is_kept_defaulted_and_admitted_by_the_model(api: Direct) -> None:
    sticky = {"backendRefs": [{"name": "web", "port": 80}],
              "sessionPersistence": {"sessionName": "s", "cookieConfig": {}}}
    status, body = api("POST", ROUTES, route(rules=[sticky]))
    assert status == 201, body
    assert body["spec"]["rules"][0]["sessionPersistence"] == {
        "sessionName": "s", "type": "Cookie", "cookieConfig": {"lifetimeType": "Session"}
    }  # not pruned; the CRD's defaults
    status, body = api("POST", GRPC_ROUTES, grpc_route(rules=[
        {"sessionPersistence": {"type": "Header", "sessionName": "x-session"}}]))
    assert status == 201, body
    permanent = {"sessionPersistence": {"cookieConfig": {"lifetimeType": "Permanent"}}}
    status, body = api("POST", ROUTES, route(rules=[permanent]))
    assert status == 422 and "AbsoluteTimeout must be specified" in (
        causes(body)["spec.rules[0].sessionPersistence.absoluteTimeout"])
    idle = {"sessionPersistence": {"idleTimeout": "1m"}}  # kept by the schema to be refused
    status, body = api("POST", ROUTES, route(rules=[idle]))
    assert status == 422 and "removed idleTimeout" in (
        causes(body)["spec.rules[0].sessionPersistence.idleTimeout"])
    status, body = api("POST", ROUTES, route(rules=[{"sessionPersistence": {"type": "Sticky"}}]))
    assert status == 422 and "Unsupported value" in (
        causes(body)["spec.rules[0].sessionPersistence.type"])


def test_gateway_infrastructure_is_kept_and_its_keys_checked(api: Direct) -> None:
    """spec.infrastructure used to be pruned as an unknown field: the labels a user asked
    for vanished without a word. Now it is stored, and a key upstream's CEL rule refuses
    is refused by field."""
    gateways = f"{GW}/v1/namespaces/default/gateways"
    infra = {"labels": {"key2": "value2"}, "annotations": {"key1": "value1"}}
    gateway = {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "edge"},
        "spec": {"gatewayClassName": "tulle", "infrastructure": infra,
                 "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
    }
    status, body = api("POST", gateways, gateway)
    assert status == 201 and body["spec"]["infrastructure"] == infra
    gateway["metadata"]["name"] = "bad"
    gateway["spec"]["infrastructure"] = {"labels": {"-x": "v"}}
    status, body = api("POST", gateways, gateway)
    assert status == 422
    assert "Label keys must be in the form" in causes(body)["spec.infrastructure.labels[-x]"]
    gateway["spec"]["infrastructure"] = {"labels": {"a": "b c"}}
    status, body = api("POST", gateways, gateway)
    assert status == 422 and "spec.infrastructure.labels.a" in causes(body)  # the schema's


def test_a_gateway_class_parameters_ref_is_kept_and_checked(api: Direct) -> None:
    """spec.parametersRef used to be pruned from GatewayClasses, so a class naming
    parameters was Accepted as if it named none; now it is stored (and refused by status,
    gatewayapi/parameters.py), and a malformed one is refused by field."""
    classes = f"{GW}/v1/gatewayclasses"
    ref = {"group": "", "kind": "ConfigMap", "name": "cfg", "namespace": "infra"}
    gateway_class = {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": "with-params"},
        "spec": {"controllerName": "tulle.io/gateway-controller", "parametersRef": ref},
    }
    status, body = api("POST", classes, gateway_class)
    assert status == 201 and body["spec"]["parametersRef"] == ref
    gateway_class["metadata"]["name"] = "bad"
    gateway_class["spec"]["parametersRef"] = {"group": "", "kind": "ConfigMap", "name": "c",
                                              "namespace": "Not_Valid"}
    status, body = api("POST", classes, gateway_class)
    assert status == 422 and "spec.parametersRef.namespace" in causes(body)
    gateway_class["spec"]["parametersRef"] = {"group": "", "kind": "ConfigMap"}
    status, body = api("POST", classes, gateway_class)
    assert status == 422 and "spec.parametersRef.name" in causes(body)
