"""Flows from the live datapath through the agents' observers and the lab relay."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, service, wait_for

pytestmark = pytest.mark.netns


@pytest.fixture(scope="module")
def obs(lab: Lab) -> dict[str, Any]:
    apply(lab, namespace("obs"), deployment("obs", "api", 1, node="node2"), service("obs", "api"),
          deployment("obs", "caller", 1, node="node1"))
    lab.wait_pods_ready("obs", 2, timeout=90)
    caller = pods_of(lab, "obs", "caller")[0]["metadata"]["name"]
    api = pods_of(lab, "obs", "api")[0]
    wait_for(lambda: lab.exec("obs", caller, "curl", "-s", "--max-time", "2", "http://api.obs/",
                              check=False).returncode == 0, what="service reachable")
    return {"caller": caller, "api": api["metadata"]["name"], "api_ip": api["status"]["podIP"]}


def flows(lab: Lab, *args: str) -> list[dict[str, Any]]:
    out = lab.tulle("observe", "-o", "json", *args).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_translated_flow_names_pods_service_and_both_nodes(lab: Lab, obs: dict[str, Any]) -> None:
    lab.exec("obs", obs["caller"], "curl", "-s", "--max-time", "3", "http://api.obs/observe-me")
    time.sleep(0.5)
    records = flows(lab, "--last", "200", "-n", "obs", "--protocol", "tcp")
    new = [r for r in records if r["flow"].get("verdict") == "TRANSLATED"
           and r["flow"]["source"].get("pod_name") == obs["caller"]]
    assert new, records[-5:]
    f = new[-1]["flow"]
    assert new[-1]["node_name"] == "node1"
    assert f["destination"]["pod_name"] == obs["api"]
    assert f["destination_service"] == {"name": "api", "namespace": "obs"}
    assert f["IP"]["destination"] == obs["api_ip"]
    assert f["l4"]["TCP"]["destination_port"] == 8080
    assert f["Type"] == "L3_L4" and f["traffic_direction"] == "EGRESS"
    assert f["source"]["identity"] > 255 and f["destination"]["identity"] > 255
    # The server side of the same connection is recorded by node2's agent.
    seen_at = {r["node_name"] for r in records if r["flow"]["source"].get("pod_name") == obs["caller"]}
    assert seen_at == {"node1", "node2"}
    closed = [r["flow"] for r in records if "connection closed" in r["flow"].get("Summary", "")]
    assert closed and closed[-1]["tulle"]["bytes_sent"] > 0


def test_policy_drop_shows_as_dropped_with_reason(lab: Lab, obs: dict[str, Any]) -> None:
    deny = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "deny", "namespace": "obs"},
            "spec": {"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Ingress"]}}
    apply(lab, deny)
    try:
        wait_for(lambda: lab.exec("obs", obs["caller"], "curl", "-s", "--max-time", "1",
                                  f"http://{obs['api_ip']}:8080/", check=False).returncode != 0,
                 what="deny in force")
        dropped = flows(lab, "--last", "100", "--verdict", "DROPPED", "--to-pod", f"obs/{obs['api']}")
        assert dropped and dropped[-1]["flow"]["drop_reason_desc"] == "POLICY_DENIED"
        assert dropped[-1]["node_name"] == "node2"
        # Filters compose: --not excludes them again.
        rest = flows(lab, "--last", "100", "--to-pod", f"obs/{obs['api']}", "--not", "--verdict", "DROPPED")
        assert all(r["flow"]["verdict"] != "DROPPED" for r in rest)
    finally:
        lab.tulle("delete", "networkpolicy", "deny", "-n", "obs")


def test_follow_streams_new_flows_within_a_second(lab: Lab, obs: dict[str, Any]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli.main", "observe", "-f", "--last", "0", "-o", "json",
         "--from-pod", f"obs/{obs['caller']}", "--verdict", "TRANSLATED"],
        env=lab.env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        time.sleep(1.5)  # let the follow stream attach to both nodes
        seen: list[float] = []
        reader = threading.Thread(target=lambda: (proc.stdout.readline(), seen.append(time.monotonic())))
        reader.start()
        sent = time.monotonic()
        lab.exec("obs", obs["caller"], "curl", "-s", "--max-time", "3", "http://api.obs/follow")
        reader.join(timeout=5)
        assert seen, "no flow arrived on the follow stream"
        assert seen[0] - sent < 1.0 + 0.5, "follow delivered the flow too late"  # exec itself ~0.3 s
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def test_status_and_nodes(lab: Lab, obs: dict[str, Any]) -> None:
    status = lab.tulle("status").stdout
    assert "2/2" in status or "Connected Nodes: 2" in status, status
    nodes = lab.tulle("list", "nodes").stdout
    assert "node1" in nodes and "node2" in nodes and "Connected" in nodes.replace("CONNECTED", "Connected")


def test_metrics_scrape_has_flow_drop_and_map_series(lab: Lab, obs: dict[str, Any]) -> None:
    lab.exec("obs", obs["caller"], "curl", "-s", "--max-time", "3", "http://api.obs/metrics-please")
    time.sleep(0.5)
    text = subprocess.run(
        ["ip", "netns", "exec", f"tulle-{lab.name}-node1", "curl", "-s", "--max-time", "5",
         "http://127.0.0.1:9965/metrics"], capture_output=True, text=True, check=True).stdout
    from prometheus_client.parser import text_string_to_metric_families

    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    translated = [v for (name, labels), v in samples.items()
                  if name == "tulle_flows_processed_total" and ("verdict", "TRANSLATED") in labels]
    assert translated and translated[0] >= 1
    assert any(name == "tulle_bpf_map_fill_ratio" and ("map", "ct_v1") in labels
               for name, labels in samples)
    assert any(name.startswith("tulle_lost_events") for name, _ in samples) or "tulle_lost_events" in text


def test_map_renders_the_app_as_png_and_dot(lab: Lab, obs: dict[str, Any], tmp_path: Any) -> None:
    lab.exec("obs", obs["caller"], "curl", "-s", "--max-time", "3", "http://api.obs/map")
    time.sleep(0.5)
    dot = lab.tulle("map", "--since", "10m", "-n", "obs", "-o", "dot", "--output", "-").stdout
    assert "obs/api" in dot and "obs/caller" in dot
    png = tmp_path / "map.png"
    lab.tulle("map", "--since", "10m", "-n", "obs", "-o", "png", "--output", str(png))
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
