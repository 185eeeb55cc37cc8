"""`make conformance` in the root tier (issue 16 item 8): the conformance runner against the
session's lab. Fails when a feature Tulle claims (gatewayapi/supported_features.py) fails or
has no passing case, and checks that the lab's GatewayClass publishes exactly that claim."""

from __future__ import annotations

import pytest

from conformance.cases import all_cases
from conformance.features import IN_NO_PROFILE
from conformance.lab import Lab as ConformanceLab
from conformance.report import build_report, claimed_in_report, failed_claims
from conformance.runner import run
from gatewayapi.supported_features import SUPPORTED_FEATURES

from .conftest import Lab

pytestmark = pytest.mark.netns


@pytest.mark.timeout(900)
def test_every_claimed_feature_passes_and_the_gateway_class_lists_them(lab: Lab) -> None:
    target = ConformanceLab(lab.name, lab.env["TULLE_STATE_DIR"])
    results = run(target, all_cases(), progress=print)
    broken = failed_claims(results, SUPPORTED_FEATURES)
    assert broken == {}, [(r.name, r.detail) for r in results if r.outcome == "failed"]
    report = build_report(results, SUPPORTED_FEATURES, "now")
    in_report = claimed_in_report(report)  # all but what no v1.6.1 profile can list
    assert in_report <= frozenset(SUPPORTED_FEATURES)
    assert frozenset(SUPPORTED_FEATURES) - in_report <= IN_NO_PROFILE
    [gateway_class] = [c for c in target.get_cluster("gatewayclasses")
                       if c["metadata"]["name"] == "tulle"]
    published = [f["name"] for f in gateway_class["status"]["supportedFeatures"]]
    assert published == sorted(SUPPORTED_FEATURES)
