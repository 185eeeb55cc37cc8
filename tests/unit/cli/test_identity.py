"""`tulle identity`: each lab node's held certificates and trust bundle, from sample agent
health reports in the lab's state directory, as text and as JSON; the nodes without a
report, with SVIDs off, with a failed start or a stale report say so."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agent.cli.main import cli
from lab.state import LabPaths, write_json_atomic

FP_A = "a1" * 32
FP_B = "b2" * 32
WEB = "spiffe://cluster.local/ns/shop/sa/web"
DB = "spiffe://cluster.local/ns/shop/sa/db"


def report(**extra: Any) -> dict[str, Any]:
    return {"node": "x", "time": time.time(), "ready": True, **extra}


SVIDS = {
    "ca_address": "unix:/run/tulle/lab/ca.sock",
    "svids": [
        {
            "spiffe_id": WEB,
            "serial": "9f3c01",
            "not_after": "2026-12-07T12:00:00+00:00",
            "renew_at": "2026-12-07T00:00:30+00:00",
            "root": FP_A,
        }
    ],
    "trust_bundle": {
        "trust_domain": "cluster.local",
        "error": None,
        "roots": [
            {
                "fingerprint": FP_A,
                "subject": "CN=tulle root,O=Tulle",
                "not_after": "2036-12-04T12:00:00+00:00",
            },
            {
                "fingerprint": FP_B,
                "subject": "CN=tulle root 2,O=Tulle",
                "not_after": "2036-12-05T12:00:00+00:00",
            },
        ],
    },
    "svid_failures": [
        {
            "spiffe_id": DB,
            "failures": 3,
            "reason": "node-not-authorized",
            "retry_at": "2026-12-06T12:00:04+00:00",
        }
    ],
}


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LabPaths:
    monkeypatch.setenv("TULLE_STATE_DIR", str(tmp_path))
    paths = LabPaths.for_lab("t")
    paths.make_dirs()
    write_json_atomic(paths.lab_file, {"name": "t", "nodes": 5})
    health = paths.health
    write_json_atomic(health / "agent-node1.json", report(**SVIDS))
    write_json_atomic(health / "agent-node2.json", report())  # no --ca-address
    write_json_atomic(health / "agent-node3.json", report(svid_error="OSError: read-only"))
    write_json_atomic(
        health / "agent-node4.json",
        report(
            time=time.time() - 300,
            ca_address="h:1",
            svids=[],
            trust_bundle={
                "trust_domain": "cluster.local",
                "roots": [],
                "error": "no ConfigMap tulle-system/tulle-trust-bundle yet",
            },
        ),
    )
    return paths  # node5: no report


def test_text_lists_each_nodes_certificates_and_bundle(lab: LabPaths) -> None:
    out = CliRunner().invoke(cli, ["identity", "--lab", "t"])
    assert out.exit_code == 0, out.output
    text = out.output
    node1 = text[text.index("NODE node1") : text.index("NODE node2")]
    assert "(CA unix:/run/tulle/lab/ca.sock)" in node1
    line = next(ln for ln in node1.splitlines() if ln.strip().startswith(WEB))
    assert "9f3c01" in line and "2026-12-07T12:00:00+00:00" in line and FP_A[:16] in line
    assert f"FAILING {DB}: node-not-authorized (3 in a row)" in node1
    assert "trust bundle cluster.local: 2 root(s)" in node1
    assert f"{FP_B[:16]}  not after 2036-12-05T12:00:00+00:00  CN=tulle root 2,O=Tulle" in node1
    assert "NODE node2: SVIDs off (the agent runs without --ca-address)" in text
    assert "NODE node3: SVIDs off, the SVID manager did not start: OSError: read-only" in text
    node4 = text[text.index("NODE node4") : text.index("NODE node5")]
    assert "STALE: last report 300s ago" in node4 and "no certificates held" in node4
    assert "PROBLEM (the last good bundle is kept): no ConfigMap" in node4
    assert "NODE node5: no health report from its agent" in text


def test_json_carries_the_reports_sections(lab: LabPaths) -> None:
    out = CliRunner().invoke(cli, ["--lab", "t", "identity", "-o", "json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["lab"] == "t"
    nodes = {n["node"]: n for n in data["nodes"]}
    assert [n["node"] for n in data["nodes"]] == [f"node{i}" for i in range(1, 6)]
    assert nodes["node1"]["state"] == "ok"
    assert nodes["node1"]["svids"] == SVIDS["svids"]
    assert nodes["node1"]["trust_bundle"] == SVIDS["trust_bundle"]
    assert nodes["node1"]["svid_failures"] == SVIDS["svid_failures"]
    assert [nodes[f"node{i}"]["state"] for i in range(2, 6)] == [
        "off",
        "error",
        "stale",
        "no-report",
    ]
    assert nodes["node3"]["error"] == "OSError: read-only"


def test_a_lab_that_is_not_up_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TULLE_STATE_DIR", str(tmp_path))
    out = CliRunner().invoke(cli, ["identity", "--lab", "nope"])
    assert out.exit_code == 1
    assert "lab 'nope' is not up" in out.output


def test_a_bad_output_format_is_a_usage_error(lab: LabPaths) -> None:
    out = CliRunner().invoke(cli, ["identity", "--lab", "t", "-o", "yaml"])
    assert out.exit_code == 2 and "'yaml' is not one of" in out.output
