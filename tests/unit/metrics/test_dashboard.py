"""The Grafana dashboard is valid and asks only for series the agent exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent.metrics import FlowMetrics, MapFillCollector, MetricsConfig
from tests.unit.flows import samples
from tests.unit.tracing.test_request_printers import FLOW as SPLIT_FLOW

DASHBOARD = Path(__file__).parents[3] / "deploy" / "grafana" / "tulle-dashboard.json"
SCRAPE_LABELS = {"instance", "job"}  # added by Prometheus, not by the agent
_METRIC = re.compile(r"\btulle_[a-z0-9_]+")
_SELECTOR = re.compile(r"\b(tulle_[a-z0-9_]+)\{([^}]*)\}")
_MATCHER = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_BY = re.compile(r"\bby\s*\(([^)]*)\)")


def exposed() -> dict[str, set[str]]:
    """Every sample name the agent's collectors expose, with its label names."""
    registry = CollectorRegistry()
    fm = FlowMetrics(MetricsConfig(max_label_values=1), registry)  # 1: force an overflow
    MapFillCollector(lambda: {"tulle_ct4_v1": (1, 2)}, registry)
    fm.observe_many(samples.all_samples())
    fm.observe_many([samples.http_response(code=500), samples.tcp_close(),
                     samples.kernel_drop(), SPLIT_FLOW])
    fm.observe_lost("PERF_EVENT_RING_BUFFER", 1)
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in panels(dashboard) for t in p.get("targets", [])]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def test_dashboard_shape(dashboard: dict[str, Any]) -> None:
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in panels(dashboard):
        pos = p["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, p["title"]
        if p["type"] != "row":
            assert p["targets"], f"panel {p['title']!r} has no query"
            assert p["datasource"]["uid"] == "${datasource}"
    names = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "instance"} <= names


def test_dashboard_covers_what_issue_5_asks_for(dashboard: dict[str, Any]) -> None:
    text = " ".join(e for _, e in exprs(dashboard))
    for metric in ("tulle_flows_processed_total", "tulle_drop_total",
                   "tulle_policy_verdicts_total", "tulle_http_requests_total",
                   "tulle_http_request_duration_seconds_bucket", "tulle_lost_events_total",
                   "tulle_bpf_map_fill_ratio"):
        assert metric in text, f"no panel shows {metric}"
    assert "histogram_quantile(0.99" in text


def test_dashboard_has_a_tcp_latency_row(dashboard: dict[str, Any]) -> None:
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert "TCP latency (kernel connection tracing)" in rows
    text = " ".join(e for _, e in exprs(dashboard))
    for metric in ("tulle_tcp_connect_duration_seconds_bucket", "tulle_tcp_rtt_seconds_bucket",
                   "tulle_tcp_retransmits_total", "tulle_kernel_drops_total"):
        assert metric in text, f"no panel shows {metric}"


def test_the_latency_row_shows_where_request_time_goes(dashboard: dict[str, Any]) -> None:
    row = [p["gridPos"]["y"] for p in dashboard["panels"]
           if p["title"] == "TCP latency (kernel connection tracing)"][0]
    split = [p for p in panels(dashboard)
             if any("tulle_request_split_seconds" in t["expr"] for t in p.get("targets", []))]
    assert len(split) == 2 and all(p["gridPos"]["y"] > row for p in split)
    stacked = [p for p in split
               if p["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"]
    assert stacked and "by (part)" in stacked[0]["targets"][0]["expr"]


def test_every_query_uses_exposed_metrics_and_labels(dashboard: dict[str, Any]) -> None:
    have = exposed()
    for title, expr in exprs(dashboard):
        metrics = set(_METRIC.findall(expr))
        assert metrics, f"{title!r}: no tulle metric in {expr!r}"
        for name in metrics:
            assert name in have, f"{title!r} queries {name}, which the agent does not expose"
        for name, matchers in _SELECTOR.findall(expr):
            for label in _MATCHER.findall(matchers):
                assert label in have[name] | SCRAPE_LABELS, \
                    f"{title!r}: {name} has no label {label!r}"
        labels = set().union(*(have[m] for m in metrics)) | SCRAPE_LABELS
        for group in _BY.findall(expr):
            for label in (g.strip() for g in group.split(",") if g.strip()):
                assert label in labels, f"{title!r}: sum by {label!r}, which no series has"


def test_template_variables_query_exposed_labels(dashboard: dict[str, Any]) -> None:
    have = exposed()
    for var in dashboard["templating"]["list"]:
        definition = var.get("definition", "")
        m = re.fullmatch(r"label_values\((tulle_[a-z0-9_]+),\s*([a-z_]+)\)", definition)
        if not definition:
            continue
        assert m, definition
        metric, label = m.groups()
        assert metric in have and label in have[metric] | SCRAPE_LABELS
