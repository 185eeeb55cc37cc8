"""security.tulle.io/v1 AuthorizationPolicy: Istio's shape read and written back (Hypothesis),
and every bad input refused by field with a clear message."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.model.authz import Action, AuthorizationPolicy, PolicyTargetReference
from agent.model.convert import from_dict, to_dict
from tests.unit.model.helpers import edit, error_of, round_trip

AP: dict[str, Any] = {
    "apiVersion": "security.tulle.io/v1",
    "kind": "AuthorizationPolicy",
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "action": "DENY",
        "rules": [
            {
                "from": [{"source": {"namespaces": ["evil"], "notPrincipals": ["*"]}}],
                "to": [{"operation": {"methods": ["POST"], "paths": ["/admin/*"], "ports": ["8080"]}}],
                "when": [{"key": "request.headers[x-user]", "notValues": ["root"]}],
            }
        ],
    },
}
WHERE = "AuthorizationPolicy shop/web"


def test_reads_istios_shape_and_writes_it_back() -> None:
    ap = round_trip(AP)
    assert isinstance(ap, AuthorizationPolicy)
    assert ap.spec.action is Action.DENY
    [r] = ap.spec.rules
    assert r.from_[0].source.namespaces == ("evil",)
    assert r.to[0].operation.ports == ("8080",)
    assert to_dict(ap)["spec"]["rules"][0]["from"] == AP["spec"]["rules"][0]["from"]


def test_defaults_and_the_two_empty_rule_forms() -> None:
    ap = from_dict(edit(AP, "spec", {}))
    assert isinstance(ap, AuthorizationPolicy)
    assert ap.spec.action is Action.ALLOW and ap.spec.rules == ()
    allow_all = from_dict(edit(AP, "spec", {"rules": [{}]}))
    assert isinstance(allow_all, AuthorizationPolicy)
    assert len(allow_all.spec.rules) == 1
    assert to_dict(allow_all)["spec"]["rules"] == [{}]  # not lost on the way back


def test_target_refs() -> None:
    spec = {"targetRefs": [{"kind": "Service", "group": "", "name": "api"},
                           {"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"}]}
    ap = round_trip(edit(AP, "spec", spec))
    assert isinstance(ap, AuthorizationPolicy)
    assert ap.spec.target_refs[0] == PolicyTargetReference("Service", "api")


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("spec.action", "CUSTOM", "spec.action: CUSTOM (an external authorizer) is not supported"),
        ("spec.action", "PERMIT", 'spec.action: unsupported value "PERMIT"'),
        ("spec.provider", {"name": "opa"}, "spec.action: CUSTOM"),
        ("spec.targetRef", {"kind": "Service", "name": "a"}, "spec.targetRef: is deprecated in Istio"),
        ("spec.targetRefs", [{"kind": "Service", "name": "a"}], "spec.targetRefs: only one of selector or targetRefs"),
        ("spec.rules[0].from[0].source", {}, "spec.rules[0].from[0].source: must set at least one field"),
        ("spec.rules[0].from[0]", {}, "spec.rules[0].from[0].source: required"),
        ("spec.rules[0].to[0].operation", {}, "spec.rules[0].to[0].operation: must set at least one field"),
        ("spec.rules[0].from[0].source.ipBlocks", ["10.0.0.0/33"], 'spec.rules[0].from[0].source.ipBlocks[0]: invalid value "10.0.0.0/33"'),
        ("spec.rules[0].from[0].source.notIpBlocks", ["nope"], "notIpBlocks[0]: invalid value"),
        ("spec.rules[0].from[0].source.requestPrincipals", ["a/b"], "requestPrincipals: is not supported: JWT"),
        ("spec.rules[0].from[0].source.principals", ["a*b"], 'principals[0]: invalid value "a*b"'),
        ("spec.rules[0].from[0].source.principals", [""], "principals[0]: must not be empty"),
        ("spec.rules[0].from[0].source.serviceAccounts", ["web"], 'serviceAccounts[0]: invalid value "web"'),
        ("spec.rules[0].from[0].source", {"serviceAccounts": ["a/b"], "namespaces": ["a"]}, "serviceAccounts: cannot be set with principals or namespaces"),
        ("spec.rules[0].to[0].operation.ports", ["http"], 'ports[0]: invalid port "http"'),
        ("spec.rules[0].to[0].operation.ports", [8080], "ports[0]: expected string, got integer"),
        ("spec.rules[0].to[0].operation.notPorts", ["70000"], "notPorts[0]: invalid port"),
        ("spec.rules[0].to[0].operation.paths", ["/a/{*}/b"], "path templates"),
        ("spec.rules[0].to[0].operation.paths", ["admin"], 'must start with "/"'),
        ("spec.rules[0].when[0]", {"key": "source.ip"}, "spec.rules[0].when[0]: must set values or notValues"),
        ("spec.rules[0].when[0]", {"values": ["a"]}, "spec.rules[0].when[0].key: required"),
        ("spec.rules[0].when[0]", {"key": "request.auth.claims[iss]", "values": ["a"]}, "JWT claims need RequestAuthentication"),
        ("spec.rules[0].when[0]", {"key": "source.user", "values": ["a"]}, 'unsupported key "source.user"'),
        ("spec.rules[0].when[0]", {"key": "request.headers[]", "values": ["a"]}, "unsupported key"),
        ("spec.rules[0].when[0]", {"key": "source.ip", "values": ["10.0.0.300"]}, "when[0].values[0]: invalid value"),
        ("spec.rules[0].when[0]", {"key": "destination.port", "notValues": ["x"]}, "when[0].notValues[0]: invalid port"),
        ("spec.rules", {"from": []}, "spec.rules: expected array"),
    ],
)
def test_bad_input_is_refused_by_field(path: str, value: Any, message: str) -> None:
    doc = AP if path != "spec.targetRefs" else AP
    assert message in error_of(edit(doc, path, value))
    assert error_of(edit(doc, path, value)).startswith(WHERE)


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ({"kind": "Pod", "name": "a"}, 'unsupported target "Pod"'),
        ({"kind": "Gateway", "name": "a"}, 'unsupported target "Gateway" (group "")'),
        ({"kind": "Service", "name": "a", "namespace": "other"}, "cross-namespace targets are not supported"),
        ({"kind": "Service", "name": "Bad_Name"}, "targetRefs[0].name"),
        ({"kind": "Service"}, "targetRefs[0].name: required"),
    ],
)
def test_bad_target_refs(ref: dict[str, Any], message: str) -> None:
    doc = edit(edit(AP, "spec.selector", None), "spec.targetRefs", [ref])
    del doc["spec"]["selector"]
    assert message in error_of(doc)


def test_duplicate_target_refs() -> None:
    ref = {"kind": "Service", "name": "a"}
    doc = edit(AP, "spec", {"targetRefs": [ref, ref]})
    assert "targetRefs[1]: duplicate value" in error_of(doc)


# --- Hypothesis: whatever valid policy is written reads back the same --------------------

_word = st.from_regex(r"[a-z]([a-z0-9-]{0,7}[a-z0-9])?", fullmatch=True)
_match = st.one_of(_word, _word.map(lambda w: w + "*"), _word.map(lambda w: "*" + w), st.just("*"))
_path = st.one_of(_word.map(lambda w: "/" + w), _word.map(lambda w: "/" + w + "/*"), st.just("*"))
_cidr = st.sampled_from(["10.0.0.0/8", "10.1.2.3", "fd00::/8", "192.168.1.0/24"])
_port = st.integers(1, 65535).map(str)
_list = lambda s: st.lists(s, max_size=3)  # noqa: E731


def _nonempty(d: dict[str, Any]) -> bool:
    return any(d.values())


_source = st.fixed_dictionaries(
    {},
    optional={
        "principals": _list(_match), "notPrincipals": _list(_match),
        "namespaces": _list(_match), "notNamespaces": _list(_match),
        "ipBlocks": _list(_cidr), "notIpBlocks": _list(_cidr),
        "remoteIpBlocks": _list(_cidr), "notRemoteIpBlocks": _list(_cidr),
    },
).filter(_nonempty)
_accounts = st.fixed_dictionaries(
    {"serviceAccounts": st.lists(st.tuples(_word, _word).map("/".join), min_size=1, max_size=3)},
    optional={"ipBlocks": _list(_cidr)},
)
_operation = st.fixed_dictionaries(
    {},
    optional={
        "hosts": _list(_match), "notHosts": _list(_match), "ports": _list(_port),
        "notPorts": _list(_port), "methods": _list(st.sampled_from(["GET", "POST", "PUT"])),
        "notMethods": _list(st.sampled_from(["DELETE"])), "paths": _list(_path),
        "notPaths": _list(_path),
    },
).filter(_nonempty)
_condition = st.one_of(
    st.fixed_dictionaries({"key": _word.map(lambda w: f"request.headers[{w}]"), "values": st.lists(_match, min_size=1, max_size=2)}),
    st.fixed_dictionaries({"key": st.sampled_from(["source.ip", "remote.ip", "destination.ip"]), "notValues": st.lists(_cidr, min_size=1, max_size=2)}),
    st.fixed_dictionaries({"key": st.just("destination.port"), "values": st.lists(_port, min_size=1, max_size=2)}),
    st.fixed_dictionaries({"key": st.sampled_from(["source.namespace", "source.principal"]), "values": st.lists(_match, min_size=1, max_size=2)}),
)
_rule = st.fixed_dictionaries(
    {},
    optional={
        "from": _list(st.one_of(_source, _accounts).map(lambda s: {"source": s})),
        "to": _list(_operation.map(lambda o: {"operation": o})),
        "when": _list(_condition),
    },
)
_spec = st.fixed_dictionaries(
    {},
    optional={
        "action": st.sampled_from(["ALLOW", "DENY", "AUDIT"]),
        "rules": st.lists(_rule, max_size=3),
        "selector": st.dictionaries(_word, _word, max_size=2).map(lambda m: {"matchLabels": m}),
    },
)


@settings(max_examples=150, deadline=None)
@given(_spec)
def test_any_valid_policy_round_trips(spec: dict[str, Any]) -> None:
    ap = round_trip(edit(AP, "spec", spec))
    assert isinstance(ap, AuthorizationPolicy)
    assert len(ap.spec.rules) == len(spec.get("rules", []))
