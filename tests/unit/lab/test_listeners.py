"""The lab's held waypoint listeners (lab/listeners.py): what the controller is told, and what
each restarted process is given."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

import pytest

from lab import procs
from lab.listeners import HELD_ENV, child_launch, held_from_environ
from lab.state import LabPaths
from lab.supervisor import SystemProcesses

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


SERVE_HELD = r"""
import os, socket, sys
value = os.environ.get("TULLE_LISTEN_FDS")
if not value:
    sys.exit(0)  # the first start, as lab up's: exits (a crash), the supervisor restarts it
fd = int(value.rpartition("=")[2])
with socket.socket(fileno=fd) as listener:
    listener.setblocking(True)
    conn, _ = listener.accept()
    conn.sendall(b"served by %d" % os.getpid())
    conn.close()
"""


def test_the_supervisor_restarts_a_waypoint_on_the_socket_it_holds(tmp_path: Path) -> None:
    """The controller's part: a connection made while the process is down waits in the held
    socket's queue and is served by the process the supervisor starts with it."""
    paths = LabPaths("t", tmp_path / "lab")
    paths.make_dirs()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    host, port = listener.getsockname()
    held = {"waypoint-node1": f"{host}:{port}={listener.fileno()}"}
    argv = [sys.executable, "-c", SERVE_HELD]
    _, first = procs.spawn("waypoint-node1", argv, log=paths.logs / "w.log",
                           record_dir=paths.procs)
    system = SystemProcesses(paths, held=held)
    client = socket.create_connection((host, port), timeout=30)  # queued: nobody serves yet
    try:
        deadline = time.monotonic() + 30
        while procs.is_alive(first):
            assert time.monotonic() < deadline, "the first process did not exit"
            time.sleep(0.02)
        system.tick()
        second = procs.load_records(paths.procs)[0]
        assert second.pid != first.pid
        assert client.recv(64) == b"served by %d" % second.pid
    finally:
        client.close()
        listener.close()
        for rec in procs.load_records(paths.procs):
            procs.terminate(rec, timeout=1.0)
