"""The ConformanceReport builder (pure), with fabricated case results: its shape (upstream
conformance/apis/v1), what it claims, and when a claim fails."""

from __future__ import annotations

import pytest

from conformance.case import Case, CaseResult
from conformance.features import PROFILES
from conformance.report import (
    build_report,
    claimed_in_report,
    failed_claims,
    passing_features,
    profile_report,
)


def result(name, profile, features, outcome, extended=None):
    core = PROFILES[profile].core
    ext = any(f not in core for f in features) if extended is None else extended
    return CaseResult(name, profile, tuple(features), ext, outcome)


HTTP = ("Gateway", "HTTPRoute")
RESULTS = [
    result("Simple", "GATEWAY-HTTP", HTTP, "passed"),
    result("Grant", "GATEWAY-HTTP", (*HTTP, "ReferenceGrant"), "passed"),
    result("Query", "GATEWAY-HTTP", (*HTTP, "HTTPRouteQueryParamMatching"), "passed"),
    result("Method", "GATEWAY-HTTP", (*HTTP, "HTTPRouteMethodMatching"), "passed"),
    result("MethodTwo", "GATEWAY-HTTP", (*HTTP, "HTTPRouteMethodMatching"), "failed"),
    result("MeshBasic", "MESH-HTTP", ("Mesh", "HTTPRoute"), "passed"),
    result("TCPSimple", "GATEWAY-TCP", ("Gateway", "TCPRoute"), "skipped"),
]


def test_a_feature_passes_only_when_no_case_naming_it_failed_and_one_passed():
    passing = passing_features(RESULTS)
    assert "HTTPRouteQueryParamMatching" in passing
    assert "HTTPRouteMethodMatching" not in passing  # one of its two cases failed
    assert "TCPRoute" not in passing  # skipped: never ran
    assert {"Gateway", "HTTPRoute", "ReferenceGrant", "Mesh"} <= passing  # a skip is no failure


def test_a_claimed_feature_that_failed_or_never_passed_is_named():
    broken = failed_claims(RESULTS, {"HTTPRouteMethodMatching", "TCPRoute",
                                     "HTTPRouteQueryParamMatching", "HTTPRouteCORS"})
    assert broken == {
        "HTTPRouteMethodMatching": ["MethodTwo failed"],
        "TCPRoute": ["no case naming it passed"],
        "HTTPRouteCORS": ["no case naming it passed"],
    }
    assert failed_claims(RESULTS, passing_features(RESULTS)) == {}


def test_report_has_the_upstream_shape_and_version():
    report = build_report(RESULTS, passing_features(RESULTS), "2026-12-06T13:00:00+00:00")
    assert list(report) == ["apiVersion", "kind", "implementation", "date", "gatewayAPIVersion",
                            "gatewayAPIChannel", "mode", "profiles"]
    assert (report["apiVersion"], report["kind"]) == ("gateway.networking.k8s.io/v1",
                                                      "ConformanceReport")
    assert report["gatewayAPIVersion"] == "v1.6.1"
    assert set(report["implementation"]) == {"organization", "project", "url", "version",
                                             "contact"}
    assert [p["name"] for p in report["profiles"]] == [
        "GATEWAY-HTTP", "GATEWAY-GRPC", "GATEWAY-TLS", "GATEWAY-TCP", "GATEWAY-UDP",
        "MESH-HTTP", "MESH-GRPC"]
    for p in report["profiles"]:
        assert p["summary"]
        assert set(p["core"]["statistics"]) == {"Passed", "Failed", "Skipped"}


def test_profile_statistics_split_core_and_extended_cases():
    claim = passing_features(RESULTS)
    http = profile_report(PROFILES["GATEWAY-HTTP"], RESULTS, claim)
    assert http["core"] == {"result": "success",
                            "statistics": {"Passed": 2, "Failed": 0, "Skipped": 0}}
    ext = http["extended"]
    assert ext["supportedFeatures"] == ["HTTPRouteQueryParamMatching"]
    assert "HTTPRouteMethodMatching" in ext["unsupportedFeatures"]
    # Method's cases name an unclaimed feature: upstream would not run them, so they do not count
    assert ext["statistics"] == {"Passed": 1, "Failed": 0, "Skipped": 0}
    assert ext["result"] == "success"


def test_a_claimed_feature_that_fails_makes_the_extended_result_a_failure():
    claim = passing_features(RESULTS) | {"HTTPRouteMethodMatching"}
    ext = profile_report(PROFILES["GATEWAY-HTTP"], RESULTS, claim)["extended"]
    assert ext["result"] == "failure"
    assert ext["failedTests"] == ["MethodTwo"]
    assert ext["statistics"] == {"Passed": 2, "Failed": 1, "Skipped": 0}


def test_a_profile_whose_kind_is_not_served_is_partial_with_its_cases_skipped():
    tcp = profile_report(PROFILES["GATEWAY-TCP"], RESULTS, passing_features(RESULTS))
    assert tcp["core"] == {"result": "partial", "skippedTests": ["TCPSimple"],
                           "statistics": {"Passed": 0, "Failed": 0, "Skipped": 1}}
    assert "not served" in tcp["summary"]
    tls = profile_report(PROFILES["GATEWAY-TLS"], RESULTS, passing_features(RESULTS))
    assert tls["core"]["result"] == "partial"  # no case ran: never a success


def test_a_failed_core_case_fails_the_core_result():
    results = [*RESULTS, result("MeshSplit", "MESH-HTTP", ("Mesh", "HTTPRoute"), "failed")]
    mesh = profile_report(PROFILES["MESH-HTTP"], results, passing_features(results))
    assert mesh["core"]["result"] == "failure"
    assert mesh["core"]["failedTests"] == ["MeshSplit"]


def test_claimed_in_report_is_core_where_core_succeeded_plus_supported_features():
    claim = passing_features(RESULTS)
    report = build_report(RESULTS, claim, "2026-12-06T13:00:00+00:00")
    assert claimed_in_report(report) == claim


def test_unknown_profiles_are_refused_by_name():
    with pytest.raises(ValueError, match="GATEWAY-FTP"):
        build_report(RESULTS, set(), "d", profiles=["GATEWAY-FTP"])


def test_a_case_must_name_features_of_its_profile():
    with pytest.raises(ValueError, match="MeshConsumerRoute"):
        Case("Bad", "GATEWAY-HTTP", ("Gateway", "MeshConsumerRoute"), (), lambda lab: None)
    with pytest.raises(ValueError, match="unknown profile"):
        Case("Bad", "GATEWAY-SCTP", ("Gateway",), (), lambda lab: None)
    with pytest.raises(ValueError, match="none"):
        Case("Bad", "GATEWAY-HTTP", (), (), lambda lab: None)


def test_a_failing_core_case_of_one_kind_leaves_the_gateway_to_the_cases_that_prove_it():
    results = [*RESULTS, result("TCPSimpleRuns", "GATEWAY-TCP", ("Gateway", "TCPRoute"), "failed")]
    passing = passing_features(results)
    assert "Gateway" in passing and "TCPRoute" not in passing
    assert failed_claims(results, {"Gateway", "TCPRoute"}) == {
        "TCPRoute": ["TCPSimpleRuns failed", "no case naming it passed"]}
    only_base = [result("GatewayOnly", "GATEWAY-HTTP", ("Gateway",), "failed")]
    assert failed_claims(only_base, {"Gateway"}) == {
        "Gateway": ["GatewayOnly failed", "no case naming it passed"]}


def test_a_case_counts_in_every_profile_that_has_all_its_features():
    """Upstream's getConformanceProfilesForTest: a Gateway-only extended case counts in all
    five Gateway profiles, an HTTPRoute one in GATEWAY-HTTP only."""
    static = result("GatewayStaticAddresses", "GATEWAY-HTTP",
                    ("Gateway", "GatewayStaticAddresses"), "passed")
    results = [*RESULTS, result("TCPRuns", "GATEWAY-TCP", ("Gateway", "TCPRoute"), "passed"),
               static]
    claim = passing_features(results)
    for name in ("GATEWAY-HTTP", "GATEWAY-GRPC", "GATEWAY-TLS", "GATEWAY-TCP", "GATEWAY-UDP"):
        ext = profile_report(PROFILES[name], results, claim)["extended"]
        assert "GatewayStaticAddresses" in ext["supportedFeatures"], name
    tcp = profile_report(PROFILES["GATEWAY-TCP"], results, claim)
    assert tcp["extended"]["statistics"] == {"Passed": 1, "Failed": 0, "Skipped": 0}
    assert tcp["extended"]["result"] == "success"
    # TCPRoute is core there (and, by the registry, extended too): its case counts as core
    assert tcp["core"]["statistics"]["Passed"] == 1
    grpc = profile_report(PROFILES["GATEWAY-GRPC"], results, claim)
    assert grpc["extended"]["statistics"]["Passed"] == 1  # not the HTTPRoute cases


def test_a_profile_where_no_extended_case_counted_has_no_extended_section():
    """Upstream leaves ProfileReport.Extended nil then, so it lists no supportedFeatures
    (this report used to say "partial" with nothing run)."""
    mesh_grpc = profile_report(PROFILES["MESH-GRPC"], RESULTS, passing_features(RESULTS))
    assert "extended" not in mesh_grpc
    http = build_report(RESULTS, passing_features(RESULTS), "d")["profiles"][0]
    assert "extended" in http


def test_a_feature_in_no_profile_counts_in_no_profile_but_its_claim_is_checked():
    named = [result("GRPCNamed", "GATEWAY-GRPC", ("Gateway", "GRPCRoute",
                                                  "GRPCRouteNamedRouteRule"), "failed",
                    extended=True)]
    report = build_report(named, {"GRPCRouteNamedRouteRule"}, "d")
    grpc = next(p for p in report["profiles"] if p["name"] == "GATEWAY-GRPC")
    assert grpc["core"]["statistics"] == {"Passed": 0, "Failed": 0, "Skipped": 0}
    assert "extended" not in grpc
    assert failed_claims(named, {"GRPCRouteNamedRouteRule"}) == {
        "GRPCRouteNamedRouteRule": ["GRPCNamed failed", "no case naming it passed"]}
    Case("GRPCNamed", "GATEWAY-GRPC", ("Gateway", "GRPCRoute", "GRPCRouteNamedRouteRule"), (),
         lambda lab: None)  # a registry name, though in no profile: accepted
