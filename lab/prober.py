"""The lab kubelet's probing of running containers (I/O around the pure lab.probes state
machine and lab.probe_runner's processes): each tick, finish the runs that ended, record
their outcomes, start the runs that are due. A probe's failure is a kubelet's ``Unhealthy``
event; a liveness or startup probe that reaches its failure threshold has the container
killed (``Killing``), and the kubelet's supervision restarts it per restartPolicy."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Sequence

from lab import probe_runner, probes
from lab.podruntime import ContainerRuntime
from lab.probes import Kind

log = logging.getLogger(__name__)

Wrap = Callable[[Sequence[str]], list[str]]  # argv -> argv in the container's context
Event = Callable[[str, str, str], None]  # (reason, message, type)


class Prober:
    def __init__(self, python: str) -> None:
        self.python = python

    def start(self, c: ContainerRuntime, now: float) -> None:
        """A container (re)started: fresh workers, as for a new container ID."""
        self.stop(c)
        c.probes = probes.workers(c.source[1], now) if c.source is not None else {}

    def stop(self, c: ContainerRuntime) -> None:
        for run in c.probe_runs.values():
            probe_runner.stop(run)
        c.probe_runs.clear()

    def tick(self, c: ContainerRuntime, ip: ipaddress.IPv4Address | None, wrap: Wrap,
             event: Event, now: float | None = None) -> Kind | None:
        """Advance ``c``'s probes; the probe kind whose failure means the container must be
        killed now, if any (its workers are then on hold until it restarts)."""
        if not c.running:  # probes in flight die with their container's run
            if c.probe_runs:
                self.stop(c)
            return None
        if not c.probes or c.source is None:
            return None
        now = time.monotonic() if now is None else now
        for kind, run in list(c.probe_runs.items()):
            w = c.probes[kind]
            outcome = probe_runner.poll(run, now, w.probe.timeout_seconds)
            if outcome is None:
                continue
            del c.probe_runs[kind]
            self._record(c, kind, *outcome, now, event)
        for kind in probes.due(c.probes, now):
            if kind in c.probe_runs:
                continue
            w = c.probes[kind]
            argv = probe_runner.probe_argv(w.probe, c.source[1], ip, c.python or self.python)
            if isinstance(argv, str):  # cannot run here: a failure that says why
                self._record(c, kind, False, argv, now, event)
                continue
            try:
                c.probe_runs[kind] = probe_runner.launch(wrap(argv), c.env,
                                                         w.probe.timeout_seconds, now)
            except OSError as err:
                self._record(c, kind, False, str(err), now, event)
        killed = probes.kill_reason(c.probes)
        if killed is not None:
            self.stop(c)
            what = "startup" if killed is Kind.STARTUP else "liveness"
            event("Killing", f"Container {c.name} failed {what} probe, will be restarted",
                  "Normal")
        return killed

    @staticmethod
    def _record(c: ContainerRuntime, kind: Kind, success: bool, said: str, now: float,
                event: Event) -> None:
        before = c.probes[kind].result
        c.probes[kind] = probes.record(c.probes[kind], success, now)
        if not success:
            event("Unhealthy", f"{kind.value} probe failed: {said}", "Warning")
        elif before is not True and c.probes[kind].result is True:
            log.info("container %s: %s probe passed", c.name, kind.value.lower())
