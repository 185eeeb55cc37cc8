"""The fast path for listed Services and EndpointSlices (agent.model.convert_fast) builds
exactly what the general converter builds, and nothing the general converter refuses:
Hypothesis over objects whose fields mix valid, invalid and wrongly typed values."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from agent.model.convert import ConversionError, from_dict
from agent.model.convert_core import shared_conditions
from agent.model.convert_fast import build_endpoint_slice, build_service, decode_page
from agent.model.core import EndpointSlice, Service
from agent.model.wire import WireEndpointSlice, WireService
from tests.unit.model.helpers import edit


def fields(**choices: list[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A dict with each key left out or set to one of its choices."""
    return st.fixed_dictionaries(
        {}, optional={key: st.sampled_from(values) for key, values in choices.items()}
    )


# Valid objects in the shapes a cluster lists (each must take the fast path), then the
# same objects with one or two fields set to a value from these lists: invalid, wrongly
# typed, or valid but outside the fast path's shapes.
OWNER = {"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "u1", "controller": True}
META = fields(namespace=["shop"], uid=["u"], generation=[0, 1],
              creationTimestamp=["2026-12-05T15:11:08Z"],
              labels=[{"app": "web", "kubernetes.io/service-name": "web", "tier": ""}],
              annotations=[{"note": "x", "example.com/y": ""}],
              ownerReferences=[[OWNER]]).map(lambda m: {"resourceVersion": "7", **m})
VALID_SERVICE = st.builds(
    lambda meta, spec, ports: {"metadata": {"name": "web", **meta},
                               "spec": {**spec, "ports": ports}},
    META,
    fields(type=["ClusterIP", "LoadBalancer"], clusterIP=["10.96.0.1", ""],
           selector=[{"app": "web"}], sessionAffinity=["None"]),
    st.lists(fields(targetPort=[8080, "http"], protocol=["TCP", "UDP"], appProtocol=["h2"]),
             min_size=1, max_size=1).map(lambda ps: [{"port": 80, **p} for p in ps]),
)
ADDRESS = {"IPv4": "10.1.2.3", "IPv6": "fd00::5", "FQDN": "db.example.com"}
VALID_SLICE = st.builds(
    lambda meta, family, endpoints, ports: {
        "metadata": {"name": "web-1", **meta}, "addressType": family,
        "endpoints": [{**e, "addresses": [ADDRESS[family]]} for e in endpoints],
        "ports": ports},
    META,
    st.sampled_from(sorted(ADDRESS)),
    st.lists(fields(conditions=[{"ready": True, "serving": True, "terminating": False},
                                {"ready": False}, {}, None],
                    nodeName=["node1"], zone=["z1"], hostname=["pod-0"],
                    targetRef=[{"kind": "Pod", "namespace": "shop", "name": "p", "uid": "u"}]),
             min_size=1, max_size=4),
    st.lists(fields(name=["http"], port=[8080], protocol=["TCP"], appProtocol=["h2"]),
             min_size=1, max_size=1),
)
LABEL_MAPS = [{"-bad": "x"}, {"app": "-x"}, {"a/b/c": "v"}, {"app": "a" * 64},
              {"Example.com/x": "v"}, {"x" * 64: "v"}, {}, None, {"app": 1}]
META_EDITS = {
    "metadata": [None, {}, "meta"],
    "metadata.name": ["Web", "1abc", "", None, "x" * 64, "a.b", 5],
    "metadata.namespace": ["", "Bad_NS", None, "default"],
    "metadata.resourceVersion": ["", "x", None, 7],
    "metadata.uid": ["", None],
    "metadata.generation": [-1, 2.5, None, True],
    "metadata.creationTimestamp": ["yesterday", "2026-12-05", "2026-12-05T15:11:08.5+02:00",
                                   "2026-12-05T15:11:08", None],
    "metadata.labels": LABEL_MAPS,
    "metadata.annotations": [{"bad key": "v"}, {"note": 3}, None],
    "metadata.ownerReferences": [
        [{**OWNER, "uid": ""}], [OWNER, {**OWNER, "controller": False}],
        [OWNER, {**OWNER, "uid": "u2"}], [{**OWNER, "apiVersion": None}],
        [{**OWNER, "controller": None}], [], None,
    ],
}
SERVICE_EDITS = {
    **META_EDITS,
    "spec": [None, {}],
    "spec.type": ["ExternalName", "NodePort", None, "clusterip"],
    "spec.clusterIP": ["None", "", "fd00::1", "10.96.0.256", "banana", "010.0.0.1", None],
    "spec.ports": [[], None, [{"port": 80}, {"port": 81}],
                   [{"name": "a", "port": 80}, {"name": "b", "port": 80}],
                   [{"name": "a", "port": 80}, {"name": "a", "port": 81}],
                   [{"name": "a", "port": 80}, {"name": "b", "port": 80, "protocol": "UDP"}]],
    "spec.ports[0].port": [0, 65536, None, "80", 80.0],
    "spec.ports[0].targetPort": [0, 70000, "HTTP", "a--b", "1234", "x" * 16, True, None],
    "spec.ports[0].name": ["", "Http", None, "metrics"],
    "spec.ports[0].protocol": ["tcp", "SCTP", None],
    "spec.ports[0].nodePort": [30080, 0, 70000, None],
    "spec.selector": LABEL_MAPS,
    "spec.externalTrafficPolicy": ["Local", "Cluster", "local", None],
    "spec.healthCheckNodePort": [30001, 0, None],
    "spec.loadBalancerClass": ["tulle.io/lb", None],
    "spec.loadBalancerIP": ["10.240.0.200", "banana", ""],
    "status": [{"loadBalancer": {}}, {"loadBalancer": {"ingress": [{"ip": "10.240.0.200"}]}},
               {"loadBalancer": {"ingress": [{"ipMode": "VIP"}]}}, None],
    "spec.sessionAffinity": ["ClientIP", "Sticky", "None", None],
    "spec.sessionAffinityConfig": [{}, {"clientIP": {"timeoutSeconds": 60}}, None],
}
SLICE_EDITS = {
    **META_EDITS,
    "addressType": [None, "IPv4", "IPv6", "FQDN", "ipv4"],
    "endpoints": [[], None, [{"addresses": ["10.0.0.1"]}] * 1001],
    "endpoints[0].addresses": [
        [], None, ["10.0.0.1"] * 101, ["127.0.0.1"], ["169.254.1.1"], ["224.0.0.5"],
        ["0.0.0.0"], ["10.0.0.256"], ["010.0.0.1"], ["fd00::1"], ["::1"], ["fe80::1"],
        ["ff02::1"], ["::ffff:127.0.0.1"], ["web.example.com"], ["Web"], ["10.0.0.1", 5],
    ],
    "endpoints[0].conditions": [None, {}, {"ready": 1}, {"serving": False, "terminating": True}],
    "endpoints[0].nodeName": ["Node_1", "", None, "node2.zone"],
    "endpoints[0].zone": ["", None, "z2"],
    "endpoints[0].hostname": ["H1", "", None, "a.b"],
    "endpoints[0].targetRef": [None, {}, {"namespace": "Bad"}, {"namespace": ""}],
    "ports": [[], None, [{"name": f"p{i}", "port": 80} for i in range(101)],
              [{"port": 80}, {"port": 81}], [{"name": "a"}, {"name": "a", "port": 2}]],
    "ports[0].name": [None, "", "Http"],
    "ports[0].port": [None, 0, 70000, "80"],
    "ports[0].protocol": [None, "SCTP", "icmp"],
}


def edits(table: dict[str, list[Any]]) -> st.SearchStrategy[list[tuple[str, Any]]]:
    pairs = [(path, value) for path, values in table.items() for value in values]
    return st.lists(st.sampled_from(pairs), max_size=2)


def edited(obj: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
    for path, value in changes:
        try:
            obj = edit(obj, path, value)
        except (TypeError, IndexError, KeyError):  # under a field an earlier edit removed
            assume(False)
    return obj


STAMPS = {
    "Service": {"apiVersion": "v1", "kind": "Service"},
    "EndpointSlice": {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice"},
}


def general(kind: str, obj: dict[str, Any]) -> Any:
    """What the general converter makes of a listed object (the informer stamps its kind);
    None when it refuses it."""
    try:
        return from_dict({**obj, **STAMPS[kind]})
    except ConversionError:
        return None


def fast(kind: str, obj: dict[str, Any]) -> Any:
    """What the fast path makes of it; None when it leaves it to the general path."""
    wire_type, build = {"Service": (WireService, build_service),
                        "EndpointSlice": (WireEndpointSlice, build_endpoint_slice)}[kind]
    try:
        wire = msgspec.json.decode(json.dumps(obj).encode(), type=wire_type)
    except msgspec.ValidationError:
        return None  # the page then goes the general path whole (decode_page)
    return build(wire)


def same(kind: str, obj: dict[str, Any]) -> Any:
    built = fast(kind, obj)
    if built is not None:
        expected = general(kind, obj)
        assert expected is not None, "the fast path took an object the converter refuses"
        assert built == expected
    return built


HEADLESS_LB = {"metadata": {"name": "web"},
               "spec": {"type": "LoadBalancer", "clusterIP": "None", "ports": [{"port": 80}]}}


@settings(max_examples=1500, deadline=None)
@given(VALID_SERVICE, edits(SERVICE_EDITS))
@example(HEADLESS_LB, [])
def test_a_fast_service_is_the_general_converters_service(
    obj: dict[str, Any], changes: list[tuple[str, Any]]
) -> None:
    obj = edited(obj, changes)
    built = same("Service", obj)
    # The common shape (ClusterIP) takes the fast path; NodePort and LoadBalancer go the
    # general path, which defaults externalTrafficPolicy and reads the addresses.
    if not changes and obj["spec"].get("type", "ClusterIP") == "ClusterIP":
        assert isinstance(built, Service)


@settings(max_examples=1500, deadline=None)
@given(VALID_SLICE, edits(SLICE_EDITS))
@example({"metadata": {"name": "s"}, "addressType": "IPv4", "ports": [{"name": "Http"}]}, [])
def test_a_fast_endpoint_slice_is_the_general_converters_slice(
    obj: dict[str, Any], changes: list[tuple[str, Any]]
) -> None:
    obj = edited(obj, changes)
    built = same("EndpointSlice", obj)
    if not changes and obj["metadata"]["name"] != "s":
        assert isinstance(built, EndpointSlice)
    for endpoint in built.endpoints if built is not None else ():
        c = endpoint.conditions  # equal conditions are one shared value (memory)
        assert c is shared_conditions((c.ready, c.serving, c.terminating))


@pytest.mark.parametrize("change", [
    lambda o: o.update(ports=[{"name": f"p{i}", "port": 80} for i in range(101)]),
    lambda o: o.update(endpoints=[{"addresses": ["10.0.0.1"]}] * 1001),
    lambda o: o.update(endpoints=[{"addresses": [f"10.0.0.{i}" for i in range(1, 102)]}]),
    lambda o: o.update(endpoints=[{"addresses": []}]),
    lambda o: o.update(ports=[{"name": "a", "port": 80}, {"name": "a", "port": 81}]),
    lambda o: o.update(ports=[{"port": 80}, {"port": 81}]),  # two unnamed: "" twice
])
def test_the_limits_and_duplicates_of_a_slice_are_the_converters(change: Any) -> None:
    obj: dict[str, Any] = {"metadata": {"name": "s"}, "addressType": "IPv4"}
    change(obj)
    assert general("EndpointSlice", obj) is None
    assert fast("EndpointSlice", obj) is None


# --- pages -------------------------------------------------------------------------------


def page(*items: dict[str, Any], more: str | None = None) -> bytes:
    meta: dict[str, Any] = {"resourceVersion": "77"}
    if more:
        meta["continue"] = more
    return json.dumps({"kind": "ServiceList", "items": list(items), "metadata": meta}).encode()


def service(name: str, port: Any = 80) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", "resourceVersion": "5",
                         "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"clusterIP": "10.96.0.9", "ports": [{"port": port}]},
            "status": {"loadBalancer": {}}}


def test_a_page_decodes_to_models_with_its_revision_and_continue_token() -> None:
    decoded = decode_page("Service", page(service("a"), service("b"), more="tok"))
    assert decoded is not None
    assert decoded.revision == "77" and decoded.more == "tok"
    assert [m.metadata.name for m in decoded.models] == ["a", "b"]
    assert decoded.models[0] == general("Service", service("a"))


def test_an_invalid_item_is_left_to_the_general_path_and_the_others_are_models() -> None:
    decoded = decode_page("Service", page(service("a"), service("b", 70000), service("c")))
    assert decoded is not None
    assert [m and m.metadata.name for m in decoded.models] == ["a", None, "c"]


def test_a_page_with_a_wrongly_typed_field_is_left_to_the_general_path_whole() -> None:
    assert decode_page("Service", page(service("a"), service("b", "eighty"))) is None
    assert decode_page("Service", b'{"items": [') is None  # not JSON: the general path says so
    assert decode_page("Namespace", page()) is None  # no fast path for the kind
