"""The agent's steady-state collector setting (agent.kube.gcpause.tune): the youngest
generation's threshold raised, the older generations' factors left as they were, and a
pause (``paused``) still switching the collector off and back on over it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from agent.kube import gcpause


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


def test_tune_raises_the_young_threshold_and_keeps_the_older_ones(
        thresholds: tuple[int, int, int]) -> None:
    gc.set_threshold(700, 7, 9)
    gcpause.tune()
    assert gc.get_threshold() == (gcpause.YOUNG_THRESHOLD, 7, 9)
    assert gcpause.YOUNG_THRESHOLD > 700  # CPython's default: fewer young collections


def test_tune_twice_is_tune_once(thresholds: tuple[int, int, int]) -> None:
    gcpause.tune()
    first = gc.get_threshold()
    gcpause.tune()
    assert gc.get_threshold() == first


def test_a_pause_after_tune_still_stops_and_restarts_the_collector(
        thresholds: tuple[int, int, int]) -> None:
    gcpause.tune()
    was = gc.isenabled()
    gc.enable()
    try:
        with gcpause.paused():
            assert not gc.isenabled()
        assert gc.isenabled()
        assert gc.get_threshold()[0] == gcpause.YOUNG_THRESHOLD
    finally:
        if not was:
            gc.disable()


def test_young_collections_come_after_the_tuned_number_of_allocations(
        thresholds: tuple[int, int, int]) -> None:
    """What the setting is for: container allocations below the threshold start no young
    collection; the default would have started several."""
    gcpause.tune()
    was = gc.isenabled()
    gc.enable()
    starts: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 0:
            starts.append(1)

    gc.collect()  # the young generation's count starts from 0
    gc.callbacks.append(count)
    try:
        kept = [[i] for i in range(gcpause.YOUNG_THRESHOLD // 2)]  # lists: tracked
    finally:
        gc.callbacks.remove(count)
        if not was:
            gc.disable()
    assert len(kept) == gcpause.YOUNG_THRESHOLD // 2
    assert starts == []
