"""The three patch formats, against cases from RFC 7386, RFC 6902 and the Kubernetes
strategic-merge-patch documentation; then each one through the server."""

from __future__ import annotations

from typing import Any

import pytest

from lab.apiserver.patch import (
    PatchConflict,
    PatchError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from tests.unit.lab.apiserver.conftest import Client, configmap, service

# RFC 7386, appendix A (target, patch, result).
MERGE_CASES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), MERGE_CASES)
def test_json_merge_patch_rfc7386_examples(target: Any, patch: Any, result: Any) -> None:
    assert merge_patch(target, patch) == result


# RFC 6902, appendix A.
JSON_PATCH_CASES = [
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"baz": "qux", "foo": "bar"}),
    (
        {"foo": ["bar", "baz"]},
        [{"op": "add", "path": "/foo/1", "value": "qux"}],
        {"foo": ["bar", "qux", "baz"]},
    ),
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
    (
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
    ),
    (
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    (
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    (
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
    ),
    (
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
    ),
    ({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "qux"}], {"baz": "qux"}),
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    ({"a/b": 1}, [{"op": "copy", "from": "/a~1b", "path": "/c"}], {"a/b": 1, "c": 1}),
]


@pytest.mark.parametrize(("doc", "ops", "result"), JSON_PATCH_CASES)
def test_json_patch_rfc6902_examples(doc: Any, ops: Any, result: Any) -> None:
    assert json_patch(doc, ops) == result


@pytest.mark.parametrize(
    ("doc", "ops"),
    [
        ({"baz": "qux", "foo": ["a", 2, "c"]}, [{"op": "test", "path": "/baz", "value": "bar"}]),
        ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}]),  # A.12
        ({"foo": "bar"}, [{"op": "remove", "path": "/nope"}]),
        ({"foo": "bar"}, [{"op": "replace", "path": "/nope", "value": 1}]),
        ({"foo": [1]}, [{"op": "add", "path": "/foo/5", "value": 1}]),
    ],
)
def test_json_patch_that_does_not_apply_is_a_conflict(doc: Any, ops: Any) -> None:
    with pytest.raises(PatchConflict):
        json_patch(doc, ops)


@pytest.mark.parametrize(
    "ops",
    [
        {"op": "add"},
        [{"op": "add", "path": "/a"}],
        [{"op": "frobnicate", "path": "/a"}],
        [{"path": "/a"}],
        [{"op": "add", "path": "a", "value": 1}],
    ],
)
def test_malformed_json_patch_is_an_error(ops: Any) -> None:
    with pytest.raises(PatchError):
        json_patch({}, ops)


def test_json_patch_leaves_the_input_alone_on_failure() -> None:
    doc = {"a": [1, 2]}
    with pytest.raises(PatchConflict):
        json_patch(
            doc, [{"op": "remove", "path": "/a/0"}, {"op": "test", "path": "/a/0", "value": 1}]
        )
    assert doc == {"a": [1, 2]}


def _pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": list(containers), **spec},
    }


NGINX = {"name": "nginx", "image": "nginx-1.0"}
TAILER = {"name": "log-tailer", "image": "log-tailer-1.0"}


def test_smp_merges_containers_by_name() -> None:
    # The strategic-merge-patch doc's first example: the new container is added, not replacing.
    out = strategic_merge_patch("Pod", _pod(NGINX), {"spec": {"containers": [TAILER]}})
    assert out["spec"]["containers"] == [NGINX, TAILER]


def test_smp_updates_the_container_with_the_same_key() -> None:
    out = strategic_merge_patch(
        "Pod",
        _pod(NGINX, TAILER),
        {"spec": {"containers": [{"name": "nginx", "image": "nginx-2.0"}]}},
    )
    assert out["spec"]["containers"] == [{"name": "nginx", "image": "nginx-2.0"}, TAILER]


def test_smp_merges_nested_lists_by_their_own_keys() -> None:
    app = {"name": "app", "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}]}
    patch = {
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "ports": [{"containerPort": 443}],
                    "env": [{"name": "A", "value": "2"}],
                }
            ]
        }
    }
    out = strategic_merge_patch("Pod", _pod(app), patch)
    assert out["spec"]["containers"][0]["ports"] == [{"containerPort": 80}, {"containerPort": 443}]
    assert out["spec"]["containers"][0]["env"] == [{"name": "A", "value": "2"}]


def test_smp_patch_delete_removes_a_list_item() -> None:
    out = strategic_merge_patch(
        "Pod",
        _pod(NGINX, TAILER),
        {"spec": {"containers": [{"name": "nginx", "$patch": "delete"}]}},
    )
    assert out["spec"]["containers"] == [TAILER]


def test_smp_patch_replace_in_a_list_replaces_the_list() -> None:
    patch = {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "x"}]}}
    out = strategic_merge_patch("Pod", _pod(NGINX, TAILER), patch)
    assert out["spec"]["containers"] == [{"name": "only", "image": "x"}]


def test_smp_patch_replace_on_a_map_replaces_the_map() -> None:
    doc = _pod(NGINX, nodeSelector={"disk": "ssd", "zone": "a"})
    out = strategic_merge_patch(
        "Pod", doc, {"spec": {"nodeSelector": {"$patch": "replace", "zone": "b"}}}
    )
    assert out["spec"]["nodeSelector"] == {"zone": "b"}


def test_smp_patch_delete_on_a_map_removes_it() -> None:
    doc = _pod(NGINX, nodeSelector={"disk": "ssd"})
    out = strategic_merge_patch("Pod", doc, {"spec": {"nodeSelector": {"$patch": "delete"}}})
    assert "nodeSelector" not in out["spec"]


def test_smp_lists_without_a_strategy_are_replaced() -> None:
    doc = _pod({"name": "a", "args": ["x", "y"]}, tolerations=[{"key": "k1"}])
    patch = {"spec": {"tolerations": [{"key": "k2"}], "containers": [{"name": "a", "args": ["z"]}]}}
    out = strategic_merge_patch("Pod", doc, patch)
    assert out["spec"]["tolerations"] == [{"key": "k2"}]
    assert out["spec"]["containers"][0]["args"] == ["z"]


def test_smp_primitive_merge_list_is_a_union_and_delete_from_primitive_list_removes() -> None:
    doc = {"kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["a", "b"]}}
    out = strategic_merge_patch("ConfigMap", doc, {"metadata": {"finalizers": ["b", "c"]}})
    assert out["metadata"]["finalizers"] == ["a", "b", "c"]
    out = strategic_merge_patch(
        "ConfigMap", out, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}
    )
    assert out["metadata"]["finalizers"] == ["b", "c"]


def test_smp_retain_keys_drops_the_other_fields() -> None:
    doc = {
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}},
    }
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    out = strategic_merge_patch("Deployment", doc, patch)
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_smp_set_element_order_orders_the_merged_list() -> None:
    patch = {"spec": {"$setElementOrder/containers": [{"name": "log-tailer"}, {"name": "nginx"}]}}
    out = strategic_merge_patch("Pod", _pod(NGINX, TAILER), patch)
    assert [c["name"] for c in out["spec"]["containers"]] == ["log-tailer", "nginx"]


def test_smp_null_deletes_a_field_and_service_ports_merge_by_port() -> None:
    doc = {
        "kind": "Service",
        "metadata": {"name": "s", "labels": {"a": "1", "b": "2"}},
        "spec": {"ports": [{"port": 80, "name": "http"}]},
    }
    patch = {
        "metadata": {"labels": {"a": None}},
        "spec": {"ports": [{"port": 443, "name": "https"}]},
    }
    out = strategic_merge_patch("Service", doc, patch)
    assert out["metadata"]["labels"] == {"b": "2"}
    assert out["spec"]["ports"] == [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]


def test_smp_merge_list_items_need_the_merge_key() -> None:
    with pytest.raises(PatchError):
        strategic_merge_patch("Pod", _pod(NGINX), {"spec": {"containers": [{"image": "x"}]}})


# -- through the server ----------------------------------------------------------------------

CMS = "/api/v1/namespaces/default/configmaps"
SVCS = "/api/v1/namespaces/default/services"


def test_each_patch_type_through_the_server(client: Client) -> None:
    client.request("POST", CMS, configmap("c", a="1", b="2"))
    merged = client.request(
        "PATCH", f"{CMS}/c", {"data": {"a": None, "c": "3"}}, ctype="application/merge-patch+json"
    )
    assert merged.status == 200 and merged.body["data"] == {"b": "2", "c": "3"}
    ops = [
        {"op": "test", "path": "/data/b", "value": "2"},
        {"op": "replace", "path": "/data/b", "value": "9"},
    ]
    patched = client.request("PATCH", f"{CMS}/c", ops, ctype="application/json-patch+json")
    assert patched.status == 200 and patched.body["data"] == {"b": "9", "c": "3"}
    smp = client.request(
        "PATCH",
        f"{CMS}/c",
        {"metadata": {"labels": {"x": "y"}}},
        ctype="application/strategic-merge-patch+json",
    )
    assert smp.status == 200 and smp.body["metadata"]["labels"] == {"x": "y"}


def test_failed_json_patch_test_is_422_and_changes_nothing(client: Client) -> None:
    client.request("POST", CMS, configmap("c", a="1"))
    ops = [
        {"op": "replace", "path": "/data/a", "value": "2"},
        {"op": "test", "path": "/data/a", "value": "1"},
    ]
    reply = client.request("PATCH", f"{CMS}/c", ops, ctype="application/json-patch+json")
    assert reply.status == 422
    assert client.get(f"{CMS}/c").body["data"] == {"a": "1"}


def test_strategic_patch_of_service_ports_goes_through_admission(client: Client) -> None:
    client.request("POST", SVCS, service("web"))
    reply = client.request(
        "PATCH",
        f"{SVCS}/web",
        {"spec": {"ports": [{"port": 81}]}},
        ctype="application/strategic-merge-patch+json",
    )
    # Two unnamed ports: the merged object is invalid, as on a cluster.
    assert reply.status == 422 and reply.body["reason"] == "Invalid"


def test_strategic_merge_patch_is_refused_for_gateway_api_kinds(client: Client) -> None:
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r"},
        "spec": {},
    }
    client.request(
        "POST", "/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes", route
    )
    reply = client.request(
        "PATCH",
        "/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/r",
        {"spec": {"hostnames": ["a.example"]}},
        ctype="application/strategic-merge-patch+json",
    )
    assert reply.status == 415 and reply.body["reason"] == "UnsupportedMediaType"


def test_patch_pinning_a_stale_resource_version_is_409(client: Client) -> None:
    first = client.request("POST", CMS, configmap("c", a="1")).body
    client.request("PATCH", f"{CMS}/c", {"data": {"a": "2"}}, ctype="application/merge-patch+json")
    stale = {
        "metadata": {"resourceVersion": first["metadata"]["resourceVersion"]},
        "data": {"a": "3"},
    }
    reply = client.request("PATCH", f"{CMS}/c", stale, ctype="application/merge-patch+json")
    assert reply.status == 409
    assert client.get(f"{CMS}/c").body["data"] == {"a": "2"}


def test_patch_cannot_rename(client: Client) -> None:
    client.request("POST", CMS, configmap("c"))
    reply = client.request(
        "PATCH", f"{CMS}/c", {"metadata": {"name": "d"}}, ctype="application/merge-patch+json"
    )
    assert reply.status == 400
