"""Kernel connection-trace metrics (issue 12 item 5) and Hubble-named metrics (item 6),
checked through the scraped text exposition against golden flows."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from agent.metrics import FamilyConfig, FlowMetrics, MetricsConfig
from agent.metrics.kernel import _bucket, _buckets
from tests.unit.flows import samples
from tests.unit.metrics.scrape import family_names, labels, scrape, series

PAIR = labels(source_workload="shop/web", destination_workload="shop/echo")


def metrics(config: MetricsConfig | None = None) -> tuple[FlowMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    return FlowMetrics(config, registry), registry


def bucket(got: dict, name: str, le: str) -> float:  # type: ignore[type-arg]
    return series(got, name)[PAIR | labels(le=le)]


def test_connect_latency_histogram_from_close_records() -> None:
    fm, reg = metrics()
    fm.observe_many([samples.tcp_close(connect_ns=120_000), samples.tcp_close(connect_ns=3_000_000),
                     samples.tcp_close(connect_ns=0)])  # never established: not a latency
    got = scrape(reg)
    name = "tulle_tcp_connect_duration_seconds"
    assert series(got, name + "_count") == {PAIR: 2}
    assert series(got, name + "_sum")[PAIR] == pytest.approx(0.00312)
    assert bucket(got, name + "_bucket", "0.0001") == 0
    assert bucket(got, name + "_bucket", "0.00025") == 1
    assert bucket(got, name + "_bucket", "0.005") == 2
    assert bucket(got, name + "_bucket", "+Inf") == 2


def test_rtt_histogram_one_observation_per_connection() -> None:
    fm, reg = metrics()
    fm.observe_many([samples.tcp_close(srtt_mean_us=40), samples.tcp_close(srtt_mean_us=600)])
    got = scrape(reg)
    name = "tulle_tcp_rtt_seconds"
    assert series(got, name + "_count") == {PAIR: 2}
    assert series(got, name + "_sum")[PAIR] == pytest.approx(0.00064)
    assert bucket(got, name + "_bucket", "5e-05") == 1
    assert bucket(got, name + "_bucket", "0.0005") == 1
    assert bucket(got, name + "_bucket", "0.001") == 2


def test_retransmits_counted_by_workload_pair() -> None:
    fm, reg = metrics()
    fm.observe_counts([(samples.tcp_close(retransmits=2), 3), (samples.tcp_close(retransmits=0), 5)])
    got = scrape(reg)
    assert series(got, "tulle_tcp_retransmits_total") == {PAIR: 6}
    # close records are SockTrace flows, not HTTP and not drops
    assert series(got, "tulle_flows_processed_total") == {
        labels(type="SockTrace", subtype="", verdict="FORWARDED", protocol="TCP"): 8}
    assert series(got, "tulle_drop_total") == {}


def test_kernel_drops_by_kernel_reason_and_direction() -> None:
    fm, reg = metrics()
    fm.observe_many([samples.kernel_drop(), samples.kernel_drop(),
                     samples.kernel_drop(reason="TCP_CSUM", code=9), samples.policy_drop()])
    got = scrape(reg)
    assert series(got, "tulle_kernel_drops_total") == {
        labels(reason="NO_SOCKET", direction="ingress"): 2,
        labels(reason="TCP_CSUM", direction="ingress"): 1,
    }  # the datapath's policy drop is not a kernel drop
    assert series(got, "tulle_drop_total")[labels(reason="NO_SOCKET", protocol="TCP")] == 2


def test_kernel_families_are_bounded_like_the_others() -> None:
    cfg = MetricsConfig(families={"tcp_retransmits": FamilyConfig(max_label_values=1),
                                  "tcp_rtt_seconds": FamilyConfig(enabled=False)})
    fm, reg = metrics(cfg)
    fm.observe_many([samples.tcp_close(client=samples.WEB), samples.tcp_close(client=samples.DB)])
    got = scrape(reg)
    assert series(got, "tulle_tcp_retransmits_total") == {
        PAIR: 2, labels(source_workload="other", destination_workload="shop/echo"): 2}
    assert series(got, "tulle_metrics_label_overflow_total")[
        labels(metric="tulle_tcp_retransmits_total", label="source_workload")] == 1
    assert "tulle_tcp_rtt_seconds" not in family_names(reg)


def test_hubble_names_expose_hubble_families_and_labels() -> None:
    fm, reg = metrics(MetricsConfig.from_mapping({"hubble_names": True}))
    fm.observe_many(samples.all_samples() + [samples.kernel_drop()])
    fm.observe_lost("PERF_EVENT_RING_BUFFER", 4)
    got = scrape(reg)
    names = family_names(reg)
    for hubble in ("hubble_flows_processed", "hubble_drop", "hubble_tcp_flags",
                   "hubble_policy_verdicts", "hubble_http_requests",
                   "hubble_http_request_duration_seconds", "hubble_lost_events"):
        assert hubble in names
    assert not {n for n in names if n.startswith("tulle_") and n.replace(
        "tulle_", "hubble_") in names}, "a family must not be exposed under both names"
    http = series(got, "hubble_http_requests_total")
    assert http == {labels(method="GET", protocol="HTTP/1.1", status="200", reporter="client",
                           source_workload="shop/web", destination_workload="shop/echo"): 1}
    durations = series(got, "hubble_http_request_duration_seconds_count")
    assert durations == {labels(method="GET", reporter="client", source_workload="shop/web",
                                destination_workload="shop/echo"): 1}
    assert series(got, "hubble_drop_total")[labels(reason="POLICY_DENIED", protocol="TCP")] == 1
    assert series(got, "hubble_policy_verdicts_total") == {
        labels(direction="ingress", match="none", action="dropped"): 1}
    assert series(got, "hubble_lost_events_total") == {labels(source="perf_event_ring_buffer"): 4}
    # Tulle-only families keep their names
    assert "tulle_kernel_drops" in names and "tulle_metrics_label_overflow" in names


def test_metrics_config_rejects_bad_kernel_settings() -> None:
    with pytest.raises(ValueError, match="tcp_rtt_buckets must be increasing"):
        MetricsConfig(tcp_rtt_buckets=(0.1, 0.01))
    with pytest.raises(ValueError, match="hubble_names must be true or false"):
        MetricsConfig.from_mapping({"hubble_names": "yes"})
    with pytest.raises(ValueError, match="family 'kernel_drops' has no label 'code'"):
        MetricsConfig(families={"kernel_drops": FamilyConfig(labels=("code",))})
    cfg = MetricsConfig.from_mapping({"tcp_connect_buckets": ["0.001", 1]})
    assert cfg.tcp_connect_buckets == (0.001, 1.0)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 10**12), max_size=6, unique=True).map(sorted),
       st.lists(st.one_of(st.integers(0, 10**12), st.sampled_from([0, 100, 10**6])), max_size=40))
def test_a_column_lands_in_the_buckets_its_values_land_in_one_by_one(
        bounds: list[int], values: list[int]) -> None:
    """`_buckets` (sorted once, bisected per bucket) counts what `_bucket` per value does,
    values on a bound included (a bound is its bucket's upper edge)."""
    values += bounds[:2]  # values exactly on bounds
    one_by_one = [0] * (len(bounds) + 2)
    for value in values:
        _bucket(one_by_one, tuple(bounds), value, 1)
    column = [0] * (len(bounds) + 2)
    _buckets(column, tuple(bounds), values)
    assert column == one_by_one
