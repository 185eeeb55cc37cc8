"""bench/mtls: availability detection, manifests, the report's targets and rendering, the
command line."""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.mtls import availability, manifests
from bench.mtls.cli import _modes, build, busy_notes, parse_args
from bench.mtls.report import added_latency, render_markdown, side_by_side, targets
from bench.mtls.runner import BenchConfig, ModeResult

CLIENT_ID = "spiffe://cluster.local/ns/mtls-client/sa/default"
SERVER_ID = "spiffe://cluster.local/ns/mtls-server/sa/default"
WANTED = {"node1": CLIENT_ID, "node2": SERVER_ID}


# -- availability ------------------------------------------------------------------------------
def test_svid_gap_none_when_each_node_holds_its_pods_identity() -> None:
    health = {
        "node1": {"svids": [{"spiffe_id": CLIENT_ID}, {"spiffe_id": "spiffe://x/y"}]},
        "node2": {"svids": [{"spiffe_id": SERVER_ID}]},
    }
    assert availability.svid_gap(health, WANTED) is None


def test_svid_gap_names_an_agent_without_the_svid_manager() -> None:
    health = {"node1": {"datapath": {}}, "node2": {"svids": [{"spiffe_id": SERVER_ID}]}}
    gap = availability.svid_gap(health, WANTED)
    assert gap is not None and "node1 reports no `svids`" in gap


def test_svid_gap_names_the_missing_identity_and_what_is_held() -> None:
    health = {
        "node1": {"svids": [{"spiffe_id": CLIENT_ID}]},
        "node2": {"svids": [{"spiffe_id": CLIENT_ID}]},
    }
    gap = availability.svid_gap(health, WANTED)
    assert gap == (f"the agent on node2 holds no SVID for {SERVER_ID} (it holds: {CLIENT_ID})")
    assert "holds: none" in (
        availability.svid_gap({"node1": {"svids": []}, "node2": {"svids": []}}, WANTED) or ""
    )


def test_svid_gap_quotes_the_agent_s_own_reason() -> None:
    health = {"node1": {"svid_error": "no CA address"}, "node2": {"svids": []}}
    assert availability.svid_gap(health, WANTED) == (
        "the agent on node1 runs without SVIDs: no CA address"
    )
    refused = {
        "svids": [],
        "svid_failures": [
            {"spiffe_id": "spiffe://cluster.local/ns/other/sa/x", "reason": "other"},
            {"spiffe_id": SERVER_ID, "reason": "PERMISSION_DENIED: no pod on node2"},
        ],
    }
    gap = availability.svid_gap({"node1": {"svids": [{"spiffe_id": CLIENT_ID}]},
                                 "node2": refused}, WANTED)  # fmt: skip
    assert gap is not None
    assert gap.endswith("(it holds: none); last failure: PERMISSION_DENIED: no pod on node2")


def test_svid_gap_without_a_health_report() -> None:
    assert availability.svid_gap({"node1": {}}, {"node1": CLIENT_ID}) == (
        "the agent on node1 wrote no health report"
    )


SS = """0      0      10.240.0.3:15008   10.240.0.2:40112
0      0      10.244.2.1:15001   10.244.2.5:51000
0      0      [::ffff:10.240.0.3]:15008  [::ffff:10.240.0.2]:40114
0      0      10.240.0.3:40000   10.240.0.2:15008
garbage
"""


def test_tunnel_peers_are_the_connections_accepted_on_the_hbone_port() -> None:
    assert availability.established(SS)[1] == (("10.244.2.1", 15001), ("10.244.2.5", 51000))
    # accepted on 15008 only, not the one this node dialled to a peer's 15008
    assert availability.tunnel_peers(SS) == ["10.240.0.2", "::ffff:10.240.0.2"]
    assert availability.tunnel_peers("") == []


def test_tunnel_gap() -> None:
    assert availability.tunnel_gap(["10.240.0.2"], 20) is None
    gap = availability.tunnel_gap([], 20)
    assert gap is not None and "port 15008 during 20 slow download(s)" in gap


# -- manifests ---------------------------------------------------------------------------------
def test_nginx_answers_a_1k_body_and_serves_the_bulk_file(tmp_path: Path) -> None:
    conf = manifests.nginx_conf(tmp_path)
    m = re.search(r'location = /1k \{ return 200 "([^"]*)"; \}', conf)
    assert m is not None and len(m.group(1)) == 1024
    assert f"root {tmp_path}/www;" in conf and "location = /bulk { }" in conf
    assert conf.count("{") == conf.count("}")


def test_enrolment_labels_both_namespaces() -> None:
    plain = manifests.namespaces(enrolled=False)
    enrolled = manifests.namespaces(enrolled=True)
    assert [n["metadata"]["name"] for n in enrolled] == ["mtls-server", "mtls-client"]
    assert all(n["metadata"]["labels"] == {} for n in plain)
    assert all(n["metadata"]["labels"] == {"tulle.io/mtls": "true"} for n in enrolled)


def test_only_the_routed_service_has_a_route() -> None:
    objs = manifests.services()
    routes = [o for o in objs if o["kind"] == "HTTPRoute"]
    assert [r["spec"]["parentRefs"][0]["name"] for r in routes] == ["routed"]
    vips = {o["metadata"]["name"]: o["spec"]["clusterIP"] for o in objs if o["kind"] == "Service"}
    assert vips == {"plain": manifests.PLAIN_VIP, "routed": manifests.ROUTED_VIP}
    pods = [manifests.backend_pod(Path("/tmp/x/nginx.conf")), manifests.client_pod()]
    assert [
        (p["metadata"]["namespace"], p["spec"]["nodeSelector"]["kubernetes.io/hostname"])
        for p in pods
    ] == [("mtls-server", "node2"), ("mtls-client", "node1")]


# -- the report --------------------------------------------------------------------------------
def _mode(
    mode: str, p50: float, p90: float, p99: float, rps: float, cpu1: float, cpu2: float
) -> dict[str, Any]:
    machine = {"load1_start": 1.0, "other_cores": 0.1}
    return {
        "mode": mode,
        "available": True,
        "reason": None,
        "evidence": {},
        "fixed": {
            "latency": {
                "count": 10_000,
                "p50_ms": p50,
                "p90_ms": p90,
                "p99_ms": p99,
                "max_ms": 9.0,
            },
            "send_lag": {
                "count": 10_000,
                "p50_ms": 0.01,
                "p90_ms": 0.02,
                "p99_ms": 0.05,
                "max_ms": 1.0,
            },
            "measured": 10_000,
            "achieved_rps": 1000.0,
            "errors": 0,
            "vcpu_per_krps": {"node1": cpu1, "node2": cpu2},
            "machine": machine,
        },
        "max": {
            "rps": rps,
            "p99_ms": 3.0,
            "errors": 0,
            "vcpu_per_krps": {"node1": cpu1, "node2": cpu2},
            "machine": machine,
        },
        "bulk": {"median_mib_per_s": 900.0},
        "profile": {
            "node1": {
                "samples": 600,
                "idle_pct": 62.5,
                "top_self": [
                    ["write (asyncio/selector_events.py)", 40.0, 40.0],
                    ["feed (l7proxy/h1.py)", 10.0, 30.0],
                ],
            },
            "node2": {"error": "py-spy failed (1): boom"},
        }
        if mode != "l4"
        else None,
    }


L4 = _mode("l4", 0.10, 0.20, 0.50, 30_000, 0.005, 0.005)
WAYPOINT = _mode("waypoint", 0.60, 1.20, 3.00, 3_000, 0.30, 0.005)
UNAVAILABLE = {
    "mode": "mtls",
    "available": False,
    "reason": "no svids",
    "fixed": None,
    "max": None,
    "bulk": None,
    "profile": None,
    "evidence": {},
}


def test_added_latency_is_per_percentile_over_l4() -> None:
    add = added_latency([L4, WAYPOINT, UNAVAILABLE])
    assert add["waypoint"] == {"p50_ms": 0.5, "p90_ms": 1.0, "p99_ms": 2.5}
    assert add["l4"] == {"p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0}
    assert add["mtls"] is None
    assert added_latency([WAYPOINT])["waypoint"] is None  # no l4 to subtract


def test_targets_met_and_missed() -> None:
    tunnel = _mode("mtls", 0.25, 0.30, 0.65, 2_500, 0.05, 0.07)
    rows = {t["target"].split()[1]: t for t in targets([L4, WAYPOINT, tunnel])}
    assert rows["max"]["measured"] == pytest.approx(0.833) and rows["max"]["met"] is True
    assert rows["added"]["measured"] == pytest.approx(0.15) and rows["added"]["met"] is True
    assert rows["vCPU"]["measured"] == 0.07 and rows["vCPU"]["met"] is False  # node2's
    slow = _mode("mtls", 0.25, 0.30, 0.90, 2_000, 0.01, 0.01)
    rows = {t["target"].split()[1]: t for t in targets([L4, WAYPOINT, slow])}
    assert rows["max"]["met"] is False and rows["added"]["met"] is False
    assert rows["vCPU"]["met"] is True


def test_targets_say_why_the_tunnel_was_not_measured() -> None:
    for row in targets([L4, WAYPOINT, UNAVAILABLE]):
        assert row["measured"] is None and row["met"] is None
        assert row["note"] == "mtls not available: no svids"
    assert all(r["note"] == "mtls not run" for r in targets([L4, WAYPOINT]))


def test_side_by_side_shows_anchors_and_not_available() -> None:
    header, rows = side_by_side([L4, WAYPOINT, UNAVAILABLE])
    assert header[1:] == [
        "l4 (plaintext kernel L4)",
        "waypoint (plaintext waypoint)",
        "mtls (mTLS tunnel (HBONE))",
        "ztunnel anchor",
    ]
    by_label = {r[0]: r[1:] for r in rows}
    assert by_label["added p99 ms (minus l4)"] == ["+0.000", "+2.500", "not available", "+0.20"]
    assert by_label["added p90 ms (minus l4)"][-1] == "+0.17"
    assert by_label["max requests/s (wrk, keep-alive)"][:2] == ["30,000", "3,000"]
    assert by_label["waypoint vCPU per 1,000 req/s, node1 (client end)"] == [
        "0.005",
        "0.300",
        "not available",
        "0.06",
    ]


def test_render_markdown_states_targets_reasons_profile_and_floor() -> None:
    rep = {
        "date": "2026-12-06 04:00 UTC",
        "method": "M.",
        "results": [L4, WAYPOINT, UNAVAILABLE],
        "targets": targets([L4, WAYPOINT, UNAVAILABLE]),
        "notes": ["machine was busy"],
        "client_floor": {
            "c": {
                "latency": {"p50_ms": 0.05, "p90_ms": 0.1, "p99_ms": 1.0},
                "send_lag": {"p50_ms": 0.01, "p99_ms": 0.6},
                "errors": 0,
            }
        },
        "machine": {"nproc": 2},
        "command": "make bench-mtls",
    }
    md = render_markdown(rep)
    assert "- `mtls`: no svids" in md
    assert (
        "| tunnel added p99 at 1,000 requests/s (ms) | — | <= 0.2 (ztunnel +0.2) | "
        "not measured | mtls not available: no svids |" in md
    )
    assert (
        "`waypoint` node1: 62.5% of samples waiting (selector, blocking reads); of the 600 busy samples: "
        "`write (asyncio/selector_events.py)` 40% self (40% incl.); `feed (l7proxy/h1.py)` 10% "
        "self (30% incl.)"
    ) in md
    assert "`waypoint` node2: py-spy failed (1): boom" in md
    assert "| c | 0.050 | 0.100 | 1.000 | 0.010 | 0.600 | 0 |" in md
    assert "- machine was busy" in md
    assert "| mtls | not available |" in md


# -- the command line --------------------------------------------------------------------------
def test_modes_must_be_known_and_mtls_last() -> None:
    assert _modes("l4,waypoint") == ("l4", "waypoint")
    assert _modes("l4, mtls") == ("l4", "mtls")
    for bad, message in (
        ("l4,ztunnel", "unknown mode"),
        ("", "none"),
        ("mtls,l4", "mtls must come last"),
    ):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            _modes(bad)


def test_parse_args_quick_and_bad_values() -> None:
    a = parse_args(["--quick"])
    assert (a.warmup, a.seconds, a.max_seconds, a.bulk_mib) == (1.0, 3.0, 3, 64)
    with pytest.raises(SystemExit):
        parse_args(["--rate", "0"])
    assert parse_args(["--note", "a", "--note", "b"]).note == ["a", "b"]
    assert parse_args([]).note == [] and parse_args([]).engine == "c"


def test_busy_notes_only_when_others_competed_for_the_cpus() -> None:
    facts = {"nproc": 2, "loadavg_start": (2.5, 2.0, 1.0)}
    quiet = busy_notes([L4, WAYPOINT, UNAVAILABLE], facts)
    assert quiet == []  # others used 0.1 core in every run
    busy = {**WAYPOINT, "max": {**WAYPOINT["max"], "machine": {"other_cores": 0.74}}}
    (note,) = busy_notes([L4, busy, UNAVAILABLE], facts)
    assert "up to 0.74 of the 2 CPUs" in note and "quiet machine" in note


def test_build_makes_a_json_report_that_renders() -> None:
    args = parse_args(["--note", "five helpers shared the machine"])
    runner = SimpleNamespace(
        results=[ModeResult("mtls", available=False, reason="no svids")],
        notes=["lab never went quiet"],
        calibration={},
    )
    facts = {"nproc": 2, "loadavg_start": (1.0, 1.0, 1.0)}
    started = datetime(2026, 12, 6, 4, 0, tzinfo=UTC)
    rep = build(args, BenchConfig(), runner, started, facts, None)  # type: ignore[arg-type]
    assert json.loads(json.dumps(rep))["results"][0]["reason"] == "no svids"
    assert rep["notes"] == ["lab never went quiet", "five helpers shared the machine"]
    assert rep["command"] == "make bench-mtls" and rep["date"] == "2026-12-06 04:00 UTC"
    md = render_markdown(rep)
    assert "- five helpers shared the machine" in md and "- `mtls`: no svids" in md


def test_lag_notes_flag_modes_whose_client_fell_behind() -> None:
    late = {**WAYPOINT, "fixed": {**WAYPOINT["fixed"], "send_lag": {"p99_ms": 15.2}}}
    rep = {"date": "d", "method": "m", "results": [L4, late, UNAVAILABLE],
           "targets": targets([L4, late]), "notes": [], "machine": {}, "command": "c"}  # fmt: skip
    md = render_markdown(rep)
    assert "`waypoint`: the client's own send lag reached 15.20 ms at p99" in md
    assert "`l4`: the client" not in md  # 0.05 ms: on schedule
    idle = {**late, "profile": {"node2": {"samples": 0, "idle_pct": 100.0, "top_self": []}}}
    assert "`waypoint` node2: waiting throughout" in render_markdown({**rep, "results": [L4, idle]})
