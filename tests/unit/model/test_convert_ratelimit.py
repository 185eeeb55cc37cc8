"""policy.tulle.io/v1alpha1 HTTPLocalRateLimitPolicy: read, written back, refused by field
(Linkerd's rules: rates at least 1, identity and overrides at most total, ServiceAccounts)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.model.backendpolicy import PolicyTargetReference
from agent.model.convert import to_dict
from agent.model.ratelimit import (
    ClientReference,
    HTTPLocalRateLimitPolicy,
    Limit,
    RateLimitOverride,
)
from tests.unit.model.helpers import DELETE, edit, error_of, round_trip

RLP: dict[str, Any] = {
    "apiVersion": "policy.tulle.io/v1alpha1",
    "kind": "HTTPLocalRateLimitPolicy",
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {
        "targetRefs": [{"group": "", "kind": "Service", "name": "web"}],
        "total": {"requestsPerSecond": 100},
        "identity": {"requestsPerSecond": 20},
        "overrides": [{
            "requestsPerSecond": 50,
            "clientRefs": [{"kind": "ServiceAccount", "name": "vip"},
                           {"kind": "ServiceAccount", "name": "batch", "namespace": "jobs"}],
        }],
    },
}
WHERE = "HTTPLocalRateLimitPolicy shop/web"


def test_reads_linkerds_fields_and_writes_them_back() -> None:
    rlp = round_trip(RLP)
    assert isinstance(rlp, HTTPLocalRateLimitPolicy)
    spec = rlp.spec
    assert spec.target_refs == (PolicyTargetReference("", "Service", "web"),)
    assert (spec.total, spec.identity) == (Limit(100), Limit(20))
    assert spec.overrides == (RateLimitOverride(50, (
        ClientReference("ServiceAccount", "vip"),
        ClientReference("ServiceAccount", "batch", "jobs"),
    )),)
    assert to_dict(rlp)["spec"] == RLP["spec"]


def test_every_limit_is_optional() -> None:
    rlp = round_trip(edit(edit(edit(RLP, "spec.total", DELETE), "spec.identity", DELETE),
                          "spec.overrides", DELETE))
    assert isinstance(rlp, HTTPLocalRateLimitPolicy)
    assert (rlp.spec.total, rlp.spec.identity, rlp.spec.overrides) == (None, None, ())


def test_without_total_identity_and_overrides_are_unbounded() -> None:
    doc = edit(edit(RLP, "spec.total", DELETE), "spec.identity.requestsPerSecond", 10**6)
    assert isinstance(round_trip(doc), HTTPLocalRateLimitPolicy)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("spec", DELETE, "spec: required"),
        ("spec.targetRefs", [], "targetRefs: must have at least 1"),
        ("spec.targetRefs[0].kind", "Server", "unsupported target Server"),
        ("spec.targetRefs[0].group", "policy.linkerd.io",
         "unsupported target policy.linkerd.io/Service"),
        ("spec.targetRefs[0].name", "Not_A_Name", "targetRefs[0].name"),
        ("spec.total.requestsPerSecond", 0, "total.requestsPerSecond"),
        ("spec.total.requestsPerSecond", DELETE, "total.requestsPerSecond: required"),
        ("spec.identity.requestsPerSecond", -5, "identity.requestsPerSecond"),
        ("spec.identity.requestsPerSecond", "20", "expected integer"),
        ("spec.identity.requestsPerSecond", 2**32, "identity.requestsPerSecond"),
        ("spec.identity.requestsPerSecond", 101,
         "spec.identity: requestsPerSecond 101 is over total.requestsPerSecond 100"),
        ("spec.overrides[0].requestsPerSecond", 101,
         "spec.overrides[0]: requestsPerSecond 101 is over total.requestsPerSecond 100"),
        ("spec.overrides[0].requestsPerSecond", 0, "overrides[0].requestsPerSecond"),
        ("spec.overrides[0].clientRefs", [], "clientRefs: must have at least 1"),
        ("spec.overrides[0].clientRefs[0].kind", "Pod", "unsupported client Pod"),
        ("spec.overrides[0].clientRefs[0].group", "apps", "unsupported client apps/"),
        ("spec.overrides[0].clientRefs[0].name", DELETE, "clientRefs[0].name: required"),
        ("spec.overrides[0].clientRefs[1].namespace", "Jobs!", "clientRefs[1].namespace"),
    ],
)
def test_refuses_bad_fields_by_path(path: str, value: object, message: str) -> None:
    error = error_of(edit(RLP, path, value))
    assert WHERE in error
    assert message in error


def test_refuses_a_service_account_in_two_overrides() -> None:
    second = {"requestsPerSecond": 10, "clientRefs": [{"kind": "ServiceAccount", "name": "vip"}]}
    doc = edit(RLP, "spec.overrides", [*RLP["spec"]["overrides"], second])
    assert "overrides[1]: ServiceAccount vip is already in overrides[0]" in error_of(doc)


def test_the_same_name_in_two_namespaces_is_two_accounts() -> None:
    second = {"requestsPerSecond": 10,
              "clientRefs": [{"kind": "ServiceAccount", "name": "vip", "namespace": "other"}]}
    doc = edit(RLP, "spec.overrides", [*RLP["spec"]["overrides"], second])
    assert isinstance(round_trip(doc), HTTPLocalRateLimitPolicy)


def test_refuses_a_repeated_target() -> None:
    ref = {"group": "", "kind": "Service", "name": "web"}
    assert "targetRefs[1]" in error_of(edit(RLP, "spec.targetRefs", [ref, dict(ref)]))
