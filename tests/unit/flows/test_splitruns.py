"""``split_runs``: the metrics' fold of many common requests, where a part every request
shares (both RTTs from the waypoint's per-socket cache, upstream_connect on a pooled
connection) is one int instead of a list; expanded, it is ``split_lean`` of each request,
and the histograms it folds into are the ones of the requests one by one."""

from __future__ import annotations

from bisect import bisect_left

from hypothesis import given
from hypothesis import strategies as st

from agent.flows.reqsplit import LEAN_ROW, split_lean
from agent.flows.splitcolumns import split_columns, split_runs
from agent.metrics.split import fold_columns

START = 1_700_000_000_000
BOUNDS = (10_000, 30_000, 50_000, 100_000)


@st.composite
def shared_rtts(draw: st.DrawFn) -> list[tuple[int, tuple[int, ...]]]:
    """Usual requests (``split_lean``'s first branch) whose RTTs are one value each for
    the batch, as the waypoint's RTT cache gives them; sometimes one request differs."""
    rtt = draw(st.sampled_from((0, 1, 60, (1 << 52) - 1, 1 << 52, -1)))
    upstream = draw(st.sampled_from((0, 20, 55, 10**6, (1 << 52) - 1, 1 << 52, -5)))
    batch = []
    for _ in range(draw(st.integers(1, 30))):
        span = draw(st.integers(1, 10**6))
        start = draw(st.integers(1, 10**15))
        sent = start + draw(st.integers(1, span))
        first = draw(st.integers(sent, start + span))
        batch.append((span, (rtt, start, sent, first, upstream)))
    if draw(st.booleans()):  # one request's RTT (client or upstream) differs
        at = draw(st.integers(0, len(batch) - 1))
        which = draw(st.sampled_from((0, 4)))
        span, lean = batch[at]
        changed = list(lean)
        changed[which] = draw(st.integers(0, 10**6))
        batch[at] = (span, tuple(changed))
    return batch


def runs(batch: list[tuple[int, tuple[int, ...]]]) -> tuple[list[int] | int, ...]:
    return split_runs([span for span, _ in batch],
                      b"".join(LEAN_ROW.pack(*lean) for _, lean in batch))


def eager(batch: list[tuple[int, tuple[int, ...]]]) -> tuple[list[int], ...]:
    parts = [split_lean(span, lean) for span, lean in batch]
    return tuple([p[i] for p in parts] for i in range(1, 6))


@given(shared_rtts())
def test_runs_expanded_are_the_requests_split_one_by_one(
        batch: list[tuple[int, tuple[int, ...]]]) -> None:
    n = len(batch)
    expanded = tuple([c] * n if isinstance(c, int) else c for c in runs(batch))
    assert expanded == eager(batch)
    assert split_columns([s for s, _ in batch],
                         b"".join(LEAN_ROW.pack(*lean) for _, lean in batch)) == eager(batch)


def test_shared_parts_are_one_int() -> None:
    """Both RTTs shared and inside every window: client_network, upstream_connect and
    upstream_network are ints; proxy and backend, which vary, are lists."""
    batch = [(95_000 + i, (60, START + i, START + i + 30_000, START + i + 70_000 + i, 20))
             for i in range(5)]
    client, proxy, connect, network, backend = runs(batch)
    assert (client, connect, network) == (60_000, 0, 20_000)
    assert isinstance(proxy, list) and isinstance(backend, list)
    # no window holds the upstream RTT: network is each window, backend is 0 for all
    late = [(95_000, (60, START, START + 30_000, START + 70_000, 55))] * 3
    assert runs(late)[3] == [40_000] * 3 and runs(late)[4] == 0
    # one request with another client RTT: that part is a list again
    mixed = [*batch, (95_000, (61, START, START + 30_000, START + 70_000, 20))]
    assert runs(mixed)[0] == [60_000] * 5 + [61_000]


@given(shared_rtts())
def test_folding_runs_counts_as_the_requests_one_by_one(
        batch: list[tuple[int, tuple[int, ...]]]) -> None:
    """Each cell (buckets by Prometheus' ``le``, +Inf, sum) as if every request had been
    observed on its own."""
    cells = tuple([0] * (len(BOUNDS) + 2) for _ in range(5))
    fold_columns(cells, BOUNDS, runs(batch), len(batch))
    want = tuple([0] * (len(BOUNDS) + 2) for _ in range(5))
    for column, cell in zip(eager(batch), want, strict=True):
        for v in column:
            cell[bisect_left(BOUNDS, v)] += 1
            cell[-1] += v
    assert cells == want
