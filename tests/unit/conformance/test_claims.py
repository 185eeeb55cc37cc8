"""Tulle's claim is one set: the shipped `gatewayapi/supported_features.py`, the committed
ConformanceReport's claimed features, and what the GatewayClass status publishes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from conformance import claims
from conformance.cases import all_cases
from conformance.features import IN_NO_PROFILE, PROFILES
from conformance.report import claimed_in_report
from conformance.runner import plan_manifests
from gatewayapi.supported_features import SUPPORTED_FEATURES

REPORTS = Path(__file__).resolve().parents[3] / "conformance" / "reports"


def latest_report() -> dict:
    paths = sorted(REPORTS.glob("tulle-*.yaml"))
    assert paths, f"no committed report in {REPORTS}"
    return yaml.safe_load(paths[-1].read_text())


def test_the_committed_report_claims_exactly_the_shipped_features():
    """All but the registry features no v1.6.1 profile lists (GRPCRouteNamedRouteRule):
    the GatewayClass publishes them, and no profile of the report can."""
    in_report = claimed_in_report(latest_report())
    assert in_report <= frozenset(SUPPORTED_FEATURES)
    assert frozenset(SUPPORTED_FEATURES) - in_report <= IN_NO_PROFILE


def test_the_committed_report_has_every_profile_and_no_failure():
    report = latest_report()
    assert report["gatewayAPIVersion"] == "v1.6.1"
    assert {p["name"] for p in report["profiles"]} == set(PROFILES)
    for p in report["profiles"]:
        assert p["core"]["result"] != "failure", p
        assert p.get("extended", {}).get("result") != "failure", p


def test_every_claimed_feature_is_a_registry_name_with_a_case():
    known = {f for p in PROFILES.values() for f in (*p.core, *p.extended)} | IN_NO_PROFILE
    named = {f for c in all_cases() for f in c.features}
    assert set(SUPPORTED_FEATURES) <= known & named
    assert list(SUPPORTED_FEATURES) == sorted(set(SUPPORTED_FEATURES))


def test_render_writes_a_sorted_python_tuple_that_reads_back():
    text = claims.render(["HTTPRouteQueryParamMatching", "Gateway", "Gateway"])
    tree = ast.parse(text)
    value = ast.literal_eval(tree.body[-1].value)  # type: ignore[attr-defined]
    assert value == ("Gateway", "HTTPRouteQueryParamMatching")


class _Writer:
    def __init__(self):
        self.writes = []

    def update_status(self, kind, namespace, name, status):
        self.writes.append((kind, namespace, name, status))
        return {}


def test_the_gateway_class_status_lists_the_shipped_features_sorted_by_name():
    from lab.controllers.gateways import GatewayController

    cls = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
           "metadata": {"name": "tulle", "generation": 1, "resourceVersion": "3"},
           "spec": {"controllerName": "tulle.io/gateway-controller"}}
    writer = _Writer()
    GatewayController(writer).reconcile([cls], [])
    [(kind, _, name, status)] = [w for w in writer.writes if w[0] == "GatewayClass"]
    assert name == "tulle"
    assert status["supportedFeatures"] == [{"name": f} for f in sorted(SUPPORTED_FEATURES)]
    published = frozenset(f["name"] for f in status["supportedFeatures"])
    assert published - claimed_in_report(latest_report()) <= IN_NO_PROFILE


def test_cases_have_unique_names_and_their_objects_agree():
    cases = all_cases()
    assert len({c.name for c in cases}) == len(cases)
    objects = plan_manifests(cases)
    assert objects[0]["kind"] == "Namespace"


def test_two_cases_defining_one_object_differently_are_refused():
    [a, b] = all_cases()[:2]
    changed = {**a.manifests[-1], "spec": {}}
    other = type(b)(b.name, b.profile, b.features, (changed,), b.check)
    with pytest.raises(ValueError, match=b.name):
        plan_manifests([a, other])
