"""bench.l7.requestmix: requests that never repeat, the policies' verdict on each (by the
reference evaluator, Tulle's gate and Envoy's RBAC as read back), and the wrk script sending
exactly that sequence (wrk against a loopback server)."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from authz import evaluate
from bench.l7 import envoy_policy, policy_bench, policyset, requestmix
from bench.l7.envoy_policy import Identities
from l7proxy.config import load_config_text, waypoint_config
from tests.unit.bench.test_l7_policies import (
    CLIENT,
    HEADERS,
    LOADGEN,
    PATH,
    TABLE,
    authz_policies,
    envoy_allows,
    measured,
    objects,
    tulle_call,
)


def test_no_request_repeats_and_two_in_sixteen_are_denied() -> None:
    seq = [requestmix.nth(n, PATH, HEADERS) for n in range(1, 4001)]
    assert len(set(seq)) == len({t for t, _ in seq}) == 4000
    assert sum(requestmix.denied(n) for n in range(1, 1601)) == 200
    assert all(h[:len(HEADERS)] == HEADERS for _, h in seq)  # the route's match kept
    with pytest.raises(ValueError, match="starts at 1"):
        requestmix.nth(0, PATH, HEADERS)


def test_each_request_gets_the_verdict_the_sequence_says_from_all_three_deciders() -> None:
    """The reference evaluator (authz/evaluate.py), Tulle's gate as the waypoint wires it
    from the benchmark's config file (its verdict memo included), and Envoy's RBAC from the
    translation agree with ``denied(n)``: for a path denial and a header denial."""
    text = policy_bench.tulle_config(TABLE, listen="127.0.0.1:1", backend="127.0.0.1:18081")
    authorize = waypoint_config(load_config_text(text, "<test>")).authorize
    assert authorize is not None
    pods = [o for o in objects() if hasattr(o, "status")]
    filters = envoy_policy.rbac_filters(authz_policies(), Identities.of(
        pods, policyset.TRUST_DOMAIN))
    reasons = set()
    for n in range(1, 3 * requestmix.DENY_EVERY + 1):
        target, headers = requestmix.nth(n, PATH, HEADERS)
        path = target.partition("?")[0]
        allowed = not requestmix.denied(n)
        verdict = evaluate(authz_policies(), measured(LOADGEN, "GET", path, headers))
        assert verdict.allowed is allowed, n
        if not allowed:
            reasons.update(verdict.policies)
        assert envoy_allows(filters, measured(LOADGEN, "GET", path, headers)) is allowed, n
        tulle = authorize(tulle_call(CLIENT, "GET", target, headers))
        assert (tulle is None) is allowed, n
    assert {r.rsplit("/", 1)[-1] for r in reasons} == {"deny-admin-paths", "deny-old-clients"}


@pytest.mark.parametrize("bad", ['/a"b', "/a\\b", "/a\nb"])
def test_the_script_refuses_text_it_cannot_quote(bad: str) -> None:
    with pytest.raises(ValueError, match="wrk script"):
        requestmix.lua_script(bad, ())
    with pytest.raises(ValueError, match="wrk script"):
        requestmix.lua_script("/a", (("x-h", bad),))


class _Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, tuple[tuple[str, str], ...]]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        headers = tuple((k.lower(), v) for k, v in self.headers.items()
                        if k.lower() not in ("host",))
        self.seen.append((self.path, headers))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_wrk_sends_the_sequence(tmp_path: Path) -> None:
    """One wrk connection for one second against a loopback server: the requests it sends
    are ``nth(k), nth(k + 1), ...`` (wrk calls ``request()`` once before the load)."""
    wrk = shutil.which("wrk")
    assert wrk is not None, "wrk is installed by scripts/setup.sh"
    script = tmp_path / "mix.lua"
    script.write_text(requestmix.lua_script(PATH, HEADERS))
    _Recorder.seen = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        subprocess.run([wrk, "-t1", "-c1", "-d1s", "-s", str(script),
                        f"http://127.0.0.1:{server.server_port}/"],
                       check=True, capture_output=True, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    seen = _Recorder.seen
    assert len(seen) > requestmix.DENY_EVERY
    first = int(seen[0][0].split("/")[3].split("?")[0])
    for k, (target, headers) in enumerate(seen[:200]):
        want_target, want_headers = requestmix.nth(first + k, PATH, HEADERS)
        assert target == want_target
        assert sorted(headers) == sorted(want_headers)  # Lua tables keep no order


def test_policy_cost_miss_runs_within_its_pool() -> None:
    from bench.l7 import policy_cost

    for only in ("miss", "judge", "noop"):
        assert policy_cost.main(["--only", only, "--calls", "20"]) == 0
    with pytest.raises(SystemExit):
        policy_cost.main(["--only", "miss", "--calls", str(policy_cost.POOL + 1)])


@pytest.mark.parametrize(("non_2xx", "socket", "denied", "problem"), [
    (0, 0, 0.0, False), (1, 0, 0.0, True),  # none expected: one is a problem
    (125, 0, 0.125, False), (130, 0, 0.125, False), (160, 0, 0.125, True), (0, 0, 0.125, True),
    (125, 1, 0.125, True),  # a socket error always is
])
def test_a_measurement_with_unexpected_answers_is_a_problem(
        non_2xx: int, socket: int, denied: float, problem: bool) -> None:
    from bench.l4.wrk import WrkResult
    from bench.l7.wrk import wrk_problem

    result = WrkResult(1000.0, 1000, 1.0, 1.0, 2.0, {"read": socket}, non_2xx)
    assert bool(wrk_problem(result, denied)) is problem
