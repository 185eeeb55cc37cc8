"""The GatewayInfrastructure case's judgement (pure), as upstream's test makes it: at least
one ServiceAccount, Pod or Service carries the Gateway's name label, and the first of each
kind found holds every infrastructure label and annotation (more are allowed)."""

from __future__ import annotations

from typing import Any

from conformance.cases.gateway_infra import INFRASTRUCTURE, propagation_problem


def _obj(name: str, labels: dict[str, str], annotations: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels, "annotations": annotations}}


GOOD = _obj("gw", {"key2": "value2", "gateway.networking.k8s.io/gateway-name": "g", "x": "y"},
            {"key1": "value1", "own": "z"})


def test_objects_carrying_everything_pass() -> None:
    found = {"serviceaccounts": [GOOD], "pods": [], "services": [GOOD]}
    assert propagation_problem(INFRASTRUCTURE, found) is None


def test_no_object_at_all_fails() -> None:
    found: dict[str, list[dict[str, Any]]] = {"serviceaccounts": [], "pods": [], "services": []}
    problem = propagation_problem(INFRASTRUCTURE, found)
    assert problem is not None and "no ServiceAccount, Pod or Service" in problem


def test_a_missing_or_different_label_or_annotation_fails_naming_it() -> None:
    no_label = _obj("svc", {}, {"key1": "value1"})
    problem = propagation_problem(INFRASTRUCTURE, {"services": [no_label]})
    assert problem is not None and "services svc: labels" in problem and "key2" in problem
    wrong = _obj("pod", {"key2": "value2"}, {"key1": "other"})
    problem = propagation_problem(INFRASTRUCTURE, {"pods": [wrong], "services": [GOOD]})
    assert problem is not None and "pods pod: annotations" in problem


def test_only_the_first_of_a_kind_is_judged_as_upstream_does() -> None:
    bad = _obj("second", {}, {})
    assert propagation_problem(INFRASTRUCTURE, {"pods": [GOOD, bad]}) is None
