"""The request-and-expect comparison (pure): each way an answer can differ from the spec's
is named, and the CLI refuses a selection that matches no case."""

from __future__ import annotations

from conformance.__main__ import main
from conformance.cases.common import Expect

ECHO = {"status": 200, "headers": {"content-type": ["application/json"]},
        "body": {"pod": "infra-backend-v1-abc-12", "path": "/one/two", "host": "a.example",
                 "headers": {"X-Header-Add": ["a", "b"]}}}


def test_a_matching_answer_has_no_mismatch():
    want = Expect(backend="infra-backend-v1", seen_path="/one/two", seen_host="a.example",
                  request_headers={"x-header-add": "a,b", "X-Gone": None})
    assert want.mismatch(ECHO) is None


def test_each_difference_is_named():
    assert Expect(status=404).mismatch(ECHO) == "status 200, want 404"
    assert "want a pod of infra-backend-v2" in Expect(backend="infra-backend-v2").mismatch(ECHO)
    # a pod of infra-backend-v10 is not one of infra-backend-v1
    assert Expect(backend="infra-backend").mismatch(ECHO) is not None
    assert "backend saw path" in Expect(seen_path="/one").mismatch(ECHO)
    assert "X-Gone" in Expect(request_headers={"X-Gone": "x"}).mismatch(ECHO)
    assert "response header X-A" in Expect(response_headers={"X-A": "1"}).mismatch(ECHO)
    assert "Location None" in Expect(location="http://x/").mismatch(ECHO)
    assert Expect().mismatch({"error": "ConnectionRefusedError()"}).startswith("no answer")
    assert "not an echo answer" in Expect(backend="x").mismatch({**ECHO, "body": "plain"})


def test_a_selection_matching_no_case_is_refused(capsys):
    assert main(["-k", "NoSuchCase"]) == 2
    assert "no case matches 'NoSuchCase'" in capsys.readouterr().err
