"""Request-split metrics: where the waypoint's requests spent their time, by part.

- ``tulle_request_split_seconds{part,source_workload,destination_workload}``: one
  observation per part of every L7 flow that carries a split (``tulle.request``); ``part``
  is ``client_network``, ``proxy``, ``upstream_connect``, ``upstream_network`` or
  ``backend`` (five values: bounded). A request that opened no upstream connection
  observes 0 for ``upstream_connect``, so every part has the same count and the parts'
  sums add up to the requests' total time.

The destination is the serving workload when the flow names one, else the Service the
client dialled (a waypoint flow's destination is the ClusterIP), never an address.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence

from agent.flows.flow import RequestParts, RequestSplit, Service
from agent.flows.reqsplit import LEAN_ROW, PARTS_WIDTH, split_lean
from agent.flows.splitcolumns import split_runs
from agent.metrics.series import Cell, Series

SPLIT_HELP = {
    "request_split_seconds": "Where L7 requests through the waypoint spent their time, by "
                             "part (client_network, proxy, upstream_connect, "
                             "upstream_network, backend), in seconds.",
}
PART_LABELS = (("client_network_ns", "client_network"), ("proxy_ns", "proxy"),
               ("upstream_connect_ns", "upstream_connect"),
               ("upstream_network_ns", "upstream_network"), ("backend_ns", "backend"))
# Where each part is in a flow's parts (``TulleInfo.request_parts``: RequestSplit's order).
_INDEXES = tuple(RequestSplit._fields.index(field) for field, _part in PART_LABELS)
_COLLAPSED = frozenset({"world", "unknown"})
# A pair's splits wait in its list until this many are there (or a scrape comes), then go
# into its five histograms in one sort per part: six values added to a flat list per flow
# instead of five bucket searches and ten cell updates (bench/results/tracecost-2026-12-06-s12.md;
# flat, not a list of tuples: tracecut-2026-12-06-s16.md).
FOLD_AT = 128
FOLD_LEN = FOLD_AT * PARTS_WIDTH  # a pair's pending values when FOLD_AT splits wait
# Pairs whose cells (and pending splits) are remembered; past this many, every pending
# split is folded and the table starts again: at most MAX_PAIRS * FOLD_AT splits wait.
MAX_PAIRS = 512
MAX_KNOWN = 4 * MAX_PAIRS  # the shortcut table of known pairs (SplitSeries.known)
_NO_SERVICE = object()  # SplitSeries.last_service when no entry is remembered (None is a value)


class _Pair:
    """A workload pair's five cells (in PART_LABELS order) and its requests not yet in them:
    splits end to end in one flat list (``pending``: ``PARTS_WIDTH`` values a split, in
    RequestSplit's order), and common requests not split yet (``lean``: their rows of
    clock readings end to end, the bytes the flows carry; ``spans``: their spans), split
    together when folded (`split_columns`). At most ``FOLD_AT`` of each wait."""

    __slots__ = ("cells", "lean", "pending", "spans")

    def __init__(self, cells: tuple[Cell, ...]) -> None:
        self.cells = cells
        self.pending: list[int] = []
        self.lean = bytearray()
        self.spans: list[int] = []


def fold(cells: tuple[Cell, ...], bounds: tuple[int, ...], pending: list[int]) -> None:
    """Count the splits in ``pending`` (flat: ``PARTS_WIDTH`` values each, in
    RequestSplit's order, `_Pair.pending`) into their five histograms (in PART_LABELS
    order), as one observation each, and empty the list: a value goes in the first bucket
    whose bound it does not exceed (Prometheus' ``le``), which over a part's sorted values
    is the count up to each bound (``bisect_right``) less the count up to the previous
    one. A part's values are one strided slice of the flat list (a C copy: no tuple per
    split to take apart, as ``zip(*splits)`` over kept parts tuples did), sorted in place
    (`fold_columns`). Sorting is C and cheap here: the RTT parts repeat one value for a
    second at a time (the waypoint's RTT cache) and upstream_connect is nearly always 0."""
    if not pending:
        return
    if len(pending) % PARTS_WIDTH:
        raise ValueError(f"pending splits hold {len(pending)} values, not a multiple of "
                         f"{PARTS_WIDTH}")
    fold_columns(cells, bounds, [pending[at::PARTS_WIDTH] for at in _INDEXES],
                 len(pending) // PARTS_WIDTH)
    pending.clear()


def fold_lean(cells: tuple[Cell, ...], bounds: tuple[int, ...], spans: list[int],
              lean: bytearray) -> None:
    """Count requests not split yet (`_Pair.lean`, `_Pair.spans`) as `fold` counts their
    splits, and empty both lists: split together, by columns (`split_runs`: a part all
    of them share is counted once)."""
    if spans:
        fold_columns(cells, bounds, split_runs(spans, lean), len(spans))
    spans.clear()
    lean.clear()


def fold_columns(cells: tuple[Cell, ...], bounds: tuple[int, ...],
                 columns: Sequence[list[int] | int], count: int) -> None:
    """Count each part's values into its histogram's cell, one observation each, for
    ``count`` requests: a column per cell, a list of them all (sorted here, in place), or
    one int that every request has (`split_runs`), counted once as ``count`` of them (the
    bucket `SplitSeries.observe` puts one in, ``bisect_left``)."""
    for cell, values in zip(cells, columns, strict=True):
        if isinstance(values, int):
            cell[bisect_left(bounds, values)] += count
            cell[-1] += values * count
            continue
        total = len(values)
        values.sort()
        below = 0
        for i, bound in enumerate(bounds):
            upto = bisect_right(values, bound, below)
            cell[i] += upto - below
            below = upto
            if below == total:  # the rest of the buckets take none of these
                break
        cell[len(bounds)] += total - below  # +Inf
        cell[-1] += sum(values)


class SplitSeries:
    """The split family; `observe` and `flush` are called under `FlowMetrics`' lock, and
    `flush` before every read of the cells (a scrape): what waits in a pair's list is in
    no cell yet."""

    def __init__(self, series: Callable[..., Series | None], bounds_s: tuple[float, ...]) -> None:
        self.hist = series("request_split_seconds", "", histogram=len(bounds_s))
        self._bounds_ns = tuple(round(b * 1e9) for b in bounds_s)
        # (src, dst) -> the five parts' cells and pending splits, once the series caches
        # all five (one lookup per flow instead of five: the agent observes every waypoint
        # request). Bounded by MAX_PAIRS; a pair only lands here when all its keys did.
        self._pairs: dict[tuple[str, str], _Pair] = {}
        # (src, dst before collapsing, id(the flow's Service)) -> (that Service, its pair):
        # what `FlowMetrics` looks a waypoint flow's pair up by, without a call here or a
        # label built per flow (the Service is held, and checked by identity: no id reuse).
        # Emptied with `_pairs`.
        self.known: dict[tuple[str, str, int], tuple[Service | None, _Pair]] = {}
        # The entry of `known` the last flow took, and its key's labels and Service:
        # `HttpSeries.observe` takes it again, with no key built and no lookup, when the
        # next flow has the same objects (consecutive requests of one client workload to
        # one Service: most of a batch). Forgotten whenever `known` is emptied.
        self.last_service: object = _NO_SERVICE
        self.last_src = self.last_dst = ""
        self.last_known: tuple[Service | None, _Pair] | None = None

    def remember(self, src: str, dst: str, known: tuple[Service | None, _Pair]) -> None:
        """``known`` (an entry of `known`, taken for a flow with these labels and its
        Service) is the one the next flow with the same objects takes."""
        self.last_service, self.last_src, self.last_dst = known[0], src, dst
        self.last_known = known

    def _forget(self) -> None:
        self.last_service, self.last_known = _NO_SERVICE, None

    def flush(self) -> None:
        """Fold every pair's waiting requests into its cells."""
        bounds = self._bounds_ns
        for pair in self._pairs.values():
            if pair.pending:
                fold(pair.cells, bounds, pair.pending)
            if pair.spans:
                fold_lean(pair.cells, bounds, pair.spans, pair.lean)

    def fold(self, pair: _Pair) -> None:
        """Fold one pair's waiting requests (`FlowMetrics`, at ``FOLD_AT`` of a kind)."""
        fold(pair.cells, self._bounds_ns, pair.pending)
        fold_lean(pair.cells, self._bounds_ns, pair.spans, pair.lean)

    def _cells(self, s: Series, src: str, dst: str) -> tuple[Cell, ...]:
        cache = s.cache
        cells = []
        for _field, part in PART_LABELS:
            raw = (part, src, dst)
            cell = cache.get(raw)
            if cell is None:
                cell = s.admit(raw, raw)
            cells.append(cell)
        if all((part, src, dst) in cache for _field, part in PART_LABELS):
            if len(self._pairs) >= MAX_PAIRS:
                self.flush()
                self._pairs.clear()
                self.known.clear()
                self._forget()
            self._pairs[(src, dst)] = _Pair(tuple(cells))
        return tuple(cells)

    def observe(self, split: RequestParts | bytes, src: str, dst: str,
                service: Service | None, n: int, span: int = 0) -> None:
        """``src``/``dst``: the client's and the server's workload labels (the HTTP
        families' own, computed once per flow by `FlowMetrics`). ``split``: the parts, or
        the flow's row of clock readings (bytes: ``TulleInfo.request_parts``) and then
        ``span`` is the flow's (``duration_ns``)."""
        s = self.hist
        if s is None:
            return
        raw_dst = dst
        if dst in _COLLAPSED and service is not None and service.name:
            dst = f"{service.namespace}/{service.name}"
        pair = self._pairs.get((src, dst))
        if pair is not None and n == 1:  # every waypoint flow, once its pair is known
            known = self.known
            # Keyed by the Service object's id: every endpoint-index rebuild makes new ones,
            # so old keys are never hit again. A miss only takes the path above.
            if len(known) >= MAX_KNOWN:
                known.clear()
                self._forget()
            known[(src, raw_dst, id(service))] = (service, pair)
            if type(split) is bytes:
                pair.lean += split
                pair.spans.append(span)
                if len(pair.spans) >= FOLD_AT:
                    fold_lean(pair.cells, self._bounds_ns, pair.spans, pair.lean)
                return
            pending = pair.pending
            pending += split
            if len(pending) >= FOLD_LEN:
                fold(pair.cells, self._bounds_ns, pending)
            return
        if type(split) is bytes:
            split = split_lean(span, LEAN_ROW.unpack(split))
        # A pair's first flow, one over a cap (never remembered), or a counted flow: now.
        cells = pair.cells if pair is not None else self._cells(s, src, dst)
        bounds = self._bounds_ns
        for cell, i in zip(cells, _INDEXES, strict=True):
            v = split[i]
            cell[bisect_left(bounds, v)] += n
            cell[-1] += v * n
