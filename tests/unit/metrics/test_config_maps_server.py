"""MetricsConfig validation, MapFillCollector and the HTTP endpoint."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from agent.metrics import (
    AGENT_METRICS_PORT,
    FamilyConfig,
    FlowMetrics,
    MapFillCollector,
    MetricsConfig,
    serve_metrics,
)
from agent.metrics.server import parse_address
from tests.unit.flows import samples
from tests.unit.metrics.scrape import labels, scrape, series


def test_defaults() -> None:
    cfg = MetricsConfig()
    assert cfg.address == ":9965" and AGENT_METRICS_PORT == 9965
    assert cfg.labels_of("http_requests") == (
        "method", "code", "source_workload", "destination_workload")


@pytest.mark.parametrize(("families", "message"), [
    ({"nope": FamilyConfig()}, "unknown family 'nope'"),
    ({"drop": FamilyConfig(labels=("reason", "pod"))}, "family 'drop' has no label 'pod'"),
    ({"drop": FamilyConfig(max_series=0)}, "drop.max_series must be >= 1"),
])
def test_invalid_family_config_names_the_problem(families: dict[str, FamilyConfig],
                                                 message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MetricsConfig(families=families)


def test_labels_keep_family_order() -> None:
    cfg = MetricsConfig(families={"http_requests": FamilyConfig(labels=("code", "method"))})
    assert cfg.labels_of("http_requests") == ("method", "code")


def test_from_mapping() -> None:
    cfg = MetricsConfig.from_mapping({
        "address": "127.0.0.1:9100",
        "max_label_values": 10,
        "http_duration_buckets": [0.01, 0.1, 1],
        "families": {"http_requests": {"labels": ["method", "code"]},
                     "tcp_flags": {"enabled": False}},
    })
    assert cfg.address == "127.0.0.1:9100"
    assert cfg.http_duration_buckets == (0.01, 0.1, 1.0)
    assert cfg.labels_of("http_requests") == ("method", "code")
    assert not cfg.family("tcp_flags").enabled
    with pytest.raises(ValueError, match="unknown key 'adress'"):
        MetricsConfig.from_mapping({"adress": ":1"})
    with pytest.raises(ValueError, match="families.drop: unknown key 'label'"):
        MetricsConfig.from_mapping({"families": {"drop": {"label": ["reason"]}}})
    with pytest.raises(ValueError, match="increasing"):
        MetricsConfig.from_mapping({"http_duration_buckets": [1, 0.5]})


def test_map_fill_collector_reads_at_scrape_time() -> None:
    reg = CollectorRegistry()
    fill = {"tulle_ct4_v1": (250, 1000), "tulle_lb4_v1": (0, 0)}
    MapFillCollector(lambda: fill, reg)
    got = scrape(reg)
    assert series(got, "tulle_bpf_map_fill_ratio") == {
        labels(map="tulle_ct4_v1"): 0.25, labels(map="tulle_lb4_v1"): 0.0}
    assert series(got, "tulle_bpf_map_entries")[labels(map="tulle_ct4_v1")] == 250
    assert series(got, "tulle_bpf_map_max_entries")[labels(map="tulle_ct4_v1")] == 1000
    fill["tulle_ct4_v1"] = (900, 1000)
    assert series(scrape(reg), "tulle_bpf_map_fill_ratio")[labels(map="tulle_ct4_v1")] == 0.9


def test_map_fill_collector_survives_a_failing_reader() -> None:
    reg = CollectorRegistry()

    def broken() -> dict[str, tuple[int, int]]:
        raise OSError("map fd closed")

    MapFillCollector(broken, reg)
    FlowMetrics(registry=reg)
    got = scrape(reg)
    assert series(got, "tulle_bpf_map_fill_ratio") == {}
    assert series(got, "tulle_bpf_map_read_errors_total") == {labels(): 1}
    assert "tulle_flows_processed_total" not in {n for n, _ in got}  # no flows yet: no samples


@pytest.mark.parametrize(("address", "want"), [
    (":9965", ("0.0.0.0", 9965)),
    ("127.0.0.1:0", ("127.0.0.1", 0)),
    ("[::1]:9100", ("::1", 9100)),
    ("localhost", ("localhost", 9965)),
])
def test_parse_address(address: str, want: tuple[str, int]) -> None:
    assert parse_address(address) == want


@pytest.mark.parametrize("address", ["1.2.3.4:99999", "a:b:c", "[::1"])
def test_parse_address_rejects(address: str) -> None:
    with pytest.raises(ValueError, match="metrics address"):
        parse_address(address)


def test_serve_metrics_on_loopback() -> None:
    reg = CollectorRegistry()
    fm = FlowMetrics(registry=reg)
    fm.observe_many(samples.all_samples())
    server = serve_metrics(reg, "127.0.0.1:0")
    try:
        assert server.port > 0
        with urllib.request.urlopen(server.url, timeout=5) as resp:
            text = resp.read().decode()
    finally:
        server.close()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert "tulle_flows_processed" in names
    assert "python_gc_objects_collected" not in names  # a dedicated registry, not the global


def test_serve_metrics_names_a_taken_port() -> None:
    reg = CollectorRegistry()
    first = serve_metrics(reg, "127.0.0.1:0")
    try:
        with pytest.raises(OSError, match=f"cannot serve metrics on 127.0.0.1:{first.port}"):
            serve_metrics(reg, f"127.0.0.1:{first.port}")
    finally:
        first.close()
