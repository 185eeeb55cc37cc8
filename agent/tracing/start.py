"""Start kernel tracing inside the node agent (agent/daemon.py calls `start_tracing` on its BCC
thread, before the first plan or after the first sync: agent.bcc_thread.order).

Tracing is best effort: a kernel without the hooks, or a compile failure, is logged with what
is missing and the agent runs on without it. The log line of the hooks in use names the RTT
source: sock_ops on the pod cgroup (``--pod-cgroup``) or tcp_probe, and why. With the node's
pin dir and state dir, a restart adopts the tracer the last compile pinned, without BCC
(``agent.tracing.cache``).
"""

from __future__ import annotations

import atexit
import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.datapath.controller import DatapathController, DatapathNotLoaded
from agent.flows.ingest import FlowIngest
from agent.tracing.health import FeedHealth
from agent.tracing.tracer import HookPlan, Tracer, TracerUnavailable, plan_hooks

log = logging.getLogger("tulle.tracing")


@dataclass(frozen=True)
class Tracing:
    """Running tracing, as the agent's health report shows it: the hooks in use and the
    feed's health (records read, batches failed, the last error)."""

    plan: HookPlan
    health: FeedHealth

    def report(self) -> dict[str, object]:
        return {"hooks": list(self.plan.hooks), "missing": list(self.plan.missing),
                "rtt": self.plan.rtt_source, "cgroup": self.plan.cgroup,
                **self.health.report()}


def local_pod_ips(datapath: DatapathController) -> list[str]:
    """The node's pods as the datapath last programmed them (one per pod veth); none while
    its maps are not loaded (a tracer compiled before the datapath: agent.daemon)."""
    try:
        endpoints = datapath.applier.applied.endpoints
    except DatapathNotLoaded:
        return []
    return [str(ip) for ip, _identity, _flags in list(endpoints.values())]


def start_tracing(
    datapath: DatapathController,
    ingest: FlowIngest,
    node: str,
    stop: threading.Event,
    switch: TraceSwitch | None = None,
    pin_dir: Path | None = None,
    state_dir: Path | None = None,
    pod_cgroup: Path | None = None,
) -> Tracing | None:
    """`pod_cgroup` (checked: agent.tracing.cgroup.pod_cgroup): RTT from sock_ops there
    instead of tcp_probe."""
    from agent.datapath.features import feature_probe
    from agent.tracing.feed import TraceFeed

    plan = plan_hooks(feature_probe(), str(pod_cgroup) if pod_cgroup else None)
    try:
        tracer = Tracer.load(plan, pin_dir=pin_dir, state_dir=state_dir)
    except TracerUnavailable as err:
        log.warning("%s; the agent runs without kernel tracing", err)
        return None
    except Exception:
        log.exception("loading the kernel tracer failed; the agent runs without it")
        return None
    log.info("%s", tracer.plan.describe())
    feed = TraceFeed(
        tracer, ingest, lambda: datapath.index, lambda: local_pod_ips(datapath), node
    )
    if switch is None and threading.current_thread() is threading.main_thread():
        switch = TraceSwitch().install()
    if switch is not None:
        switch.attach(feed)
    thread = threading.Thread(target=feed.run, args=(stop,), name="trace", daemon=True)
    thread.start()
    # The feed closes the tracer when `stop` is set; wait for that at exit, as the sock_ops
    # program stays on the pod cgroup (tracing) unless detached (tracepoints go with our fds).
    atexit.register(_stop_feed, stop, thread)
    return Tracing(tracer.plan, feed.health)


def _stop_feed(stop: threading.Event, thread: threading.Thread, timeout: float = 5.0) -> None:
    stop.set()
    thread.join(timeout)
    if thread.is_alive():
        log.warning("tracer: not stopped within %.0f s; its sock_ops program may stay attached",
                    timeout)


class TraceSwitch:
    """SIGUSR1 pauses tracing (tracepoints detached), SIGUSR2 resumes it: the run-time switch
    bench/trace uses; the feed thread applies it within one drain interval. Installed from
    the main thread (signal handlers can only be set there), before the feed may exist: a
    signal before the tracer is loaded is remembered and applied when it is."""

    def __init__(self) -> None:
        self.want_attached = True
        self._feed: Any = None

    def install(self) -> TraceSwitch:
        signal.signal(signal.SIGUSR1, lambda _s, _f: self._set(False))
        signal.signal(signal.SIGUSR2, lambda _s, _f: self._set(True))
        return self

    def attach(self, feed: Any) -> None:
        self._feed = feed
        feed.want_attached = self.want_attached

    def _set(self, attached: bool) -> None:
        self.want_attached = attached
        if self._feed is not None:
            self._feed.want_attached = attached
