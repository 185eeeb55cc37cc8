"""bench/trace/waypointsys.py: the in-process waypoint serves every request and records
one flow each, with the split in the state asked for (what its counts are divided by)."""

from __future__ import annotations

import pytest

from agent.flows.reqsplit import LEAN_ROW
from bench.trace import waypointsys
from l7proxy.server import new_event_loop
from l7proxy.timing import SPLIT


@pytest.mark.parametrize("split", [True, False])
def test_every_request_is_served_and_recorded(split: bool) -> None:
    was = SPLIT.on
    loop = new_event_loop()
    try:
        records, column = loop.run_until_complete(waypointsys.run(split, 20))
        assert records == 20
        assert column == (20 * LEAN_ROW.size if split else 0)  # a row of readings each
        assert SPLIT.on is split
    finally:
        loop.close()
        SPLIT.on = was


def test_bad_arguments_are_refused() -> None:
    assert waypointsys.main(["maybe", "10"]) == 2
    assert waypointsys.main(["on"]) == 2
