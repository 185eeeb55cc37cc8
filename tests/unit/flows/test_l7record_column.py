"""`read_batch` reads a whole LEAN column by request (one C unpack per batch) and any other
column by slices: both give each timed record its own marks, in the column's order (a
common request's LEAN readings as they are: its flow splits them when read)."""

from __future__ import annotations

import json

from agent.flows.flow import RequestSplit
from agent.flows.l7flow import L7FlowBuilder
from agent.flows.l7record import L7Record, encode_batch, pack_marks, read_batch
from agent.flows.reqsplit import LEAN_ROW, relative, split
from tests.unit.flows.test_l7intake import DENIED, OK, T0

TIMED: L7Record = (*OK[:13], True, *OK[14:])  # type: ignore[assignment]
EXTRA = (0, 0, 0, 0, 0, 0)  # a record with its EXTRA marks: it takes a slot as well
WITH_EXTRA: L7Record = (*OK[:13], EXTRA, *OK[14:])  # type: ignore[assignment]
# three requests' LEAN marks, each different: a record given another's would show
LEANS = [(40 + i, T0, T0 + 100_000 * (i + 1), T0 + 700_000 + 10_000 * i, 5 + i)
         for i in range(3)]


def batch(column: bytes) -> list[L7Record | ValueError]:
    line, _, rest = encode_batch([TIMED, DENIED, WITH_EXTRA, TIMED], pack_marks(LEANS)
                                 ).partition(b"\n")
    value = json.loads(line)
    value["split"] = len(column)
    return list(read_batch(value, column))


def want(lean: tuple[int, ...]) -> RequestSplit:
    client, start, sent, first, up = lean
    return split(OK[1], relative((client, start, sent, 0, 0, first, 0, first, up, 0, 0)))


def parts(record: L7Record | ValueError) -> RequestSplit | None:
    """The split of ``record``'s flow, as a reader gets it."""
    assert not isinstance(record, ValueError)
    tulle = L7FlowBuilder().flow(record).tulle
    return tulle.request if tulle is not None else None


def test_each_timed_record_gets_its_own_marks_from_a_whole_column() -> None:
    timed, denied, extra, last = batch(pack_marks(LEANS))
    assert not isinstance(timed, ValueError) and not isinstance(last, ValueError)
    assert timed[13] == LEAN_ROW.pack(*LEANS[0]) and parts(timed) == want(LEANS[0])
    # the third slot: the EXTRA record took the second
    assert last[13] == LEAN_ROW.pack(*LEANS[2]) and parts(last) == want(LEANS[2])
    assert not isinstance(extra, ValueError) and extra[13] == relative(
        (*LEANS[1][:3], 0, 0, LEANS[1][3], 0, 0, LEANS[1][4], 0, 0))
    assert not isinstance(denied, ValueError) and denied[13] is None


def test_a_column_of_partial_rows_reads_the_same_and_names_the_rest() -> None:
    """One integer more than three requests' marks: not whole rows, so the slices path;
    the records are the same and the stray integer is named."""
    whole = batch(pack_marks(LEANS))
    *records, err = batch(pack_marks(LEANS) + (7).to_bytes(8, "little"))
    assert records == whole
    assert isinstance(err, ValueError) and "1 integers no record claims" in str(err)


def read(records: list[L7Record], leans: list[tuple[int, ...]], stray: bool = False
         ) -> list[L7Record | ValueError]:
    """``records`` with ``leans`` as their column; ``stray``: one integer more (not whole
    rows: the general loop's slices)."""
    column = pack_marks(leans) + ((7).to_bytes(8, "little") if stray else b"")
    line, _, _ = encode_batch(records, column).partition(b"\n")
    value = json.loads(line)
    return list(read_batch(value, column))


def test_a_batch_of_common_requests_reads_as_the_general_loop_does() -> None:
    """A record per row, each the common timed request (the batch loop, no slot
    bookkeeping): each record its own row's split, as the slices path gives them."""
    fast = read([TIMED] * 3, LEANS)
    assert [r[13] for r in fast] == [LEAN_ROW.pack(*lean) for lean in LEANS]  # type: ignore[index]
    assert [parts(r) for r in fast] == [want(lean) for lean in LEANS]
    *general, err = read([TIMED] * 3, LEANS, stray=True)
    assert general == fast and isinstance(err, ValueError)


def test_the_batch_loop_hands_over_at_the_first_record_it_cannot_take() -> None:
    """As many rows as records, but one takes its slot another way (EXTRA marks), or is
    malformed where the batch loop looks (a latency that is no integer) or past it (a
    method that is no string): each later record still gets its own row, and a bad one is
    its error, as in the general loop."""
    bad_span: L7Record = (*TIMED[:1], "95000", *TIMED[2:])  # type: ignore[assignment]
    bad_method: L7Record = (*TIMED[:3], 7, *TIMED[4:])  # type: ignore[assignment]
    for middle in (WITH_EXTRA, bad_span, bad_method):
        fast = read([TIMED, middle, TIMED], LEANS)
        *general, _stray = read([TIMED, middle, TIMED], LEANS, stray=True)
        assert [_same(r) for r in fast] == [_same(r) for r in general]
        first, mid, last = fast
        assert parts(first) == want(LEANS[0]) and parts(last) == want(LEANS[2])
        assert isinstance(mid, ValueError) == (middle is not WITH_EXTRA)


def _same(r: L7Record | ValueError) -> object:
    return str(r) if isinstance(r, ValueError) else r
