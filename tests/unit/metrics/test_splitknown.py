"""`FlowMetrics`' known-pair path for split flows (agent/metrics/split.py,
``SplitSeries.known``): a waypoint flow's pending splits are found by its source label, its
destination label before collapsing and its Service object, without a call into
`SplitSeries.observe`, and folded later. Whatever path each flow takes, a scrape holds what
counting every flow at once by Prometheus' definition gives."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from agent.flows.flow import Flow, Service
from agent.metrics import FlowMetrics, MetricsConfig
from agent.metrics import split as split_mod
from agent.metrics.split import FOLD_AT
from tests.unit.metrics.scrape import labels, scrape, series
from tests.unit.tracing.test_request_printers import FLOW

NAME = "tulle_request_split_seconds"
PARTS = ("client_network", "proxy", "upstream_connect", "upstream_network", "backend")
BOUNDS_NS = tuple(round(b * 1e9) for b in MetricsConfig().request_split_buckets)
ECHO = Service(name="echo", namespace="shop")
# (flow's destination Service, whether its destination endpoint is the client's own pod
# (not collapsed), the destination label the split series must carry)
VARIANTS: tuple[tuple[Service | None, bool, str], ...] = (
    (ECHO, False, "shop/echo"),  # FLOW itself: the world endpoint, the Service dialled
    (Service(name="echo", namespace="shop"), False, "shop/echo"),  # an equal new object
    (Service(name="cart", namespace="shop"), False, "shop/cart"),  # same raw dst "world"
    (None, False, "world"),  # no Service: the collapsed label stays
    (ECHO, True, "shop/web"),  # a named workload: the Service does not matter
)


def flow(variant: int, parts: tuple[int, ...]) -> Flow:
    service, named, _dst = VARIANTS[variant]
    assert FLOW.tulle is not None
    return replace(FLOW, destination_service=service,
                   destination=FLOW.source if named else FLOW.destination,
                   tulle=replace(FLOW.tulle, request_parts=(sum(parts), *parts)))


def want(observed: list[tuple[int, tuple[int, ...], int]]) -> dict[str, dict[object, float]]:
    """Counts, sums (ns) and cumulative buckets by the definition, from (variant, parts,
    times observed)."""
    counts: dict[object, float] = {}
    sums: dict[object, float] = {}
    buckets: dict[object, float] = {}
    for variant, parts, n in observed:
        for part, v in zip(PARTS, parts, strict=True):
            key = labels(part=part, source_workload="shop/web",
                         destination_workload=VARIANTS[variant][2])
            counts[key] = counts.get(key, 0) + n
            sums[key] = sums.get(key, 0) + v * n
            for i, bound in enumerate(BOUNDS_NS):
                bkey = (key, i)
                buckets[bkey] = buckets.get(bkey, 0) + (n if v <= bound else 0)
    return {"counts": counts, "sums": sums, "buckets": buckets}


def got(registry: CollectorRegistry) -> dict[str, dict[object, float]]:
    samples = scrape(registry)
    counts = series(samples, NAME + "_count")
    sums = {k: round(v * 1e9) for k, v in series(samples, NAME + "_sum").items()}
    buckets: dict[object, float] = {}
    les = {repr(float(b)): i for i, b in enumerate(MetricsConfig().request_split_buckets)}
    for key, v in series(samples, NAME + "_bucket").items():
        le = dict(key)["le"]
        if le != "+Inf":
            buckets[(frozenset(kv for kv in key if kv[0] != "le"), les[le])] = v
    return {"counts": counts, "sums": sums, "buckets": buckets}


PART_NS = st.one_of(st.sampled_from(BOUNDS_NS).flatmap(
    lambda b: st.sampled_from((b - 1, b, b + 1))), st.integers(0, 10**9))
OBSERVATION = st.tuples(st.integers(0, len(VARIANTS) - 1), st.tuples(*[PART_NS] * 5),
                        st.sampled_from((1, 1, 1, 3)))


@settings(max_examples=40, deadline=None)
@given(st.lists(OBSERVATION, min_size=1, max_size=60), st.integers(0, 60),
       st.sampled_from((2, 3, 512)))
def test_every_path_adds_up_to_the_definition(
        observed: list[tuple[int, tuple[int, ...], int]], scrape_at: int, max_pairs: int) -> None:
    """Flows one by one (the known path after a pair's first), counted flows (n > 1, never
    the known path), Services equal but not the same object, a collapsed destination with
    and without a Service, a scrape part-way, and a pair table small enough to restart
    (``MAX_PAIRS``) while flows are known: a final scrape is the definition's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(split_mod, "MAX_PAIRS", max_pairs)
        registry = CollectorRegistry()
        fm = FlowMetrics(None, registry)
        for i, (variant, parts, n) in enumerate(observed):
            if i == scrape_at:
                assert got(registry) == _with_sums_ns(want(observed[:i]))
            if n == 1:
                fm.observe(flow(variant, parts))
            else:
                fm.observe_counts([(flow(variant, parts), n)])
        assert got(registry) == _with_sums_ns(want(observed))


def _with_sums_ns(w: dict[str, dict[object, float]]) -> dict[str, dict[object, float]]:
    return {**w, "sums": {k: round(v) for k, v in w["sums"].items()}}


def test_a_pair_known_by_its_service_folds_at_fold_at_and_at_a_scrape() -> None:
    """Past its first flow a pair's splits wait (the known path), are folded when FOLD_AT
    wait, and what waits is folded before a scrape reads the cells."""
    registry = CollectorRegistry()
    fm = FlowMetrics(None, registry)
    parts = (40_000, 60_000, 0, 100_000, 17_900_000)
    for _ in range(FOLD_AT + 2):
        fm.observe(flow(0, parts))
    known = fm._split.known
    assert [pair for _svc, pair in known.values()]  # the flows took the known path
    assert all(len(pair.pending) == 6 for _svc, pair in known.values())  # one waits
    assert got(registry) == _with_sums_ns(want([(0, parts, FOLD_AT + 2)]))
    assert all(not pair.pending for _svc, pair in known.values())  # folded by the scrape


def test_a_known_entry_is_never_taken_for_another_service_at_the_same_address() -> None:
    """The known table holds each Service it was keyed by, and a flow takes an entry only
    for that very object: another Service whose object reuses a dead one's id still gets
    its own series."""
    registry = CollectorRegistry()
    fm = FlowMetrics(None, registry)
    parts = (1, 2, 0, 3, 4)
    for _ in range(3):
        fm.observe(flow(0, parts))  # shop/echo
        fm.observe(flow(2, parts))  # shop/cart, the same raw destination ("world")
    known = fm._split.known
    cart = VARIANTS[2][0]
    ((key, (_svc, _cart_pair)),) = [(k, e) for k, e in known.items() if e[0] is cart]
    ((_echo_svc, echo_pair),) = [e for e in known.values() if e[0] is ECHO]
    known[key] = (ECHO, echo_pair)  # as if ECHO's entry had been made under cart's id
    for _ in range(2):
        fm.observe(flow(2, parts))  # its Service is not ECHO: not that entry
    assert got(registry) == _with_sums_ns(want([(0, parts, 3), (2, parts, 5)]))


def test_the_known_table_stays_bounded_as_services_are_rebuilt() -> None:
    """Every endpoint-index rebuild hands flows new Service objects (the keys hold their
    ids), while the pair table stays small: the known table must not grow with the rebuilds,
    and what the flows counted is unchanged."""
    registry = CollectorRegistry()
    fm = FlowMetrics(None, registry)
    parts = (1, 2, 0, 3, 4)
    rebuilds = split_mod.MAX_KNOWN + 50
    for _ in range(rebuilds):
        fm.observe(flow(0, parts))  # the pair becomes known
        service = Service(name="echo", namespace="shop")  # this rebuild's object
        fm.observe(replace(flow(0, parts), destination_service=service))
    assert len(fm._split.known) <= split_mod.MAX_KNOWN
    assert got(registry) == _with_sums_ns(want([(0, parts, 2 * rebuilds)]))
