"""The lab's held waypoint listeners (lab/listeners.py): what the controller is told, and what
each restarted process is given."""

from __future__ import annotations

import json

import pytest

from lab.listeners import HELD_ENV, child_launch, held_from_environ

HELD = {"waypoint-node1": "10.244.1.254:15001=5,10.244.1.254:15007=6,10.244.1.254:15008=7"}


def test_the_controller_reads_which_fds_are_whose() -> None:
    assert held_from_environ({HELD_ENV: json.dumps(HELD)}) == HELD
    assert held_from_environ({}) == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "not JSON"),
        ('["waypoint-node1"]', "expected an object"),
        ('{"waypoint-node1": 5}', "expected an object"),
        ('{"waypoint-node1": "10.244.1.254:15001"}', "expected HOST:PORT=FD"),
    ],
)
def test_a_malformed_table_stops_the_controller_at_start(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        held_from_environ({HELD_ENV: raw})


def test_a_restarted_waypoint_gets_its_own_sockets_and_nothing_else() -> None:
    environ = {"PATH": "/bin", HELD_ENV: json.dumps(HELD), "TULLE_LISTEN_FDS": "stale"}
    env, fds = child_launch(HELD, "waypoint-node1", environ)
    assert fds == (5, 6, 7)
    assert env == {"PATH": "/bin", "TULLE_LISTEN_FDS": HELD["waypoint-node1"]}


def test_other_processes_get_no_sockets_and_no_table() -> None:
    environ = {"PATH": "/bin", HELD_ENV: json.dumps(HELD)}
    assert child_launch(HELD, "agent-node1", environ) == ({"PATH": "/bin"}, ())
    assert child_launch({}, "waypoint-node2", environ) == ({"PATH": "/bin"}, ())
