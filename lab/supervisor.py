"""The lab's system processes (node agents, waypoints, DNS servers, the relay, the API
server) restarted when they exit, as the kubelet restarts a DaemonSet's pods."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from lab import procs
from lab.labstatus import RESTARTS_FILE
from lab.listeners import child_launch, held_from_environ
from lab.restart import RestartPolicy, RestartState, on_exit
from lab.state import LabPaths, write_json_atomic

log = logging.getLogger("tulle.controller")
CHECK_INTERVAL = 0.2  # how often exited system processes are looked for
DEFAULT_RESTART_POLICY = RestartPolicy()


class SystemProcesses:
    """Restarts the lab's node agents, waypoints, DNS servers and relay when they exit, as the
    kubelet restarts a DaemonSet's pods, with back-off for crash loops (lab.restart).
    Never the controller itself. The back-off shows in the log and in `tulle lab status`."""

    def __init__(
        self,
        paths: LabPaths,
        policy: RestartPolicy = DEFAULT_RESTART_POLICY,
        held: Mapping[str, str] | None = None,
    ):
        self.paths = paths
        self.policy = policy
        # role -> the listening sockets lab up gave this process for it (lab/listeners.py):
        # a restarted waypoint takes them over, so nothing redirected to it is refused.
        self.held = dict(held_from_environ() if held is None else held)
        self.states: dict[str, RestartState] = {}
        self.due: dict[str, float] = {}  # role -> monotonic time of its pending restart
        self.next_check = 0.0

    def tick(self) -> None:
        now = time.monotonic()
        if now < self.next_check:
            return
        self.next_check = now + CHECK_INTERVAL
        changed = False
        for rec in procs.load_records(self.paths.procs):
            if rec.role == "controller" or procs.is_alive(rec):
                continue
            if rec.role not in self.due:
                self._exited(rec, now)
                changed = True
            if now >= self.due[rec.role]:
                del self.due[rec.role]
                env, fds = child_launch(self.held, rec.role)
                procs.spawn(rec.role, rec.argv, log=Path(rec.log), record_dir=self.paths.procs,
                            env=env, pass_fds=fds)
                changed = True
        if changed:
            self._publish(now)

    def _exited(self, rec: procs.ProcRecord, now: float) -> None:
        ran_for = procs.uptime(rec)
        state, delay = on_exit(self.states.get(rec.role, RestartState()), ran_for, self.policy)
        self.states[rec.role] = state
        self.due[rec.role] = now + delay
        when = "now" if delay == 0 else f"in {delay:.0f}s (back-off: {state.crashes} quick exits)"
        log.warning(
            "%s (pid %d) exited after %.1fs: restarting it %s (restart %d)",
            rec.role,
            rec.pid,
            ran_for,
            when,
            state.restarts,
        )

    def _publish(self, now: float) -> None:
        """What `tulle lab status` shows: restarts and any pending back-off, per role."""
        write_json_atomic(
            self.paths.health / RESTARTS_FILE,
            {
                role: {
                    "restarts": state.restarts,
                    "crashes": state.crashes,
                    "restartAt": time.time() + max(0.0, self.due[role] - now)
                    if role in self.due
                    else None,
                }
                for role, state in self.states.items()
            },
        )


def supervise(system: SystemProcesses, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            system.tick()
        except Exception:
            log.exception("supervising system processes failed; retrying")
        stop.wait(CHECK_INTERVAL / 2)
