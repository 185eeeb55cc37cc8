"""Request-split metrics (issue 12 items 3 and 5): one histogram per part and workload pair,
from waypoint flows built and enriched the way the agent does it."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from agent.metrics import FamilyConfig, FlowMetrics, MetricsConfig
from tests.unit.metrics.scrape import labels, scrape, series
from tests.unit.tracing.test_request_printers import FLOW, RECORD, flow_of

NAME = "tulle_request_split_seconds"


def metrics(config: MetricsConfig | None = None) -> tuple[FlowMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    return FlowMetrics(config, registry), registry


def pair(part: str) -> frozenset[tuple[str, str]]:
    return labels(part=part, source_workload="shop/web", destination_workload="shop/echo")


def test_each_part_is_observed_for_the_client_and_the_service_it_dialled() -> None:
    fm, reg = metrics()
    fm.observe_many([FLOW, FLOW])
    got = scrape(reg)
    counts = series(got, NAME + "_count")
    assert counts == {pair(p): 2 for p in ("client_network", "proxy", "upstream_connect",
                                           "upstream_network", "backend")}
    sums = series(got, NAME + "_sum")
    assert sums[pair("backend")] == pytest.approx(2 * 0.0179)
    assert sums[pair("upstream_connect")] == pytest.approx(2 * 0.002)
    assert sum(sums.values()) == pytest.approx(2 * 0.02034)  # the parts add up to the total
    # backend 17.9 ms: in the le=0.025 bucket, not in le=0.01
    buckets = series(got, NAME + "_bucket")
    assert buckets[pair("backend") | labels(le="0.01")] == 0
    assert buckets[pair("backend") | labels(le="0.025")] == 2


def test_the_http_metrics_read_a_waypoint_flow_client_first() -> None:
    """Waypoint flows name the client as source (is_reply false): the pair is not reversed."""
    fm, reg = metrics()
    fm.observe(FLOW)
    (key,) = series(scrape(reg), "tulle_http_requests_total")
    assert dict(key)["source_workload"] == "shop/web"


def test_flows_without_a_split_and_a_disabled_family_observe_nothing() -> None:
    fm, reg = metrics()
    fm.observe(flow_of((*RECORD[:13], None, None)))  # type: ignore[arg-type]
    assert series(scrape(reg), NAME + "_count") == {}
    cfg = MetricsConfig(families={"request_split_seconds": FamilyConfig(enabled=False)})
    fm, reg = metrics(cfg)
    fm.observe(FLOW)
    assert not [k for k in scrape(reg) if k[0].startswith(NAME)]


def test_the_part_label_can_be_kept_alone() -> None:
    cfg = MetricsConfig(families={"request_split_seconds": FamilyConfig(labels=("part",))})
    fm, reg = metrics(cfg)
    fm.observe_many([FLOW])
    assert series(scrape(reg), NAME + "_count") == {labels(part="backend"): 1} | {
        labels(part=p): 1 for p in ("client_network", "proxy", "upstream_connect",
                                    "upstream_network")}


def test_a_pair_over_the_series_cap_is_counted_as_overflow_every_time() -> None:
    """The five parts' cells are remembered per workload pair only when the family admitted
    all five as they are: a pair that overflowed keeps taking the capped path, and the
    first pair keeps its own series however often either is observed."""
    cfg = MetricsConfig(families={"request_split_seconds": FamilyConfig(max_series=5)})
    fm, reg = metrics(cfg)
    other = flow_of((*RECORD[:10], ("10.244.9.9", 40000), *RECORD[11:]))
    for _ in range(3):
        fm.observe_many([FLOW, other])
    counts = series(scrape(reg), NAME + "_count")
    overflow = labels(part="other", source_workload="other", destination_workload="other")
    assert counts == {**{pair(p): 3 for p in ("client_network", "proxy", "upstream_connect",
                                              "upstream_network", "backend")},
                      overflow: 15}
    overflows = series(scrape(reg), "tulle_metrics_label_overflow_total")
    assert overflows[labels(metric=NAME, label="*")] == 15  # each one counted, none cached
