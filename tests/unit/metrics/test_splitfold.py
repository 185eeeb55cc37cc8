"""The split histograms' deferred fold (agent/metrics/split.py): a pair's splits wait in a
flat list and go into its cells in one sort per part, at ``FOLD_AT``, past ``MAX_PAIRS`` or
before a scrape. Whatever waits, a scrape shows every observation made before it."""

from __future__ import annotations

from bisect import bisect_left

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.flows.flow import RequestSplit, Service
from agent.metrics import split as split_mod
from agent.metrics.series import Cell, Series
from agent.metrics.split import FOLD_AT, PART_LABELS, SplitSeries, fold

BOUNDS = (10, 100, 1_000, 10_000)


def new_series(name: str, suffix: str = "", histogram: int = 0) -> Series:
    return Series(name, ("part", "source_workload", "destination_workload"),
                  ("part", "source_workload", "destination_workload"),
                  max_values=10_000, max_series=100_000, overflow_value="other", overflow={},
                  new_cell=lambda: [0] * (histogram + 2))


def definition(values: list[int], n: int = 1) -> Cell:
    """A histogram cell by Prometheus' definition: bucket i holds the values v with
    bounds[i-1] < v <= bounds[i] (the last one: above every bound), then the sum."""
    cell = [0] * (len(BOUNDS) + 2)
    for v in values:
        cell[bisect_left(BOUNDS, v)] += n
        cell[-1] += v * n
    return cell


def parts_of(split: RequestSplit) -> tuple[int, ...]:
    return tuple(getattr(split, field) for field, _part in PART_LABELS)


def cells_of(ss: SplitSeries, src: str, dst: str) -> list[Cell]:
    assert ss.hist is not None
    return [ss.hist.series[(part, src, dst)] for _field, part in PART_LABELS]


PART = st.one_of(st.sampled_from([b + d for b in BOUNDS for d in (-1, 0, 1)]),
                 st.integers(-10**6, 10**12))
SPLITS = st.lists(st.tuples(*[PART] * 5).map(lambda p: RequestSplit(sum(p), *p)),
                  max_size=3 * FOLD_AT)


@settings(max_examples=60, deadline=None)
@given(SPLITS)
def test_fold_counts_as_the_definition_for_any_values(splits: list[RequestSplit]) -> None:
    """Bounds hit exactly, next to them, above all, negative (a split read from JSON)."""
    cells = tuple([0] * (len(BOUNDS) + 2) for _ in PART_LABELS)
    pending = [v for s in splits for v in s]  # flat, as a pair keeps them
    fold(cells, BOUNDS, pending)
    for i, cell in enumerate(cells):
        assert cell == definition([parts_of(s)[i] for s in splits])
    assert pending == []  # emptied


@settings(max_examples=30, deadline=None)
@given(SPLITS, st.lists(st.integers(1, 5), min_size=1, max_size=4))
def test_pending_folds_and_counted_flows_add_up_to_every_observation(
        splits: list[RequestSplit], counted: list[int]) -> None:
    """Flows observed one by one (folded at FOLD_AT and at flush) and counted flows
    (observed at once, n times) in the same cells: each cell is the definition's."""
    ss = SplitSeries(new_series, tuple(b / 1e9 for b in BOUNDS))
    one = RequestSplit(6, 1, 2, 0, 3, 0)
    for s in splits:
        ss.observe(s, "a/web", "b/echo", None, 1)
    for n in counted:
        ss.observe(one, "a/web", "b/echo", None, n)
    ss.flush()
    for i, cell in enumerate(cells_of(ss, "a/web", "b/echo")):
        values = [parts_of(s)[i] for s in splits]
        want = definition(values)
        for n in counted:
            want = [w + o for w, o in zip(want, definition([parts_of(one)[i]], n), strict=True)]
        assert cell == want
    before = [list(c) for c in cells_of(ss, "a/web", "b/echo")]
    ss.flush()  # nothing left to fold: the cells stay
    assert cells_of(ss, "a/web", "b/echo") == before


def test_a_pair_folds_at_fold_at_without_a_scrape() -> None:
    ss = SplitSeries(new_series, tuple(b / 1e9 for b in BOUNDS))
    split = RequestSplit(55, 5, 50, 0, 0, 0)
    for _ in range(FOLD_AT + 1):  # the first goes in at once, then FOLD_AT wait and fold
        ss.observe(split, "a/web", "b/echo", None, 1)
    assert cells_of(ss, "a/web", "b/echo")[1] == definition([50] * (FOLD_AT + 1))
    ss.observe(split, "a/web", "b/echo", None, 1)  # waits
    assert cells_of(ss, "a/web", "b/echo")[1] == definition([50] * (FOLD_AT + 1))
    ss.flush()
    assert cells_of(ss, "a/web", "b/echo")[1] == definition([50] * (FOLD_AT + 2))


def test_past_max_pairs_pending_splits_are_folded_before_the_table_restarts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Many workload pairs cannot hold more than MAX_PAIRS * FOLD_AT splits back: the
    table is folded and emptied, and no observation is lost or counted twice."""
    monkeypatch.setattr(split_mod, "MAX_PAIRS", 3)
    ss = SplitSeries(new_series, tuple(b / 1e9 for b in BOUNDS))
    split = RequestSplit(1_111, 1, 10, 100, 1_000, 0)
    pairs = [(f"ns/c{i}", "ns/server") for i in range(7)]
    for _ in range(4):
        for src, dst in pairs:
            ss.observe(split, src, dst, None, 1)
    assert len(ss._pairs) <= 3
    ss.flush()
    for src, dst in pairs:
        got = cells_of(ss, src, dst)
        for i, cell in enumerate(got):
            assert cell == definition([parts_of(split)[i]] * 4)


def test_a_collapsed_destination_is_the_service_dialled_on_both_paths() -> None:
    ss = SplitSeries(new_series, tuple(b / 1e9 for b in BOUNDS))
    svc = Service(name="echo", namespace="shop")
    split = RequestSplit(4, 1, 1, 0, 1, 1)
    for _ in range(3):
        ss.observe(split, "shop/web", "world", svc, 1)
    ss.flush()
    assert cells_of(ss, "shop/web", "shop/echo")[0] == definition([1, 1, 1])


def test_a_pending_list_that_is_not_whole_splits_is_refused() -> None:
    """A flat list out of step (a parts tuple of another width got in) would count values
    under the wrong parts: the fold names it instead."""
    cells = tuple([0] * (len(BOUNDS) + 2) for _ in PART_LABELS)
    with pytest.raises(ValueError, match="not a multiple of 6"):
        fold(cells, BOUNDS, [1, 2, 3, 4, 5, 6, 7])
    assert all(cell == [0] * (len(BOUNDS) + 2) for cell in cells)  # nothing counted
