"""The node agent: one per node (the DaemonSet's process).

It watches desired state (the lab store here; the Kubernetes API in a cluster), programs the
eBPF datapath from it, turns datapath events into flows, serves them over the observer API,
and reports health.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry

from agent.datapath.controller import DatapathController
from agent.flows.enrich import enrich
from agent.flows.ingest import FlowIngest
from agent.flows.l7intake import L7Intake
from agent.flows.store import FlowRing
from agent.lab.state import write_json_atomic
from agent.metrics import FlowMetrics, MapFillCollector, MetricsConfig, serve_metrics
from agent.store import Store
from agent.store.events import SYNC, Event
from agent.store.informer import Cache, list_then_watch
from agent.store.retry import is_transient

log = logging.getLogger("tulle.agent")
HEALTH_INTERVAL = 1.0
SYNC_DEBOUNCE = 0.02  # coalesce bursts of store events into one datapath sync


@dataclass(frozen=True)
class AgentConfig:
    node: str
    store_file: str
    health_file: str | None = None
    pin_dir: str | None = None  # None: no datapath (watch and report only)
    observer_socket: str | None = None
    # TCP listeners bind the node netns's loopback by default: every pod routes to every
    # other node address (the kernel accepts a local address on any interface), so binding
    # the node IP only helps behind a host firewall (ARCHITECTURE.md, "Exposure").
    observer_host: str = "127.0.0.1"
    observer_port: int = 4244  # Hubble's per-node port
    metrics_address: str | None = "127.0.0.1:9965"  # Prometheus (Hubble's port); None: off
    metrics_hubble_names: bool = False  # hubble_* names for the families Hubble also has
    l7_intake: str | None = None  # unix socket where the node's waypoint hands over L7 flows
    flow_capacity: int = 65_535
    waypoint: str | None = None  # "ip:port" of this node's waypoint (L7 redirect target)
    ct_endpoint_quota: int = 0  # live connections one pod may open; 0: 1/8 of ct_v1 (quota.h)
    trace: bool = True  # kernel connection tracing (needs the datapath)


class Agent:
    def __init__(self, node: str, store: Store):
        self.node = node
        self.store = store
        self.cache = Cache()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.changed = threading.Event()
        self.events_seen = 0
        self.last_error: str | None = None
        self.datapath: DatapathController | None = None
        self.reported: tuple[bool, str] | None = None  # last Ready condition written
        self.tracing: Any = None  # agent.tracing.tracer.HookPlan once tracing runs
        self.first_sync_s: float | None = None  # process start -> first full datapath sync
        self.loaded_s: float | None = None  # process start -> eBPF programs loaded

    def handle(self, event: Event) -> None:
        with self.lock:
            self.cache.handle(event)
            self.events_seen += 1
        self.changed.set()
        if event.type == SYNC:
            counts = Counter(o["kind"] for o in event.object["items"])
            log.info(
                "synced at revision %d: %s",
                event.revision,
                ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no objects",
            )
        else:
            ns = f"{event.namespace}/" if event.namespace else ""
            log.info(
                "%s %s %s%s (revision %d)", event.type, event.kind, ns, event.name, event.revision
            )

    def report_node_ready(self, ready: bool, reason: str) -> None:
        """Set the Ready condition on this node's Node object, only when it changes.

        A transient store error is logged and retried on the next health tick, not fatal."""
        try:
            self._report_node_ready(ready, reason)
        except Exception as err:
            if not is_transient(err):
                raise
            log.warning("cannot report Node Ready (%s); retrying on the next health tick", err)

    def _report_node_ready(self, ready: bool, reason: str) -> None:
        if self.reported == (ready, reason):
            return  # called every health tick: no store read when nothing changed
        node = self.store.get("Node", "", self.node)
        if node is None:
            log.warning("no Node object named %s in the store", self.node)
            return
        status = dict(node.get("status") or {})
        others = [c for c in status.get("conditions") or [] if c.get("type") != "Ready"]
        current: dict[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
        )
        wanted = "True" if ready else "False"
        if current.get("status") == wanted and current.get("reason") == reason:
            self.reported = (ready, reason)
            return
        condition = {
            "type": "Ready",
            "status": wanted,
            "reason": reason,
            "message": f"tulle agent pid {os.getpid()}",
            "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        status["conditions"] = [*others, condition]
        self.store.update_status("Node", "", self.node, status)
        self.reported = (ready, reason)

    def watch_forever(self) -> None:
        while not self.stop.is_set():
            try:
                list_then_watch(self.store, None, self.handle, self.stop)
            except Exception as err:  # keep serving health; report and retry
                self.last_error = f"{type(err).__name__}: {err}"
                log.exception("watch failed; retrying in 1s")
                self.stop.wait(1.0)

    def sync_forever(self) -> None:
        """Program the datapath whenever the cache changed (debounced)."""
        assert self.datapath is not None
        while not self.stop.is_set():
            if not self.changed.wait(0.5):
                continue
            self.stop.wait(SYNC_DEBOUNCE)
            self.changed.clear()
            with self.lock:
                if not self.cache.synced:
                    continue
                objects = list(self.cache.objects.values())
            try:
                self.datapath.sync(objects)
                self.last_error = None
                if self.first_sync_s is None:
                    self.first_sync_s = process_age()
                    log.info(
                        "first datapath sync done %.2f s after the process started: %d objects",
                        self.first_sync_s,
                        len(objects),
                    )
            except Exception as err:
                self.last_error = f"datapath: {type(err).__name__}: {err}"
                log.exception("datapath sync failed; retrying on the next change")
                self.stop.wait(1.0)
                self.changed.set()

    def health(self) -> dict[str, object]:
        with self.lock:
            report: dict[str, object] = {
                "node": self.node,
                "pid": os.getpid(),
                "hostname": socket.gethostname(),
                "time": time.time(),
                "ready": self.cache.synced and self.last_error is None,
                "revision": self.cache.revision,
                "objects": len(self.cache.objects),
                "events": self.events_seen,
                "error": self.last_error,
            }
        if self.datapath is not None:
            report["datapath"] = {
                "endpoints": len(self.datapath.applier.applied.endpoints),
                "services": len(self.datapath.applier.applied.slots),
                "last_sync_ms": round(self.datapath.last_sync_ms, 1),
                "first_sync_s": (
                    None if self.first_sync_s is None else round(self.first_sync_s, 3)
                ),
                "loaded_s": None if self.loaded_s is None else round(self.loaded_s, 3),
                "errors": list(self.datapath.errors),
            }
        if self.tracing is not None:
            report["tracing"] = {"hooks": list(self.tracing.hooks),
                                 "missing": list(self.tracing.missing)}
        return report


def process_age() -> float:
    """Seconds since this process started (by /proc, so imports and BPF loading count too)."""
    stat = Path("/proc/self/stat").read_text()
    started_ticks = int(stat[stat.rindex(")") + 2 :].split()[19])
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - started_ticks / os.sysconf("SC_CLK_TCK")


def _start_thread(target: Any, name: str, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    thread.start()
    return thread


def run(config: AgentConfig) -> int:
    node = config.node
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {node} %(levelname)s %(message)s")
    ring = FlowRing(config.flow_capacity)
    registry, flow_metrics = _metrics(config)
    ingest = FlowIngest(ring, (flow_metrics,) if flow_metrics else ())
    with Store(config.store_file) as store:
        agent = Agent(node, store)

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %d: stopping (the datapath keeps forwarding)", signum)
            agent.stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        if config.pin_dir:
            from agent.datapath.programs import load_datapath

            started = time.monotonic()
            agent.datapath = DatapathController(
                node,
                load_datapath(Path(config.pin_dir)),
                ingest,
                _waypoint(config.waypoint),
                config.ct_endpoint_quota,
            )
            if registry is not None:
                MapFillCollector(agent.datapath.map_fill, registry)
            agent.loaded_s = process_age()
            log.info(
                "datapath loaded in %.1fs, maps pinned at %s",
                time.monotonic() - started,
                config.pin_dir,
            )
            _start_thread(agent.sync_forever, "sync")
            _start_thread(agent.datapath.run_events, "events", agent.stop)
            _start_thread(agent.datapath.run_gc, "ct-gc", agent.stop)
            if config.trace:  # kernel connection tracing (issue 12): best effort
                from agent.tracing.start import start_tracing

                agent.tracing = start_tracing(agent.datapath, ingest, node, agent.stop)
        observer = _start_observer(ring, config)
        intake = None
        if config.l7_intake and agent.datapath is not None:
            datapath = agent.datapath
            intake = L7Intake(
                Path(config.l7_intake), ingest, lambda f: enrich(f, datapath.index, node), node
            ).start()
        metrics_server = (
            serve_metrics(registry, config.metrics_address)
            if registry is not None and config.metrics_address
            else None
        )
        watcher = _start_thread(agent.watch_forever, "watch")
        log.info(
            "agent for node %s started (pid %d), store %s", node, os.getpid(), config.store_file
        )
        while not agent.stop.wait(HEALTH_INTERVAL):
            health = agent.health()
            if config.health_file:
                write_json_atomic(Path(config.health_file), health)
            if health["ready"]:
                agent.report_node_ready(True, "AgentReady")
        watcher.join(timeout=2.0)
        if observer is not None:
            observer.stop()
        if intake is not None:
            intake.stop()
        if metrics_server is not None:
            metrics_server.close()
        agent.report_node_ready(False, "AgentStopped")
    return 0


def _waypoint(text: str | None) -> tuple[ipaddress.IPv4Address, int] | None:
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise SystemExit(f"--waypoint {text!r}: expected IPv4:PORT")
    try:
        return ipaddress.IPv4Address(host), int(port)
    except ValueError:
        raise SystemExit(f"--waypoint {text!r}: {host!r} is not an IPv4 address") from None


def _metrics(config: AgentConfig) -> tuple[CollectorRegistry | None, FlowMetrics | None]:
    if not config.metrics_address:
        return None, None
    registry = CollectorRegistry()
    return registry, FlowMetrics(MetricsConfig(hubble_names=config.metrics_hubble_names),
                                 registry)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _start_observer(ring: FlowRing, config: AgentConfig) -> Any:
    from agent.observer.server import ObserverServer

    if config.observer_socket:
        Path(config.observer_socket).unlink(missing_ok=True)
    server = ObserverServer(
        ring,
        config.node,
        tcp_address=f"{_host(config.observer_host)}:{config.observer_port}",
        unix_socket=config.observer_socket,
    )
    return server.start()
