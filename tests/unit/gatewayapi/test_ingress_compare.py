"""`tulle convert --verify`'s comparison (gatewayapi/ingress/compare.py): which fields
count, and that a probe depending on an annotation is never reported the same."""

from __future__ import annotations

from gatewayapi.ingress.compare import (
    Observation,
    Verdict,
    compare,
    controlled_headers,
    summary,
    table,
    unchecked,
)
from gatewayapi.ingress.corpus import Probe

PROBE = Probe("GET", "http", "a.example", "/x", (), "test")
ECHO = Observation(200, "web/app:80", "/x")


def test_equal_observations_are_the_same() -> None:
    outcome = compare(PROBE, ECHO, Observation(200, "web/app:80", "/x"))
    assert outcome.verdict is Verdict.SAME and outcome.differences == ()


def test_each_compared_field_makes_a_difference() -> None:
    cases = {
        "status": Observation(404),
        "backend": Observation(200, "web/other:80", "/x"),
        "backend path": Observation(200, "web/app:80", "/y"),
        "location": Observation(200, "web/app:80", "/x", location="https://a.example/x"),
        "access-control-allow-origin": Observation(
            200, "web/app:80", "/x", headers=(("access-control-allow-origin", "*"),)
        ),
    }
    for name, other in cases.items():
        outcome = compare(PROBE, ECHO, other)
        assert outcome.verdict is Verdict.DIFFERENT, name
        assert name in [field for field, _, _ in outcome.differences], name
    backend = compare(PROBE, ECHO, cases["backend"]).differences
    assert backend == (("backend", "web/app:80", "web/other:80"),)


def test_an_error_on_one_side_differs() -> None:
    outcome = compare(PROBE, ECHO, Observation(error="ConnectionRefusedError: x"))
    assert outcome.verdict is Verdict.DIFFERENT
    assert ("status", "200", "no answer") in outcome.differences
    # how a side fails is not compared (it depends on the loopback setup), only that it did
    both = compare(PROBE, Observation(error="SSLError: WRONG_VERSION_NUMBER"),
                   Observation(error="ConnectionResetError"))
    assert both.verdict is Verdict.SAME


def test_a_probe_depending_on_an_annotation_is_unchecked_even_when_equal() -> None:
    probe = Probe("GET", "http", "a.example", "/x", (), "t",
                  ("nginx.ingress.kubernetes.io/rewrite-target",))
    outcome = compare(probe, ECHO, ECHO)
    assert outcome.verdict is Verdict.UNCHECKED
    assert "rewrite-target" in outcome.reason and "does not implement" in outcome.reason
    assert compare(probe, ECHO, Observation(404)).verdict is Verdict.UNCHECKED


def test_controlled_headers_are_the_cors_ones_lower_cased() -> None:
    got = controlled_headers([
        ("Content-Type", "text/plain"),
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Max-Age", "10"),
    ])
    assert got == (("access-control-allow-origin", "*"), ("access-control-max-age", "10"))


def test_table_lists_only_differences_and_summary_counts_each_verdict() -> None:
    outcomes = [
        compare(PROBE, ECHO, ECHO),
        compare(PROBE, ECHO, Observation(404)),
        unchecked(PROBE, "HTTPS is not replayed yet"),
    ]
    lines = table(outcomes)
    assert lines[0].startswith("DIFFERENT GET http://a.example/x")
    assert any("status: Ingress 200  |  Gateway 404" in line for line in lines)
    assert dict(summary(outcomes)) == {Verdict.SAME: 1, Verdict.DIFFERENT: 1, Verdict.UNCHECKED: 1}


def test_an_expected_answer_holds_the_gateway_to_it_whatever_the_ingress_side_did() -> None:
    ssl = "nginx.ingress.kubernetes.io/ssl-redirect"
    expect = (("status", "308"), ("backend", "-"), ("backend path", "-"),
              ("location", "https://a.example/x"))
    probe = Probe("GET", "http", "A.example", "/x", (), "t", (ssl,), expect)
    redirected = Observation(308, location="https://A.EXAMPLE/x")  # host case is free
    outcome = compare(probe, ECHO, redirected)
    assert outcome.verdict is Verdict.SAME and outcome.left == "nginx (documented)"
    wrong = compare(probe, ECHO, Observation(301, location="https://a.example/X"))
    assert wrong.verdict is Verdict.DIFFERENT
    assert wrong.differences == (("status", "308", "301"),
                                 ("location", "https://a.example/x", "https://a.example/X"))
    assert "location: nginx (documented) https://a.example/x  |  Gateway https://a.example/X" in (
        "\n".join(table([wrong])))
