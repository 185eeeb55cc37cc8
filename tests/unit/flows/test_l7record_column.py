"""`read_batch` reads a whole LEAN column by request (one C unpack per batch) and any other
column by slices: both give each timed record its own marks, in the column's order."""

from __future__ import annotations

import json

from agent.flows.flow import RequestSplit
from agent.flows.l7record import L7Record, encode_batch, pack_marks, read_batch
from agent.flows.reqsplit import relative, split
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


def test_each_timed_record_gets_its_own_marks_from_a_whole_column() -> None:
    timed, denied, extra, last = batch(pack_marks(LEANS))
    assert not isinstance(timed, ValueError) and not isinstance(last, ValueError)
    assert timed[13] == want(LEANS[0])
    assert last[13] == want(LEANS[2])  # the third slot: the EXTRA record took the second
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
