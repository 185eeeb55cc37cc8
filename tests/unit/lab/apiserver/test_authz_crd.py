"""AuthorizationPolicy (security.tulle.io/v1) is served from its CRD (deploy/crds/tulle):
checked against the schema, then by the typed model, which refuses by field what Istio's
validation refuses and what Tulle does not enforce (kept in the schema, so never pruned into
a wider policy)."""

from __future__ import annotations

from typing import Any

import pytest

from lab import gateway_crds
from lab.apiserver import crds
from lab.apiserver.crds import install_gateway_api
from lab.store import Store
from tests.unit.lab.apiserver.test_gateway_api_crds import Direct, bare, causes

__all__ = ["bare"]  # the fixture, shared

POLICIES = "/apis/security.tulle.io/v1/namespaces/default/authorizationpolicies"


def policy(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "security.tulle.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "web"},
        "spec": spec,
    }


@pytest.fixture
def api(bare: tuple[Store, Direct]) -> Direct:
    install_gateway_api(bare[0])
    return bare[1]


def test_the_crd_passes_the_servers_validation() -> None:
    [crd] = [
        c
        for c in gateway_crds.manifests(gateway_crds.TULLE_CRD_DIR)
        if c["spec"]["names"]["kind"] == "AuthorizationPolicy"
    ]
    assert crds.problems(crd) == []
    res = crds.resource_of(crd)
    assert res is not None and res.modelled and res.namespaced
    assert res.short_names == ("ap",)
    assert [c[0] for c in res.printer_columns] == ["Action", "Accepted", "Age"]


def test_a_valid_policy_is_stored_as_sent(api: Direct) -> None:
    sent = policy(
        selector={"matchLabels": {"app": "web"}},
        action="DENY",
        rules=[{"from": [{"source": {"notNamespaces": ["shop"]}}],
                "to": [{"operation": {"paths": ["/admin/*"], "methods": ["POST"]}}],
                "when": [{"key": "request.headers[x-user]", "values": ["root"]}]}],
    )
    status, body = api("POST", POLICIES, sent)
    assert status == 201, body
    assert api("GET", f"{POLICIES}/web")[1]["spec"] == sent["spec"]


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"selector": {"matchLabels": {"a": "b"}}, "targetRefs": [{"kind": "Service", "name": "a"}]},
         "spec.targetRefs", "only one of selector or targetRefs"),
        ({"rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/40"]}}]}]},
         "spec.rules[0].from[0].source.ipBlocks[0]", "invalid value"),
        ({"action": "CUSTOM", "provider": {"name": "opa"}}, "spec.action", "CUSTOM"),
        # Not pruned: a source whose JWT requirement vanished would allow more than written.
        ({"rules": [{"from": [{"source": {"namespaces": ["a"], "requestPrincipals": ["*"]}}]}]},
         "spec.rules[0].from[0].source.requestPrincipals", "is not supported"),
    ],
)
def test_bad_policies_are_refused_by_field(
    api: Direct, spec: dict[str, Any], field: str, message: str
) -> None:
    status, body = api("POST", POLICIES, policy(**spec))
    assert status == 422, body
    assert message in causes(body)[field]
    assert api("GET", POLICIES)[1]["items"] == []


def test_an_unknown_action_is_refused_by_the_schema(api: Direct) -> None:
    status, body = api("POST", POLICIES, policy(action="PERMIT"))
    assert status == 422 and "Unsupported value" in causes(body)["spec.action"]
