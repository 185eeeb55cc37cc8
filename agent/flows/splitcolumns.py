"""The request split of many common requests at once (``split_columns``), as the agent's
metrics fold them (`agent.metrics.split`): what ``reqsplit.split_lean`` gives each, from
their rows of clock readings as the waypoint's column carried them (bytes), at a
fraction of its cost. Pure.

Each column (every request's start, say) becomes one Python integer, 64 bits a request
(a C conversion of the rows' bytes), so one big-integer subtraction subtracts the whole
column: no Python frame and no integer object per request and operation. Every input is
first checked to be in [0, 2^62) (``_fits``: two bits per lane, one AND). A difference
then leaves each lane in [0, 2^62) exactly when no lane's difference is negative: a
negative one borrows, which sets its lane's top bits. So ``_fits`` of a difference also
checks an inequality for the whole column, and that is how ``split_lean``'s first branch
(the usual request: 0 < start < sent <= first <= start + span) is recognised. A batch
where any check fails is split request by request (``split_lean``).
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence

from agent.flows.reqsplit import LEAN, LEAN_ROW, split_lean

Columns = tuple[list[int], ...]
Runs = tuple[list[int] | int, ...]  # `split_runs`: an int is every request's value
_TOP2 = 0xC000_0000_0000_0000  # a lane with either bit set is not in [0, 2^62)
_TOP12 = 0xFFF0_0000_0000_0000  # nor under 2^52 (an RTT in µs that * 1000 still fits)
_RTT_LIMIT = 1 << 52
_MASKS: dict[tuple[int, int], int] = {}  # (lanes, pattern) -> mask; a few sizes in use


def _mask(lanes: int, pattern: int) -> int:
    mask = _MASKS.get((lanes, pattern))
    if mask is None:
        if len(_MASKS) > 64:
            _MASKS.clear()
        mask = _MASKS[(lanes, pattern)] = _big(array("Q", [pattern]) * lanes)
    return mask


def _big(values: array) -> int:
    """A column as one integer, value i in bits 64i..64i+63."""
    return int.from_bytes(values.tobytes(), sys.byteorder)


def _fits(big: int, lanes: int, pattern: int = _TOP2) -> bool:
    """Whether every lane of ``big`` is in [0, 2^62) (``_TOP2``): for a difference of
    columns in that range, whether no lane's difference is negative."""
    return big >= 0 and not big & _mask(lanes, pattern)


def _list(big: int, lanes: int) -> list[int]:
    """The lanes of ``big`` (checked by ``_fits``) as integers."""
    values = array("q")
    values.frombytes(big.to_bytes(8 * lanes, sys.byteorder))
    return values.tolist()


def split_columns(spans: Sequence[int], rows: bytes | bytearray) -> Columns:
    """``split_lean`` of many requests: ``spans`` their spans and ``rows`` their rows
    (``reqsplit.LEAN_ROW``) end to end, in the same order; five columns, one per part in
    ``PARTS`` order (client_network, proxy, upstream_connect, upstream_network, backend).
    tests/unit/flows/test_splitcolumns checks it against ``split_lean`` for any
    readings."""
    n = len(spans)
    return tuple([column] * n if isinstance(column, int) else column
                 for column in split_runs(spans, rows))


def split_runs(spans: Sequence[int], rows: bytes | bytearray) -> Runs:
    """`split_columns`, except that a part every request has the same value of is that
    value (an int), not a list: the metrics count it into its histogram once
    (`agent.metrics.split.fold_columns`). In the lab and in production most batches are
    like that: both RTTs come from the waypoint's per-socket cache (read again once a
    second) and upstream_connect is 0 on a pooled connection; so of the five parts only
    proxy and backend vary request by request."""
    n = len(spans)
    if len(rows) != n * LEAN_ROW.size:
        raise ValueError(f"{len(rows)} bytes of clock readings for {n} requests: not "
                         f"{LEAN_ROW.size} each")
    if not n:
        return [], [], [], [], []
    fast = _usual(n, spans, rows)
    if fast is not None:
        return fast
    parts = [split_lean(span, row)
             for span, row in zip(spans, LEAN_ROW.iter_unpack(rows), strict=True)]
    return tuple(list(column) for column in zip(*parts, strict=True))[1:]


def _same(column: array, n: int) -> int | None:
    """The value every lane of ``column`` holds, when that is one in [0, 2^52) (an RTT in
    µs that * 1000 still fits in a lane); else None. One C compare of the bytes, no int
    object per lane."""
    value = column[0]
    if not 0 <= value < _RTT_LIMIT:
        return None
    return value if column.tobytes() == array("q", [value]).tobytes() * n else None


def _usual(n: int, spans: Sequence[int], rows: bytes | bytearray) -> Runs | None:
    """``split_runs`` when every request is the usual one and every reading and span
    is in [0, 2^62) (the RTTs under 2^52); else None."""
    readings = array("q")
    readings.frombytes(rows)
    if sys.byteorder != "little":
        readings.byteswap()
    try:
        span_col = array("q", spans)
    except OverflowError:  # beyond 64 bits
        return None
    start, sent = _big(readings[1::LEAN]), _big(readings[2::LEAN])
    first, span = _big(readings[3::LEAN]), _big(span_col)
    if not (_fits(start, n) and _fits(sent, n) and _fits(first, n) and _fits(span, n)):
        return None
    ones = _mask(n, 1)
    window = first - sent
    if not (_fits(start - ones, n) and _fits(sent - start - ones, n)  # 0 < start < sent
            and _fits(window, n) and _fits(start + span - first, n)):  # <= first <= ...
        return None
    client: list[int] | int
    rtt_col, upstream_col = readings[0::LEAN], readings[4::LEAN]
    same = _same(rtt_col, n)
    if same is not None:
        client = same * 1000
    else:
        rtts = _big(rtt_col)
        if not _fits(rtts, n, _TOP12):
            return None
        client = _list(rtts * 1000, n)
    same = _same(upstream_col, n)
    if same is not None:
        upstream = ones * (same * 1000)  # no carry: each lane's product is under 2^62
    else:
        upstream_rtts = _big(upstream_col)
        if not _fits(upstream_rtts, n, _TOP12):
            return None
        upstream = upstream_rtts * 1000
    network: list[int] | int
    backend = window - upstream
    if _fits(backend, n):  # every window holds its upstream RTT: network is the RTT
        network = same * 1000 if same is not None else _list(upstream, n)
        return client, _list(span - window, n), 0, network, _list(backend, n)
    if _fits(upstream - window, n):  # no window does: network is the window
        return client, _list(span - window, n), 0, _list(window, n), 0
    # some of each: the RTT, at most the window, request by request
    windows, upstreams = _list(window, n), _list(upstream, n)
    network_list = list(map(min, upstreams, windows))
    return (client, _list(span - window, n), 0, network_list,
            [w - u for w, u in zip(windows, network_list, strict=True)])
