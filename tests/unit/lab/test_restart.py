"""Restart back-off for the lab's system processes: the pure policy, table-tested, and the
supervisor that applies it to real (short-lived) processes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from lab import procs
from lab.labstatus import RESTARTS_FILE
from lab.restart import RestartPolicy, RestartState, on_exit, restart_delay
from lab.state import LabPaths, read_json
from lab.supervisor import SystemProcesses

POLICY = RestartPolicy(initial=1.0, cap=30.0, stable_after=60.0)


@pytest.mark.parametrize(
    ("crashes", "delay"),
    [
        (0, 0.0),
        (1, 0.0),
        (2, 1.0),
        (3, 2.0),
        (4, 4.0),
        (5, 8.0),
        (6, 16.0),
        (7, 30.0),
        (50, 30.0),
        (10_000, 30.0),
    ],
)
def test_restart_delay_is_immediate_then_doubles_to_the_cap(crashes: int, delay: float) -> None:
    assert restart_delay(crashes, POLICY) == delay


@pytest.mark.parametrize(
    ("before", "uptime", "after", "delay"),
    [
        (RestartState(), 0.1, RestartState(1, 1), 0.0),  # first exit: at once
        (RestartState(1, 1), 0.1, RestartState(2, 2), 1.0),  # a quick second exit waits
        (RestartState(4, 9), 59.9, RestartState(5, 10), 8.0),
        (RestartState(7, 9), 60.0, RestartState(1, 10), 0.0),  # it stayed up: reset
        (RestartState(7, 9), 3600.0, RestartState(1, 10), 0.0),
    ],
)
def test_on_exit_counts_quick_exits_and_resets_after_a_stable_run(
    before: RestartState, uptime: float, after: RestartState, delay: float
) -> None:
    assert on_exit(before, uptime, POLICY) == (after, delay)


def _wait_for(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_supervisor_restarts_at_once_then_backs_off(tmp_path: Path) -> None:
    paths = LabPaths("t", tmp_path / "lab")
    paths.make_dirs()
    argv = [sys.executable, "-c", "pass"]  # exits at once: a crash loop
    procs.spawn("waypoint-node1", argv, log=paths.logs / "w.log", record_dir=paths.procs)
    system = SystemProcesses(paths, RestartPolicy(initial=600.0, cap=600.0, stable_after=60.0))
    first = procs.load_records(paths.procs)[0]
    try:
        _wait_for(lambda: not procs.is_alive(first))
        system.tick()  # first exit: restarted in the same tick
        second = procs.load_records(paths.procs)[0]
        assert second.pid != first.pid
        _wait_for(lambda: not procs.is_alive(second))
        system.next_check = 0.0
        system.tick()  # second quick exit: back-off, not restarted
        assert procs.load_records(paths.procs)[0].pid == second.pid
        published = read_json(paths.health / RESTARTS_FILE)["waypoint-node1"]
        assert published["restarts"] == 2 and published["crashes"] == 2
        assert published["restartAt"] > time.time() + 500
    finally:
        for rec in procs.load_records(paths.procs):
            procs.terminate(rec, timeout=1.0)


def test_lab_status_shows_restarts_and_a_pending_back_off() -> None:
    from lab.labstatus import process_status as _process_status

    dead = procs.ProcRecord("relay", 999_999_999, 1, ("x",), "/dev/null")
    waiting = _process_status(dead, {"restarts": 3, "crashes": 3, "restartAt": time.time() + 8})
    assert (waiting.alive, waiting.restarts) == (False, 3)
    assert waiting.restart_in is not None and 7 <= waiting.restart_in <= 8
    assert _process_status(dead, {}).restart_in is None
