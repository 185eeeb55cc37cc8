"""Admission as the API server does it: status is a subresource, objects have a size limit,
and hostile YAML (alias bombs, deep nesting) is refused before anything is built or stored."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.datapath.desired import l7_keys, view_of
from agent.model.convert import from_dict
from agent.model.core import Pod, Service
from agent.model.documents import (
    MAX_ALIAS_EXPANSION,
    MAX_DEPTH,
    LoadError,
    _alias_expansion,
    _children,
    load_documents,
)
from gatewayapi import RouteCompiler
from lab.apiserver.model_admission import admit
from lab.controllers.endpointslice import desired_slices
from lab.seed import DEFAULT_POOL, GATEWAY_CLASS
from lab.store import Store
from lab.store.objects import MAX_OBJECT_BYTES
from lab.topology import LB_POOL_CIDR
from tests.unit.lab.gateway_address import address_gateways

FORGED_IP = "203.0.113.66"
NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
GATEWAY = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "Gateway",
    "metadata": {"name": "edge", "namespace": "shop"},
    "spec": {
        "gatewayClassName": "tulle",
        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
    },
    "status": {"addresses": [{"type": "IPAddress", "value": FORGED_IP}]},
}
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
    "spec": {"containers": [{"name": "echo"}], "nodeName": "node1"},
    "status": {
        "phase": "Running",
        "podIP": FORGED_IP,
        "conditions": [{"type": "Ready", "status": "True"}],
    },
}
SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]},
}
# Nine levels of nine-fold aliases: ~4e8 nodes once expanded, 400 bytes of text.
BILLION_LAUGHS = (
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: lol\n  namespace: shop\n"
    "  annotations: {}\nspec:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + "".join(
        f"  {chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n"
        for i in range(8)
    )
)


def _apply(run, *objs: dict[str, Any]):
    return run("apply", "-f", "-", input=yaml.safe_dump_all(objs))


BOOTSTRAP = {("Namespace", "default"), ("Namespace", "kube-system")}  # every cluster has them


def _stored(run) -> list[dict[str, Any]]:
    with Store(run.store) as store:
        objs = store.list()[0]
    return [
        o
        for o in objs
        if (o["kind"], o["metadata"]["name"]) not in BOOTSTRAP
        and o["kind"] != "CustomResourceDefinition"  # the lab's Gateway API CRDs
    ]


def test_gateway_status_addresses_from_apply_are_not_stored_or_programmed(run) -> None:
    result = _apply(run, NAMESPACE, GATEWAY_CLASS, DEFAULT_POOL, GATEWAY)
    assert result.exit_code == 0, result.output
    gateway = next(o for o in _stored(run) if o["kind"] == "Gateway")
    assert "status" not in gateway
    # The lab's Gateway controller assigns the address, through the status path.
    with Store(run.store) as store:
        address_gateways(store)  # its Service, then its address through it
    # Re-applying the forged status changes nothing either.
    assert _apply(run, NAMESPACE, GATEWAY_CLASS, GATEWAY).exit_code == 0
    objs = _stored(run)
    addresses = next(o for o in objs if o["kind"] == "Gateway")["status"]["addresses"]
    assert len(addresses) == 1
    assert ipaddress.ip_address(addresses[0]["value"]) in LB_POOL_CIDR
    keys = l7_keys(view_of(from_dict(o) for o in objs), RouteCompiler()).every
    assert {str(k.vip) for k in keys} == {addresses[0]["value"]}  # never FORGED_IP


def test_pod_status_from_apply_is_not_stored_and_no_endpoint_uses_it(run) -> None:
    result = _apply(run, NAMESPACE, POD, SERVICE)
    assert result.exit_code == 0, result.output
    objs = _stored(run)
    pod = next(o for o in objs if o["kind"] == "Pod")
    assert "status" not in pod
    typed = [from_dict(o) for o in objs]
    service = next(o for o in typed if isinstance(o, Service))
    pods = [o for o in typed if isinstance(o, Pod)]
    assert FORGED_IP not in json.dumps(desired_slices(service, pods))


def test_status_written_by_the_kubelet_survives_a_user_apply(run) -> None:
    assert _apply(run, NAMESPACE, POD).exit_code == 0
    with Store(run.store) as store:
        store.update_status("Pod", "shop", "web", {"phase": "Running", "podIP": "10.244.1.5"})
    changed = {**POD, "metadata": {**POD["metadata"], "labels": {"app": "web", "v": "2"}}}
    result = _apply(run, NAMESPACE, changed)
    assert "pod/web configured" in result.output
    pod = next(o for o in _stored(run) if o["kind"] == "Pod")
    assert pod["status"] == {"phase": "Running", "podIP": "10.244.1.5"}


def test_an_invalid_status_is_refused_as_a_cluster_decodes_it(run) -> None:
    """A status of the wrong type cannot even be decoded by a Kubernetes API server (Go's
    decoder), so the object is refused naming the field, and nothing is stored. A status of
    the right shape with wrong values is only dropped (the tests above)."""
    pod = {**POD, "status": {"phase": 7, "podIP": "not an address"}}
    result = _apply(run, NAMESPACE, pod)
    assert result.exit_code == 1
    assert "Pod shop/web: Pod in version \"v1\" cannot be handled as a Pod" in result.output
    assert "status.phase" in result.output
    assert _stored(run) == []
    shaped = {**POD, "status": {"phase": "Running", "podIP": "not an address"}}
    assert _apply(run, NAMESPACE, shaped).exit_code == 0


def test_objects_over_one_and_a_half_mib_are_refused_by_name(run) -> None:
    big = {
        **SERVICE,
        "metadata": {
            **SERVICE["metadata"],
            "name": "big",
            "annotations": {"blob": "x" * MAX_OBJECT_BYTES},
        },
    }
    result = _apply(run, NAMESPACE, big)
    assert result.exit_code != 0
    assert "Service shop/big: object is" in result.output
    assert "1.5 MiB" in result.output
    assert _stored(run) == []  # the Namespace in the same batch was not stored either


def test_a_billion_laughs_document_is_refused_and_nothing_is_stored(run) -> None:
    result = run("apply", "-f", "-", input=yaml.safe_dump(NAMESPACE) + "---\n" + BILLION_LAUGHS)
    assert result.exit_code != 0
    assert "document 2: YAML aliases would expand it by" in result.output
    assert _stored(run) == []


def test_alias_bombs_are_refused_while_modest_aliases_load() -> None:
    with pytest.raises(LoadError, match=f"over the limit of {MAX_ALIAS_EXPANSION}"):
        load_documents(BILLION_LAUGHS, "bomb.yaml")
    with pytest.raises(LoadError, match="an alias refers to itself"):
        load_documents("kind: X\nspec: &a [*a]\n", "loop.yaml")
    shared = "kind: X\nmetadata: {name: a}\nspec: {x: &x {k: v}, y: *x, z: *x}\n"
    assert load_documents(shared, "ok.yaml")[0]["spec"]["z"] == {"k": "v"}


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 200_000])
@pytest.mark.parametrize("flavour", ["yaml", "json"])
def test_deep_nesting_is_refused_with_its_line(depth: int, flavour: str) -> None:
    # 200,000 levels used to overflow libyaml's composer (a segfault) or Python's recursion.
    nested = "[" * depth + "]" * depth
    text = (
        f"kind: X\nspec: {nested}\n"
        if flavour == "yaml"
        else '{"kind": "X", "spec": ' + nested + "}"
    )
    # PyYAML >= 6.0.4's libyaml refuses very deep flow nesting itself, with its own words.
    refused = f"nested more than {MAX_DEPTH} levels deep|exceeded maximum nesting depth"
    with pytest.raises(LoadError, match=refused) as caught:
        load_documents(text, f"deep.{flavour}")
    assert str(caught.value).startswith(f"deep.{flavour}:")
    ok = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    assert load_documents(f"kind: X\nspec: {ok}\n", "ok.yaml")


JSON_LEAF = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(status=st.dictionaries(st.text(min_size=1, max_size=8), JSON_VALUE, max_size=4))
def test_no_status_a_user_sends_is_ever_stored(tmp_path_factory, status: dict[str, Any]) -> None:
    path = tmp_path_factory.mktemp("s") / "store.db"
    with Store(path) as store:
        objs = admit(store, [("-", NAMESPACE), ("-", {**SERVICE, "status": status})])
        for stored, _ in store.apply_many(objs):
            assert "status" not in stored
        store.update_status("Service", "shop", "web", {"loadBalancer": {}})
        again = admit(store, [("-", {**SERVICE, "status": status})])
        store.apply_many(again)
        assert store.get("Service", "shop", "web")["status"] == {"loadBalancer": {}}


@settings(max_examples=80, deadline=None)
@given(spec=JSON_VALUE, copies=st.integers(1, 6))
def test_ordinary_documents_with_shared_parts_load_unchanged(spec: Any, copies: int) -> None:
    # PyYAML writes anchors and aliases for shared objects: modest sharing must load as before.
    doc = {"kind": "X", "metadata": {"name": "a"}, "spec": [spec] * copies}
    text = yaml.safe_dump(doc)
    assert load_documents(text, "doc.yaml") == [doc]


def _tree_nodes(value: Any) -> int:
    """YAML nodes in ``value`` written out as a tree (shared parts counted every time)."""
    if isinstance(value, dict):
        return 1 + sum(1 + _tree_nodes(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(_tree_nodes(v) for v in value)
    return 1


@st.composite
def shared_graphs(draw: st.DrawFn) -> Any:
    """Nested lists and mappings that reuse earlier parts, so the dump has anchors/aliases."""
    parts: list[Any] = [draw(JSON_LEAF)]
    for _ in range(draw(st.integers(1, 8))):
        picks = draw(st.lists(st.sampled_from(range(len(parts))), min_size=1, max_size=4))
        chosen = [parts[i] for i in picks]
        if draw(st.booleans()):
            parts.append(chosen)
        else:
            parts.append({f"k{n}": v for n, v in enumerate(chosen)})
    return parts[-1]


@settings(max_examples=150, deadline=None)
@given(graph=shared_graphs())
def test_alias_expansion_counts_exactly_what_expansion_adds(graph: Any) -> None:
    node = yaml.compose(yaml.safe_dump(graph), Loader=yaml.SafeLoader)
    unique: set[int] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if id(current) not in unique:
            unique.add(id(current))
            stack.extend(_children(current))
    assert _alias_expansion(node) == _tree_nodes(graph) - len(unique)
