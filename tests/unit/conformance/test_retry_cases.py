"""The retry cases' judgement of one answer (pure): the expected status, from the retried
backend when it is a 200; any 5xx where GEP-1731 leaves the gateway's error open; no
answer is never right. And each case's route retries what its table needs."""

from __future__ import annotations

from conformance.cases import gateway_retry as retry

V3_POD = "infra-backend-v3-7d9f8-abcde"


def test_a_200_must_come_from_the_retried_backend() -> None:
    ok = {"status": 200, "body": {"pod": V3_POD}}
    assert retry.mismatch(ok, 200) is None
    assert retry.mismatch({"status": 200, "body": {"pod": "infra-backend-v1-7d9f8-abcde"}}, 200)
    assert retry.mismatch({"status": 200, "body": "not an echo"}, 200)
    assert retry.mismatch({"status": 500, "body": ""}, 200)


def test_a_failing_status_must_be_the_one_expected() -> None:
    assert retry.mismatch({"status": 503, "body": ""}, 503) is None
    assert retry.mismatch({"status": 500, "body": ""}, 503)
    assert retry.mismatch({"status": 200, "body": {"pod": V3_POD}}, 503)  # retried a 503


def test_any_5xx_and_never_no_answer() -> None:
    assert retry.mismatch({"status": 502, "body": ""}, retry.ANY_5XX) is None
    assert retry.mismatch({"status": 200, "body": {"pod": V3_POD}}, retry.ANY_5XX)
    assert retry.mismatch({"error": "reset"}, retry.ANY_5XX)
    assert retry.mismatch({"error": "reset"}, 200)


def test_each_route_retries_and_the_tables_expect_both_outcomes() -> None:
    for name, route in retry.ROUTES.items():
        rules = route["spec"]["rules"]
        assert all(r["retry"]["attempts"] >= 1 for r in rules), name
    [slow] = retry.ROUTES["HTTPRouteRetryBackendTimeout"]["spec"]["rules"]
    assert slow["timeouts"]["backendRequest"] == "500ms"
    for table in (retry.RETRY_TABLE, retry.RESET_TABLE, retry.TIMEOUT_TABLE):
        wants = {want for _, _, want in table}
        assert 200 in wants and wants - {200}
