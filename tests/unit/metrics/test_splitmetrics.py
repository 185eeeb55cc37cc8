"""Request-split metrics (issue 12 items 3 and 5): one histogram per part and workload pair,
from waypoint flows built and enriched the way the agent does it."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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


BOUNDS_NS = tuple(int(Decimal(repr(b)) * 10**9) for b in MetricsConfig().request_split_buckets)
PART_FIELDS = {"client_network": "client_network_ns", "proxy": "proxy_ns",
               "upstream_connect": "upstream_connect_ns",
               "upstream_network": "upstream_network_ns", "backend": "backend_ns"}
# part values at, beside and between the bounds, and beyond the last one
PART_NS = st.one_of(st.sampled_from(BOUNDS_NS).flatmap(
    lambda b: st.sampled_from((b - 1, b, b + 1))), st.integers(0, 10**12))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(*[PART_NS] * 5), min_size=1, max_size=40))
def test_the_histograms_hold_what_the_definition_says_for_any_splits(
        parts: list[tuple[int, ...]]) -> None:
    """Each part's histogram against Prometheus' definition computed here from the flows
    alone (exact decimal bounds, cumulative ``le``, sums in seconds): whatever the agent
    does to observe faster, the series, counts, buckets and sums stay these."""
    fm, reg = metrics()
    flows = []
    for p in parts:
        split = (sum(p), *p)  # a flow's parts as the agent keeps them (a plain tuple)
        flows.append(replace(FLOW, tulle=replace(FLOW.tulle, request_parts=split)))
    fm.observe_many(flows)
    got = scrape(reg)
    want_counts, want_sums, want_buckets = {}, {}, {}
    for part, field in PART_FIELDS.items():
        values = [getattr(f.tulle.request, field) for f in flows]  # type: ignore[union-attr]
        want_counts[pair(part)] = len(values)
        want_sums[pair(part)] = sum(values) / 1e9
        for bound, b_ns in zip(MetricsConfig().request_split_buckets, BOUNDS_NS, strict=True):
            key = pair(part) | labels(le=_le(bound))
            want_buckets[key] = sum(1 for v in values if v <= b_ns)
        want_buckets[pair(part) | labels(le="+Inf")] = len(values)
    assert series(got, NAME + "_count") == want_counts
    assert series(got, NAME + "_sum") == pytest.approx(want_sums, rel=1e-12)
    assert series(got, NAME + "_bucket") == want_buckets


def _le(bound: float) -> str:
    """The ``le`` label prometheus_client writes for a bound (its float repr)."""
    return repr(float(bound))
