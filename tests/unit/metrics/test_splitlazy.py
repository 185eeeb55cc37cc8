"""The split metrics from flows that keep their row of clock readings (bytes: the agent's
common waypoint flow, split only when read): the rows wait per workload pair and are split
together when folded (at ``FOLD_AT`` a pair, and at every scrape). Whatever the readings,
the batches and where the scrapes and caps fall, the histograms are those of the same
flows split one by one when built; and what waits stays bounded."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from agent.flows.flow import Flow
from agent.flows.reqsplit import LEAN, LEAN_ROW, PARTS_WIDTH, split_lean
from agent.metrics import FlowMetrics
from agent.metrics import split as split_mod
from agent.metrics.split import FOLD_AT
from tests.unit.metrics.scrape import scrape
from tests.unit.metrics.test_splitknown import VARIANTS
from tests.unit.metrics.test_splitknown import flow as variant_flow

START = 1_700_000_000_000
NAME = "tulle_request_split_seconds"

READINGS = st.one_of(
    # usual: sent after the start, answered inside the span (the column path)
    st.tuples(st.integers(1, 10**9), st.integers(0, 10**4), st.integers(1, 10**9),
              st.integers(0, 10**9), st.integers(0, 10**4)).map(
        lambda t: (t[0] + t[2], (t[1], START, START + t[0], START + t[0] + min(t[3], t[2]),
                                 t[4]))),
    # anything (not sent, no answer, negative RTTs, out of order): one by one
    st.tuples(st.integers(-10**9, 10**10),
              st.tuples(*[st.integers(-(1 << 63), (1 << 63) - 1)] * LEAN)),
)
# (variant of destination, (span, readings), times observed: 1 or a counted flow)
OBSERVATION = st.tuples(st.integers(0, len(VARIANTS) - 1), READINGS,
                        st.sampled_from((1, 1, 1, 1, 3)))


def lean_flow(variant: int, span: int, lean: tuple[int, ...], split: bool) -> Flow:
    """A waypoint flow keeping its readings, or (``split``) the same flow split when built."""
    base = variant_flow(variant, (0, 0, 0, 0, 0))
    assert base.tulle is not None
    parts = split_lean(span, lean) if split else LEAN_ROW.pack(*lean)
    return replace(base, tulle=replace(base.tulle, duration_ns=span, request_parts=parts))


def run(observed: list[tuple[int, tuple[int, tuple[int, ...]], int]], scrapes: set[int],
        split: bool) -> list[dict[tuple[str, object], float]]:
    """The split family's samples at each scrape and at the end."""
    registry = CollectorRegistry()
    fm = FlowMetrics(None, registry)
    out: list[dict[tuple[str, object], float]] = []
    for i, (variant, (span, lean), n) in enumerate(observed):
        if i in scrapes:
            out.append(_split_samples(registry))
        f = lean_flow(variant, span, lean, split)
        if n == 1:
            fm.observe(f)
        else:
            fm.observe_counts([(f, n)])
    out.append(_split_samples(registry))
    return out


def _split_samples(registry: CollectorRegistry) -> dict[tuple[str, object], float]:
    return {k: value for k, value in scrape(registry).items() if k[0].startswith(NAME)}


@settings(max_examples=40, deadline=None)
@given(st.lists(OBSERVATION, min_size=1, max_size=60), st.sets(st.integers(0, 60)),
       st.sampled_from((2, 3, 512)), st.sampled_from((1, 2, 5, FOLD_AT)))
def test_readings_folded_later_count_as_splits_counted_at_once(
        observed: list[tuple[int, tuple[int, tuple[int, ...]], int]], scrapes: set[int],
        max_pairs: int, fold_at: int) -> None:
    """Pairs known and new, counted flows, scrapes part-way, a pair table small enough to
    restart, and a cap reached often (``fold_at``) or not at all: every scrape equals the
    eager one's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(split_mod, "MAX_PAIRS", max_pairs)
        mp.setattr(split_mod, "FOLD_AT", fold_at)
        mp.setattr("agent.metrics.http.FOLD_AT", fold_at)
        assert run(observed, scrapes, split=False) == run(observed, scrapes, split=True)


def test_at_the_cap_and_across_scrapes_a_batch_counts_once() -> None:
    """A pair's readings one short of FOLD_AT, at it, one past it, then a scrape, then
    more: each scrape equals the eager one's, and nothing is counted twice."""
    usual = (95_000, (60, START, START + 30_000, START + 70_000, 55))
    odd = (95_000, (60, START, START, START + 70_000, 55))  # sent at the start: one by one
    observed = [(0, usual if i % 7 else odd, 1) for i in range(3 * FOLD_AT + 1)]
    scrapes = {FOLD_AT - 1, FOLD_AT, FOLD_AT + 1, 2 * FOLD_AT}
    lazy = run(observed, scrapes, split=False)
    assert lazy == run(observed, scrapes, split=True)
    counts = [sum(v for (name, _k), v in s.items() if name == NAME + "_count") for s in lazy]
    # five parts per request: FOLD_AT - 1, FOLD_AT, ... requests seen at each scrape
    assert counts == [5 * n for n in (FOLD_AT - 1, FOLD_AT, FOLD_AT + 1, 2 * FOLD_AT,
                                      3 * FOLD_AT + 1)]


def test_what_waits_stays_bounded() -> None:
    """Many flows and no scrape: no pair holds more than FOLD_AT requests' readings (or
    splits) waiting, and the pair table its cap."""
    fm = FlowMetrics(None, CollectorRegistry())
    usual = (95_000, (60, START, START + 30_000, START + 70_000, 55))
    for i in range(10 * FOLD_AT + 3):
        fm.observe(lean_flow(i % len(VARIANTS), *usual, split=False))
        fm.observe(lean_flow(i % len(VARIANTS), *usual, split=True))
    pairs = list(fm._split._pairs.values())
    assert pairs and len(pairs) <= split_mod.MAX_PAIRS
    assert any(pair.spans for pair in pairs)  # readings do wait (the lazy path was taken)
    for pair in pairs:
        assert len(pair.spans) < FOLD_AT and len(pair.lean) == 8 * LEAN * len(pair.spans)
        assert len(pair.pending) < FOLD_AT * PARTS_WIDTH
