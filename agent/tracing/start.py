"""Start kernel tracing inside the node agent (agent/daemon.py calls `start_tracing`).

Tracing is best effort: a kernel without the hooks, or a compile failure, is logged with what
is missing and the agent runs on without it.
"""

from __future__ import annotations

import logging
import signal
import threading

from agent.datapath.controller import DatapathController
from agent.flows.ingest import FlowIngest
from agent.tracing.tracer import HookPlan, Tracer, TracerUnavailable, plan_hooks

log = logging.getLogger("tulle.tracing")


def local_pod_ips(datapath: DatapathController) -> list[str]:
    """The node's pods as the datapath last programmed them (one per pod veth)."""
    return [str(ip) for ip, _identity, _flags in list(datapath.applier.applied.endpoints.values())]


def start_tracing(
    datapath: DatapathController, ingest: FlowIngest, node: str, stop: threading.Event
) -> HookPlan | None:
    from agent.datapath.features import feature_probe
    from agent.tracing.feed import TraceFeed

    plan = plan_hooks(feature_probe())
    try:
        tracer = Tracer.load(plan)
    except TracerUnavailable as err:
        log.warning("%s; the agent runs without kernel tracing", err)
        return None
    except Exception:
        log.exception("loading the kernel tracer failed; the agent runs without it")
        return None
    log.info("%s", plan.describe())
    feed = TraceFeed(
        tracer, ingest, lambda: datapath.index, lambda: local_pod_ips(datapath), node
    )
    # SIGUSR1 pauses tracing (tracepoints detached), SIGUSR2 resumes it: the run-time switch
    # bench/trace uses; the feed thread applies it within one drain interval.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGUSR1, lambda _s, _f: setattr(feed, "want_attached", False))
        signal.signal(signal.SIGUSR2, lambda _s, _f: setattr(feed, "want_attached", True))
    threading.Thread(target=feed.run, args=(stop,), name="trace", daemon=True).start()
    return plan
