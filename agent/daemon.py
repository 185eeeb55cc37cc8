"""The node agent: one per node (the DaemonSet's process).

It watches desired state through the Kubernetes API (a cluster's or the lab's, with a
kubeconfig or the in-cluster ServiceAccount), programs the eBPF datapath from it, turns
datapath events into flows, serves them over the observer API, and reports health (a
health file, and the Node's Ready condition).

This module is its start sequence (``run``): the configuration, logging, signals, the
lists first, then the datapath's load, the flow, observer and metrics servers, the health
loop and the teardown. The agent's state and its loops are agent.node_agent's ``Agent``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

# Only what the lists need is imported before they start (run): the datapath's, the flows'
# and the metrics' modules (~0.2 s of imports) load while the API server answers them.
# tests/unit/test_import_agent.py keeps it so.
from agent.files import write_json_atomic
from agent.kube import gcpause
from agent.kube.source import KubeconfigError, connect
from agent.node_agent import AGENT_KINDS, MODEL_KINDS, Agent
from identity.system import SYSTEM_NAMESPACE

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from agent.bcc_thread import DatapathLoad
    from agent.flows.ingest import FlowIngest
    from agent.flows.l7intake import L7Intake
    from agent.flows.store import FlowRing
    from agent.metrics import FlowMetrics
    from agent.metrics.server import MetricsServer

__all__ = ["AGENT_KINDS", "MODEL_KINDS", "Agent", "AgentConfig", "run", "setup_logging"]
log = logging.getLogger("tulle.agent")
HEALTH_INTERVAL = 1.0
OBSERVER_AFTER_SYNC_MAX = 5.0  # seconds the observer API waits for the first sync at most
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
    # mTLS on the observer's TCP port (agent.observer.tls): (cert, key, client CA) files, read
    # again when they change. None: plaintext, which the CLI allows on loopback only.
    observer_tls: tuple[str, str, str] | None = None
    metrics_address: str | None = "127.0.0.1:9965"  # Prometheus (Hubble's port); None: off
    metrics_hubble_names: bool = False  # hubble_* names for the families Hubble also has
    l7_intake: str | None = None  # unix socket where the node's waypoint hands over L7 flows
    flow_capacity: int = 65_535
    waypoint: str | None = None  # "ip:port" of this node's waypoint (L7 redirect target)
    ct_endpoint_quota: int = 0  # live connections one pod may open; 0: 1/8 of ct_v1 (quota.h)
    trust_domain: str = "cluster.local"  # of the pods' SPIFFE IDs in flows (identity.spiffe)
    trace: bool = True  # kernel connection tracing (needs the datapath)
    pod_cgroup: str | None = None  # cgroup v2 dir of the node's pods: RTT from sock_ops there
    # Workload SVIDs (issue 11, agent.svid): the certificate service's "host:port" or
    # "unix:/path"; None: off, no SVIDs (nothing else changes).
    ca_address: str | None = None
    svid_dir: str | None = None  # the node-local SVID directory the waypoint reads
    svid_lifetime: int = 86_400  # seconds asked of the CA (at least 60)
    system_namespace: str = SYSTEM_NAMESPACE  # the CA's Service, the bundle (identity.system)
    # Health-check node ports of LoadBalancer + Local Services (agent.healthcheck): every
    # address of the node, as kube-proxy listens (a load balancer probes the node's address).
    # None: not served. Needs the datapath (its sync loop keeps the table).
    health_check_address: str | None = "0.0.0.0"
    # L2 announcement of LoadBalancer addresses (agent.announce): the interface whose ARP
    # this node answers for the addresses elected to it; None: off.
    announce_interface: str | None = None
    # tulle-cni's state directory (cni/README.md): this node's pods' records, read for
    # their addresses and veths, and the marks their CNI ADD waits for. None: off (every
    # pod's veth is found by route, once the API server has its address).
    cni_state_dir: str | None = None


# The HTTP client's line per request (httpx logs each at INFO: 40+ lines while a first sync
# lists) is noise for a daemon, and formatting and writing each costs the lists' GIL: its
# warnings stay, as Cilium- and kubelet-style daemons keep them.
QUIET_LOGGERS = ("httpx2", "httpx")


def setup_logging(node: str) -> None:
    """Log to a dup of fd 2 made now: BCC compiles redirect fd 2 process-wide for a second
    (agent.datapath.native.captured_stderr), and other threads' records must not vanish.
    ``sys.stderr`` goes there too: the interpreter prints an uncaught exception's traceback
    to it, and a start that fails on the main thread while the BCC thread compiles (a busy
    metrics port, say) exits before that compile puts fd 2 back; its traceback went into
    the compile's capture file and was lost with it."""
    stream = os.fdopen(os.dup(2), "w", buffering=1, errors="backslashreplace")
    sys.stderr.flush()
    sys.stderr = stream
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
    agent = Agent(node, client, plan_ahead=config.pin_dir is not None)
    responder = _open_responder(config.announce_interface)  # a bad interface: at once
    gcpause.tune()  # then fewer young collections for the flows' short-lived objects
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
    # Then the datapath's compile or adoption (BCC's C, on its own thread): a fresh node's
    # compile is the longest step of its first sync, so it starts before the rest of the
    # agent is imported and built; the load waits for the controller only to hand over.
    load = _begin_load(agent, config) if config.pin_dir else None
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
        if load is not None:
            _start_datapath(agent, config, ingest, waypoint, load)
    except BaseException:  # a bad flag the controller refuses, say: nothing left running
        abandon_start()
        agent.source.stop(timeout=2.0)
        raise
    intake = None
    if config.l7_intake and agent.datapath is not None:
        datapath = agent.datapath
        intake = L7Intake(
            Path(config.l7_intake), ingest, lambda f: enrich(f, datapath.index, node), node
        ).start()
    if config.ca_address:
        agent.svids = _start_svids(agent, config, client, registry)
    if responder is not None:
        from agent.announce.announcer import run_announcer

        _start_thread(run_announcer, "announce", node, agent.source, responder.start(),
                      agent.stop)
    metrics_server = None
    if registry is not None and config.metrics_address:
        from agent.metrics import serve_metrics

        metrics_server = serve_metrics(registry, config.metrics_address)
    if load is not None and agent.datapath is not None:
        try:
            agent.loaded_s = load.wait()
        except BaseException:  # a compile error or a verifier rejection: fail loudly
            abandon_start()
            _stop_serving(agent, None, intake, metrics_server)
            agent.datapath.close()
            raise
        if registry is not None:
            from agent.metrics import MapFillCollector

            MapFillCollector(agent.datapath.map_fill, registry)
        log.info("datapath loaded %.2f s after the process started, maps pinned at %s",
                 agent.loaded_s, config.pin_dir)
        _start_thread(agent.datapath.run_events, "events", agent.stop)
        _start_thread(agent.datapath.run_gc, "ct-gc", agent.stop)
        if config.cni_state_dir:  # the pods' CNI ADDs wait for the loaded programs
            from agent.cni.watch import watch_records

            watch_records(Path(config.cni_state_dir), node, agent.datapath.cni_update,
                          agent.changed, agent.stop)
    # The observer API starts after the first sync: its gRPC import (~0.06 s of the GIL)
    # would run while the first sync lists and plans. Bounded, should that sync not come.
    observer: Any = None
    observe_by = time.monotonic() + (OBSERVER_AFTER_SYNC_MAX if load is not None else 0.0)
    while not agent.stop.is_set():
        health = agent.health()
        if config.health_file:
            write_json_atomic(Path(config.health_file), health)
        if health["ready"]:
            agent.report_node_ready(True, "AgentReady")
        if observer is None and (agent.first_synced.is_set() or time.monotonic() >= observe_by):
            observer = _start_observer(ring, config)
        _next_tick(agent, observe_by if observer is None else None)
    _stop_serving(agent, observer, intake, metrics_server)
    if config.cni_state_dir and agent.datapath is not None:
        from agent.cni.registry import withdraw

        withdraw(Path(config.cni_state_dir))  # STATUS: not ready; the marks stay true
    timer.cancel()  # stopped before a first sync: the GC pause ends with the agent too
    startup_gc.release()
    agent.report_node_ready(False, "AgentStopped")
    if responder is not None:  # after NotReady: the next node takes over with little gap
        responder.close()
    return 0


def _open_responder(interface: str | None) -> Any:
    """The ARP responder on ``interface`` (agent.announce), or None when off."""
    if interface is None:
        return None
    from agent.announce.responder import ArpResponder

    try:
        return ArpResponder.open(interface)
    except OSError as err:
        raise SystemExit(
            f"tulle agent: --announce-interface {interface}: {err.strerror or err} "
            "(the node's interface toward the network its LoadBalancer clients are on)"
        ) from None


def _next_tick(agent: Agent, observe_by: float | None) -> None:
    """Wait for the next health tick or the stop; before the observer started, also for the
    first sync (reported and served at once, not up to a tick later) or ``observe_by``."""
    if observe_by is None:
        agent.stop.wait(HEALTH_INTERVAL)
        return
    end = min(time.monotonic() + HEALTH_INTERVAL, observe_by)
    # Short waits: the stop and the first sync are two events.
    while not agent.stop.is_set() and (left := end - time.monotonic()) > 0:
        if agent.first_synced.wait(min(left, 0.1)):
            return


def _begin_load(agent: Agent, config: AgentConfig) -> DatapathLoad:
    """The BCC compiles or adoptions (C, without the GIL) run on their own thread while the
    informers list (agent.bcc_thread): the datapath's, and the tracer's before the first plan
    or after the first sync (bcc_thread.order). The first sync plans once plan_gate opens
    (memory) and writes once the maps are attached (DatapathController.attach)."""
    from agent.bcc_thread import DatapathLoad

    assert config.pin_dir is not None
    state_dir = Path(config.state_dir) if config.state_dir else None
    load = DatapathLoad(Path(config.pin_dir), None, None, agent.first_synced, agent.stop,
                        state_dir)
    agent.plan_gate = load.plan_gate()
    return load.start()


def _start_datapath(agent: Agent, config: AgentConfig, ingest: FlowIngest,
                    waypoint: tuple[ipaddress.IPv4Address, int] | None,
                    load: DatapathLoad) -> None:
    """The controller the load hands its maps to, the tracer's step, and the sync loop."""
    from agent.bcc_thread import tracer_step
    from agent.datapath.controller import DatapathController

    assert config.pin_dir is not None
    agent.datapath = DatapathController(
        agent.node, None, ingest, waypoint, config.ct_endpoint_quota, config.trust_domain,
        Path(config.cni_state_dir) if config.cni_state_dir else None,
    )
    state_dir = Path(config.state_dir) if config.state_dir else None
    pod_cgroup = Path(config.pod_cgroup) if config.pod_cgroup else None
    tracer = (tracer_step(agent, ingest, Path(config.pin_dir), state_dir, pod_cgroup)
              if config.trace else None)
    load.bind(agent.datapath, tracer)
    if config.health_check_address is not None:
        from agent.healthcheck.server import HealthCheckServer

        agent.health_checks = HealthCheckServer(config.health_check_address,
                                                agent.first_synced.is_set)
    _start_thread(agent.sync_forever, "sync")


def _stop_serving(agent: Agent, observer: Any, intake: L7Intake | None,
                  metrics_server: MetricsServer | None) -> None:
    """Stop watching the cluster and serving flows and metrics (the datapath forwards on)."""
    agent.source.stop(timeout=2.0)
    if agent.health_checks is not None:
        agent.health_checks.close()
    if agent.svids is not None:
        agent.svids.stop()
    for server in (observer, intake):
        if server is not None:
            server.stop()
    if metrics_server is not None:
        metrics_server.close()


def _start_svids(agent: Agent, config: AgentConfig, client: Any,
                 registry: CollectorRegistry | None) -> Any:
    """The SVID manager's threads (agent.svid.service); a failure leaves the agent running
    without SVIDs, logged and in the health report: the datapath never depends on them."""
    from agent.svid import service
    from agent.svid.manager import SvidConfig

    assert config.ca_address is not None
    try:
        directory = service.svid_dir(config.svid_dir, config.state_dir)
        svid_config = SvidConfig(directory, config.trust_domain, config.svid_lifetime,
                                 system_namespace=config.system_namespace)
        started = service.start(client, config.kubeconfig, agent.source, agent.node,
                                config.ca_address, svid_config, registry)
    except Exception as err:
        agent.svid_error = f"{type(err).__name__}: {err}"
        log.exception("SVIDs off: the SVID manager did not start")
        return None
    log.info("SVIDs from %s into %s (lifetime %d s, system namespace %s)", config.ca_address,
             directory, config.svid_lifetime, config.system_namespace)
    return started


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
    tls = None
    if config.observer_tls is not None:
        from agent.observer.tls import ServerTls, TlsConfigError, TlsFiles

        try:
            tls = ServerTls(TlsFiles.of(*config.observer_tls))
        except TlsConfigError as err:
            raise SystemExit(f"tulle agent: observer TLS: {err}") from None
    server = ObserverServer(
        ring,
        config.node,
        tcp_address=f"{_host(config.observer_host)}:{config.observer_port}",
        unix_socket=config.observer_socket,
        tls=tls,
    )
    return server.start()
