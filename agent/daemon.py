"""The node agent: one per node (the DaemonSet's process).

It watches desired state through the Kubernetes API (a cluster's or the lab's, with a
kubeconfig or the in-cluster ServiceAccount), programs the eBPF datapath from it, turns
datapath events into flows, serves them over the observer API, and reports health (a
health file, and the Node's Ready condition).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import httpx2 as httpx  # lightkube 1.x's HTTP client
from lightkube import ApiError, Client
from lightkube.types import PatchType

# Only what the lists need is imported before they start (run): the datapath's, the flows'
# and the metrics' modules (~0.2 s of imports) load while the API server answers them.
# tests/unit/test_import_agent.py keeps it so.
from agent.datapath.kinds import WATCHED_KINDS
from agent.files import write_json_atomic
from agent.kube import gcpause
from agent.kube.backoff import Backoff
from agent.kube.cache import Delta
from agent.kube.informer import WATCH_BACKOFF
from agent.kube.models import to_model
from agent.kube.resources import NodeStatus
from agent.kube.source import ClusterSource, KubeconfigError, connect

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from agent.bcc_thread import DatapathLoad
    from agent.datapath.controller import DatapathController, ObjectChange
    from agent.flows.ingest import FlowIngest
    from agent.flows.l7intake import L7Intake
    from agent.flows.store import FlowRing
    from agent.metrics import FlowMetrics
    from agent.metrics.server import MetricsServer

log = logging.getLogger("tulle.agent")
# What the datapath plans from, less Secrets: its plan never reads them (a Gateway's
# listeners are redirected by its addresses; only the waypoint terminates TLS), so the
# agent's ServiceAccount may not read Secrets (deploy/daemonset/rbac.yaml).
AGENT_KINDS = tuple(k for k in WATCHED_KINDS if k != "Secret")
MODEL_KINDS = ("Service", "EndpointSlice")  # read only as models (the datapath's)
HEALTH_INTERVAL = 1.0
SYNC_DEBOUNCE = 0.02  # at most one datapath sync per this long: bursts coalesce
STARTUP_GC_PAUSE_MAX = 120.0  # seconds


@dataclass(frozen=True)
class AgentConfig:
    node: str
    kubeconfig: str | None = None  # None: the in-cluster ServiceAccount (a DaemonSet pod)
    health_file: str | None = None
    pin_dir: str | None = None  # None: no datapath (watch and report only)
    # Where the compile record lives (agent.datapath.templates): a restart with the same
    # inputs adopts the pinned programs instead of compiling. None: always compile.
    state_dir: str | None = None
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
    pod_cgroup: str | None = None  # cgroup v2 dir of the node's pods: RTT from sock_ops there


class Agent:
    def __init__(self, node: str, client: Client, *, backoff: Backoff = WATCH_BACKOFF) -> None:
        self.node = node
        self.client = client
        # The bulky kinds kept as models only (agent.kube.models), not raw dicts beside them.
        self.source = ClusterSource(client, AGENT_KINDS, self.handle, backoff=backoff,
                                    transforms=dict.fromkeys(MODEL_KINDS, to_model))
        self.stop = threading.Event()
        self.changed = threading.Event()
        self.events_seen = 0
        self.last_error: str | None = None
        self.datapath: DatapathController | None = None
        self.reported: tuple[bool, str] | None = None  # last Ready condition written
        self.tracing: Any = None  # agent.tracing.tracer.HookPlan once tracing runs
        # Health report (seconds since the process started, by /proc): ``loaded_s`` when the
        # eBPF programs were compiled, loaded and their maps pinned and adopted (on the BCC
        # thread); ``first_sync_s`` when the maps held the whole listed cluster for the
        # first time (its lists ran beside the compiles, its plan and writes after them).
        self.first_sync_s: float | None = None
        self.loaded_s: float | None = None
        self.first_synced = threading.Event()  # set once the datapath was programmed in full
        self.plan_gate: threading.Event | None = None  # the first plan waits for it (BCC)
        self.startup_gc: gcpause.Hold | None = None  # released after the first sync
        # What the datapath has not seen yet (guarded by source.lock): single changes are
        # planned incrementally; a (re)list of any kind makes the next sync a full resync.
        self.pending: list[ObjectChange] = []
        self.needs_resync = True

    def handle(self, kind: str, delta: Delta[dict[str, Any]] | None) -> None:
        """One change from the cluster source (called under ``source.lock``)."""
        self.events_seen += 1
        if delta is None:
            pass  # a (re)list's end: what it changed came before, as resync deltas (a kind
            # not served, looked at again every few seconds, changes nothing: no resync)
        elif delta.resync:
            self.needs_resync = True
            self.pending.clear()
        elif not self.needs_resync:  # only after a first sync: the datapath is imported
            from agent.datapath.controller import ObjectChange

            namespace, name = delta.key
            new = None if delta.type == "DELETED" else delta.obj
            self.pending.append(ObjectChange(kind, namespace, name, None, new))
        state = self.source.state
        if state.synced:  # before, the sync loop has nothing to do: no wake-up per listed object
            self.changed.set()
        if delta is None:
            log.info("listed %s: %d at revision %d%s", kind, state.count(kind), state.revision,
                     "; synced" if state.synced else "")
        elif not delta.resync:  # a relist's deltas are summed up by its "listed" line
            ns = f"{delta.key[0]}/" if delta.key[0] else ""
            log.info("%s %s %s%s (revision %d)", delta.type, kind, ns, delta.key[1],
                     delta.revision)

    def report_node_ready(self, ready: bool, reason: str) -> None:
        """Set the Ready condition on this node's Node object, only when it changes.

        An API error (server away, refused) is logged and retried on the next health tick,
        not fatal: the datapath keeps serving whatever the report's fate."""
        try:
            self._report_node_ready(ready, reason)
        except (ApiError, httpx.HTTPError, OSError) as err:
            log.warning("cannot report Node Ready (%s); retrying on the next health tick", err)

    def _report_node_ready(self, ready: bool, reason: str) -> None:
        if self.reported == (ready, reason):
            return  # called every health tick: no request when nothing changed
        with self.source.lock:
            node = self.source.state.get("Node", "", self.node)
        if node is None:
            log.warning("no Node object named %s in the cluster", self.node)
            return
        conditions = (node.get("status") or {}).get("conditions") or []
        current: dict[str, Any] = next((c for c in conditions if c.get("type") == "Ready"), {})
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
        # Strategic merge: conditions merge by type, so other conditions stay as they are.
        self.client.patch(
            NodeStatus, self.node, {"status": {"conditions": [condition]}},
            patch_type=PatchType.STRATEGIC,
        )
        self.reported = (ready, reason)

    def sync_forever(self) -> None:
        """Program the datapath whenever the cache changed (debounced)."""
        from agent.bcc_thread import process_age
        from agent.datapath.controller import DatapathNotLoaded
        from agent.datapath.native import malloc_trim

        assert self.datapath is not None
        last_sync = -SYNC_DEBOUNCE
        while not self.stop.is_set():
            if not self.changed.wait(0.5):
                continue
            # Leading edge: a change after a quiet spell is applied at once; one within
            # SYNC_DEBOUNCE of the last sync waits out the rest, with the rest of its burst.
            rest = last_sync + SYNC_DEBOUNCE - time.monotonic()
            if rest > 0:
                self.stop.wait(rest)
            self.changed.clear()
            objects: list[dict[str, Any]] | None = None
            if self.first_sync_s is None and self.plan_gate is not None:
                # The first plan waits for the BCC thread's gate (agent.bcc_thread.order):
                # a compile's transient memory must not stack on the plan's peak.
                while not self.plan_gate.wait(0.5):
                    if self.stop.is_set():
                        return
            with self.source.lock:
                if not self.source.state.synced:
                    continue
                if self.needs_resync:
                    objects = list(self.source.state.objects.values())
                    self.needs_resync = False
                    self.pending.clear()
                changes, self.pending = self.pending, []
            last_sync = time.monotonic()
            try:
                if objects is not None:
                    self.datapath.resync(objects)
                elif changes:
                    self.datapath.apply_changes(changes)  # work per change, not per cluster
                self.last_error = None
                if self.first_sync_s is None and objects is not None:
                    self.first_sync_s = process_age()
                    if self.startup_gc is not None:  # what the sync built is frozen by now
                        self.startup_gc.release()
                    malloc_trim()  # the lists' freed bodies, before the tracer's compile
                    self.first_synced.set()
                    log.info(
                        "first datapath sync done %.2f s after the process started: %d objects",
                        self.first_sync_s,
                        len(objects),
                    )
            except DatapathNotLoaded:
                return  # the load failed: run() reports it and stops the agent
            except Exception as err:
                self.last_error = f"datapath: {type(err).__name__}: {err}"
                log.exception("datapath sync failed; resyncing in full on the next round")
                with self.source.lock:
                    self.needs_resync = True  # what failed half-way is replanned from scratch
                self.stop.wait(1.0)
                self.changed.set()

    def health(self) -> dict[str, object]:
        with self.source.lock:
            state = self.source.state
            report: dict[str, object] = {
                "node": self.node,
                "pid": os.getpid(),
                "hostname": socket.gethostname(),
                "time": time.time(),
                "ready": state.synced and self.last_error is None,
                "revision": state.revision,
                "objects": len(state.objects),
                "events": self.events_seen,
                "error": self.last_error,
            }
        if self.datapath is not None:
            loaded = self.datapath.attached.is_set() and self.loaded_s is not None
            applied = self.datapath.applier.applied if loaded else None
            report["datapath"] = {
                "endpoints": len(applied.endpoints) if applied else 0,
                "services": len(applied.slots) if applied else 0,
                "last_sync_ms": round(self.datapath.last_sync_ms, 1),
                "first_sync_s": (
                    None if self.first_sync_s is None else round(self.first_sync_s, 3)
                ),
                "loaded_s": None if self.loaded_s is None else round(self.loaded_s, 3),
                "errors": list(self.datapath.errors),
            }
        if self.tracing is not None:
            report["tracing"] = {"hooks": list(self.tracing.hooks),
                                 "missing": list(self.tracing.missing),
                                 "rtt": self.tracing.rtt_source, "cgroup": self.tracing.cgroup}
        return report


# The HTTP client's line per request (httpx logs each at INFO: 40+ lines while a first sync
# lists) is noise for a daemon, and formatting and writing each costs the lists' GIL: its
# warnings stay, as Cilium- and kubelet-style daemons keep them.
QUIET_LOGGERS = ("httpx2", "httpx")


def setup_logging(node: str) -> None:
    """Log to a dup of fd 2 made now: BCC compiles redirect fd 2 process-wide for a second
    (agent.datapath.native.captured_stderr), and other threads' records must not vanish."""
    stream = os.fdopen(os.dup(2), "w", buffering=1, errors="backslashreplace")
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {node} %(levelname)s %(message)s",
                        stream=stream)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _start_thread(target: Any, name: str, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    thread.start()
    return thread


def run(config: AgentConfig) -> int:
    node = config.node
    setup_logging(node)
    waypoint = _waypoint(config.waypoint) if config.pin_dir else None  # a bad flag: at once
    try:
        client = connect(config.kubeconfig)
    except KubeconfigError as err:
        raise SystemExit(f"tulle agent: {err}") from None
    agent = Agent(node, client)
    # No cyclic GC from here to the first sync (agent.kube.gcpause.Hold); bounded, should the
    # first sync never come.
    startup_gc = agent.startup_gc = gcpause.Hold()
    timer = threading.Timer(STARTUP_GC_PAUSE_MAX, startup_gc.release)
    timer.daemon = True
    timer.start()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping (the datapath keeps forwarding)", signum)
        agent.stop.set()

    def abandon_start() -> None:
        """A start that fails: its threads told to stop, the GC pause over."""
        agent.stop.set()
        timer.cancel()
        startup_gc.release()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # The lists first: they need only the client, and the API server spends ~1 s on them at
    # 10,000 Services; the rest of the agent is imported (~0.2 s) and started meanwhile.
    agent.source.start()
    log.info(
        "agent for node %s started (pid %d), kubeconfig %s",
        node,
        os.getpid(),
        config.kubeconfig or "in-cluster",
    )
    try:
        from agent.flows.enrich import enrich
        from agent.flows.ingest import FlowIngest
        from agent.flows.l7intake import L7Intake
        from agent.flows.store import FlowRing

        ring = FlowRing(config.flow_capacity)
        registry, flow_metrics = _metrics(config)
        ingest = FlowIngest(ring, (flow_metrics,) if flow_metrics else ())
        load = _start_datapath(agent, config, ingest, waypoint) if config.pin_dir else None
    except BaseException:  # a bad flag the controller refuses, say: nothing left running
        abandon_start()
        agent.source.stop(timeout=2.0)
        raise
    observer = _start_observer(ring, config)
    intake = None
    if config.l7_intake and agent.datapath is not None:
        datapath = agent.datapath
        intake = L7Intake(
            Path(config.l7_intake), ingest, lambda f: enrich(f, datapath.index, node), node
        ).start()
    metrics_server = None
    if registry is not None and config.metrics_address:
        from agent.metrics import serve_metrics

        metrics_server = serve_metrics(registry, config.metrics_address)
    if load is not None and agent.datapath is not None:
        try:
            agent.loaded_s = load.wait()
        except BaseException:  # a compile error or a verifier rejection: fail loudly
            abandon_start()
            _stop_serving(agent, observer, intake, metrics_server)
            agent.datapath.close()
            raise
        if registry is not None:
            from agent.metrics import MapFillCollector

            MapFillCollector(agent.datapath.map_fill, registry)
        log.info("datapath loaded %.2f s after the process started, maps pinned at %s",
                 agent.loaded_s, config.pin_dir)
        _start_thread(agent.datapath.run_events, "events", agent.stop)
        _start_thread(agent.datapath.run_gc, "ct-gc", agent.stop)
    while not agent.stop.wait(HEALTH_INTERVAL):
        health = agent.health()
        if config.health_file:
            write_json_atomic(Path(config.health_file), health)
        if health["ready"]:
            agent.report_node_ready(True, "AgentReady")
    _stop_serving(agent, observer, intake, metrics_server)
    agent.report_node_ready(False, "AgentStopped")
    return 0


def _start_datapath(agent: Agent, config: AgentConfig, ingest: FlowIngest,
                    waypoint: tuple[ipaddress.IPv4Address, int] | None) -> DatapathLoad:
    """The BCC compiles or adoptions (C, without the GIL) run on their own thread while the
    informers list (agent.bcc_thread): the datapath's, and the tracer's before the first plan
    or after the first sync (bcc_thread.order). The first sync plans once plan_gate opens
    (memory) and writes once the maps are attached (DatapathController.attach)."""
    from agent.bcc_thread import DatapathLoad, tracer_step
    from agent.datapath.controller import DatapathController

    assert config.pin_dir is not None
    agent.datapath = DatapathController(
        agent.node, None, ingest, waypoint, config.ct_endpoint_quota
    )
    state_dir = Path(config.state_dir) if config.state_dir else None
    pod_cgroup = Path(config.pod_cgroup) if config.pod_cgroup else None
    tracer = (tracer_step(agent, ingest, Path(config.pin_dir), state_dir, pod_cgroup)
              if config.trace else None)
    load = DatapathLoad(Path(config.pin_dir), agent.datapath, tracer, agent.first_synced,
                        agent.stop, state_dir)
    agent.plan_gate = load.plan_gate()
    load.start()
    _start_thread(agent.sync_forever, "sync")
    return load


def _stop_serving(agent: Agent, observer: Any, intake: L7Intake | None,
                  metrics_server: MetricsServer | None) -> None:
    """Stop watching the cluster and serving flows and metrics (the datapath forwards on)."""
    agent.source.stop(timeout=2.0)
    for server in (observer, intake):
        if server is not None:
            server.stop()
    if metrics_server is not None:
        metrics_server.close()


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
    from prometheus_client import CollectorRegistry

    from agent.metrics import FlowMetrics, MetricsConfig

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
