"""Runs a node's waypoint: the l7proxy server, fed from the cluster state.

The waypoint watches the cluster through the Kubernetes API like the agent does (its own
ServiceAccount: it also reads Secrets, for TLS), compiles route tables with the route
engine, resolves Service backends with the datapath's own service plan (one readiness rule
for L4 and L7), learns each redirected connection's original destination from the pinned
l7_orig_dst_v1 map, judges NetworkPolicy on the client's identity for the backend each
request is routed to (agent/datapath/policy_waypoint.py) and AuthorizationPolicy on the
request (``l7proxy/authz.py``), opens backend connections from
its own address with the waypoint mark (bpf/lib/redirect.h), and hands every request's
flow to the node agent.

Here the process wiring: ``serve`` and ``run``. The cluster view and its compiled tables are
``l7proxy/feed.py``, the NetworkPolicy gate ``l7proxy/netpolicy.py``, the marked backend
connections ``WaypointConnector`` in ``l7proxy/upstream.py``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from lightkube import Client

from agent.datapath.identity import WORLD
from agent.datapath.origdst import WAYPOINT_MARK, OriginalDestinations
from agent.flows.l7intake import FlowForwarder
from agent.flows.tunnelrecord import TunnelEvent
from agent.kube.source import KubeconfigError, connect
from agent.metrics.server import parse_address
from agent.model.core import Secret
from agent.model.gateway import Gateway, ReferenceGrant
from gatewayapi import GatewayParent, IngressParent
from gatewayapi.backendclientcert import ClientCertificate, client_certificates
from gatewayapi.backends import Grants
from gatewayapi.backendtls import tls_by_port
from identity.spiffe import DEFAULT_TRUST_DOMAIN
from l7proxy.authz import AuthzGate
from l7proxy.config import ListenerConfig, WaypointConfig
from l7proxy.feed import KINDS, ClusterFeed, backend_protocols
from l7proxy.flows import FlowLossCollector
from l7proxy.hbone import runner as hbone_runner
from l7proxy.listenfds import HeldListeners, ListenFdsError
from l7proxy.netpolicy import PolicyGate
from l7proxy.ratelimit import RateLimitGate
from l7proxy.resilience.params import params_by_service
from l7proxy.server import WaypointServer, new_event_loop
from l7proxy.session import shared_key
from l7proxy.standby import ActiveLock, holder
from l7proxy.timing import SPLIT
from l7proxy.tlscerts import certificate_problem
from l7proxy.upstream import WaypointConnector

log = logging.getLogger("tulle.waypoint")
METRICS_PORT = 9966  # agent/metrics: the agent serves 9965, its waypoint 9966
# Loopback of the node's netns: pods route to every other node address (see ARCHITECTURE).
METRICS_ADDRESS = f"127.0.0.1:{METRICS_PORT}"
Address = tuple[str, int]


def gateway_client_certificates(
    gateways: Sequence[Gateway], secrets: Sequence[Secret], grants: Sequence[ReferenceGrant]
) -> dict[tuple[str, str], ClientCertificate]:
    """What each Gateway presents to TLS backends (GEP-3155): only Secrets whose certificate
    and key load together, the same check as the Gateway's status."""
    return client_certificates(gateways, secrets, Grants(grants), certificate_problem)


def switch_split(on: bool) -> None:
    """The request split on or off at run time, with the agent's kernel tracing (the same
    signals: SIGUSR1 pauses, SIGUSR2 resumes; bench/trace switches both). Logged only
    when it changes: the log line is what the bench waits for."""
    if SPLIT.on != on:
        SPLIT.on = on
        log.info("request split %s", "resumed" if on else "paused")


def tunnel_event_logger(event: TunnelEvent) -> None:
    """Refusals in the waypoint's log too (the agent makes every event a flow)."""
    if event.verdict == "DROPPED":
        log.info("tunnel %s %s: %s:%d -> %s:%d (%s) %s", event.side, event.drop_reason,
                 *event.source, *event.destination, event.source_spiffe_id, event.detail)


def _to_agent(server: WaypointServer) -> Callable[[TunnelEvent], None]:
    def record(event: TunnelEvent) -> None:
        tunnel_event_logger(event)
        server.flows.record_tunnel(event)

    return record


async def serve(node: str, client: Client, pin_dir: Path, listen: Address, intake: Path,
                metrics: Address = ("127.0.0.1", METRICS_PORT),
                request_split: bool = True, svid_dir: Path | None = None,
                trust_domain: str = DEFAULT_TRUST_DOMAIN,
                on_tunnel_event: Callable[[TunnelEvent], None] | None = None,
                held: HeldListeners | None = None, active_lock: Path | None = None,
                standby: bool = False, trust_forwarded_for: bool = False) -> None:
    """``on_tunnel_event``: where tunnel events go besides the log (default: to the agent as
    flows, through the same intake as L7 records). ``held``: listening sockets a process
    that outlives this one passed (l7proxy.listenfds): connections redirected while no
    waypoint ran wait in their accept queues. ``active_lock``: serve only while holding it,
    a warm standby until then (``standby``: even when nobody has held it yet;
    l7proxy/standby.py)."""
    if held:
        log.info("taking %d held listening sockets: %s", len(held.fds), held.fds)
    mtls_kinds = ("PeerAuthentication",)  # backends' mTLS modes (Node: always, in KINDS)
    feed = ClusterFeed(client, KINDS + mtls_kinds if svid_dir is not None else KINDS)
    feed.source.start()
    while not feed.source.synced:  # every kind listed: never route from a partial view
        await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, switch_split, False)  # a standby takes them too
    loop.add_signal_handler(signal.SIGUSR2, switch_split, True)
    lock = ActiveLock(active_lock) if active_lock is not None else None
    if lock is not None and (standby or not lock.try_acquire()):
        log.info("standby: synced, waiting for %s (held by pid %s)", lock.path,
                 holder(lock.path))
        await lock.acquire(second=standby)  # the informers keep this view current meanwhile
        log.info("active: took over %s", lock.path)
    feed.changed.clear()
    tables, endpoints, gateways, certificates, policy = feed.snapshot()
    resilience_inputs = (feed.typed["BackendTrafficPolicy"], feed.typed["Service"])
    gate = PolicyGate(policy)
    authz = AuthzGate(trust_domain)
    authz_inputs = (feed.typed["AuthorizationPolicy"], feed.typed["Pod"])
    authz.swap(*authz_inputs)
    limits = RateLimitGate(authz.peer)  # the caller's identity as authz derives it
    limit_inputs = (feed.typed["HTTPLocalRateLimitPolicy"], feed.typed["Service"])
    limits.swap(*limit_inputs)
    origins = OriginalDestinations(pin_dir)
    state: dict[str, Mapping[Address, GatewayParent | IngressParent]] = {"gateways": gateways}

    def original_destination(client: Address) -> Address | GatewayParent | IngressParent | None:
        found = origins.lookup(*client)
        if found is None:
            return None
        address = (found.address, found.port)
        parent = state["gateways"].get(address, address)
        if found.client_identity == WORLD and isinstance(parent, GatewayParent | IngressParent):
            gate.saw_outside(client[0])  # a Gateway's or Ingress's client from outside
        return parent

    config = WaypointConfig(
        listeners=[ListenerConfig(listen[0], listen[1])],
        tables=tables,
        endpoints=endpoints,
        node_name=node,
        original_destination=original_destination,
        certificates=certificates,
        admits=gate,
        policy_names=gate.names,
        client_namespace=gate.namespace_of,
        backend_params=params_by_service(*resilience_inputs),
        authorize=authz.check,
        rate_limit=limits.check,
        request_split=request_split,
        trust_forwarded_for=trust_forwarded_for,
        protocols=backend_protocols(feed.typed["Service"]),
    )
    if active_lock is not None:  # the pair's one key: sessions survive a takeover
        config.session_key = shared_key(active_lock.with_name(active_lock.name + ".session-key"))
    connector = WaypointConnector(
        listen[0], WAYPOINT_MARK, connect_timeout=config.limits.connect_timeout
    )
    forwarder = FlowForwarder(intake)
    server = WaypointServer(config, flow_sink=forwarder, connector=connector)
    server.metrics.registry.register(FlowLossCollector(server.flows))
    tls_inputs = (feed.typed["BackendTLSPolicy"], feed.typed["Service"], feed.typed["ConfigMap"])
    server.proxy.backend_tls = tls_by_port(*tls_inputs)
    cert_inputs = (feed.typed["Gateway"], feed.typed["Secret"], feed.typed["ReferenceGrant"])
    server.proxy.client_certificates = gateway_client_certificates(*cert_inputs)
    await server.start(reuse_port=False, held=held)
    def tunnel_destination(client: Address) -> Address | None:
        found = origins.lookup(*client)  # the same map as L7: from_pod.c wrote it
        return None if found is None else (found.address, found.port)

    hbone = None
    if svid_dir is not None:
        hbone = await hbone_runner.start(
            node, listen[0], svid_dir, trust_domain,
            original_destination=tunnel_destination,
            admit=lambda src, dst, port: gate((src, 0), (dst, port)),
            on_event=on_tunnel_event or _to_agent(server), mark=WAYPOINT_MARK,
            pods=feed.typed["Pod"], nodes=feed.typed["Node"],
            namespaces=feed.typed["Namespace"],
            peer_authentications=feed.typed["PeerAuthentication"], held=held,
        )
        server.metrics.registry.register(hbone.metrics)
        # The L7 upstream hop to an enrolled backend rides a tunnel (l7proxy.via).
        connector.mesh, connector.tunnels = hbone.directory, hbone.bridge
    if held:  # addresses the holder passed that this waypoint does not serve
        log.warning("held listening sockets not used: %s", held.fds)
    server.metrics.serve(*metrics)
    log.info("waypoint for %s listening on %s:%d (request split %s)", node, *listen,
             "on" if request_split else "off")
    done = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    while not done.is_set():
        if feed.changed.is_set():
            feed.changed.clear()
            last = (tables, endpoints, certificates, policy)
            tables, endpoints, state["gateways"], certificates, policy = feed.snapshot()
            if policy is not last[3]:
                gate.swap(policy)
            # snapshot() decodes a kind afresh (a new list) only when it changed
            fresh = (feed.typed["AuthorizationPolicy"], feed.typed["Pod"])
            if any(new is not old for new, old in zip(fresh, authz_inputs, strict=True)):
                authz_inputs = fresh
                authz.swap(*authz_inputs)
            fresh = (feed.typed["HTTPLocalRateLimitPolicy"], feed.typed["Service"])
            if any(new is not old for new, old in zip(fresh, limit_inputs, strict=True)):
                limit_inputs = fresh
                limits.swap(*limit_inputs)
            fresh_tls = (
                feed.typed["BackendTLSPolicy"], feed.typed["Service"], feed.typed["ConfigMap"]
            )
            if any(new is not old for new, old in zip(fresh_tls, tls_inputs, strict=True)):
                tls_inputs = fresh_tls
                server.proxy.backend_tls = tls_by_port(*tls_inputs)
            fresh_certs = (
                feed.typed["Gateway"], feed.typed["Secret"], feed.typed["ReferenceGrant"]
            )
            if any(new is not old for new, old in zip(fresh_certs, cert_inputs, strict=True)):
                cert_inputs = fresh_certs  # a rotated Secret: new connections present it
                server.proxy.client_certificates = gateway_client_certificates(*cert_inputs)
            if hbone is not None:
                hbone.update(feed.typed["Pod"], feed.typed["Node"], feed.typed["Namespace"],
                             feed.typed["PeerAuthentication"])
            # Only what changed: new tables or certificates also rebuild the TLS contexts.
            # BackendTrafficPolicies: recomputed when they or the Services were decoded anew
            inputs = (feed.typed["BackendTrafficPolicy"], feed.typed["Service"])
            changed = any(a is not b for a, b in zip(inputs, resilience_inputs, strict=True))
            resilience_inputs = inputs
            if changed:  # appProtocol kubernetes.io/h2c (GEP-1911), read per request
                config.protocols = backend_protocols(feed.typed["Service"])
            server.update(
                tables if tables is not last[0] else None,
                endpoints if endpoints is not last[1] else None,
                certificates if certificates is not last[2] else None,
                params_by_service(*inputs) if changed else None,
            )
        try:
            await asyncio.wait_for(done.wait(), timeout=0.05)
        except TimeoutError:
            pass
    feed.source.stop(timeout=1.0)
    if hbone is not None:
        await hbone.close()
    await server.close()
    forwarder.close()
    origins.close()
    if lock is not None:
        lock.close()


def run(node: str, kubeconfig: str | None, pin_dir: str, listen: str, intake: str,
        metrics_address: str = METRICS_ADDRESS, request_split: bool = True,
        svid_dir: str | None = None, trust_domain: str = DEFAULT_TRUST_DOMAIN,
        active_lock: str | None = None, standby: bool = False,
        trust_forwarded_for: bool = False) -> int:
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s waypoint {node} %(levelname)s %(message)s"
    )
    host, _, port = listen.rpartition(":")
    ipaddress.ip_address(host)
    metrics = parse_address(metrics_address, METRICS_PORT)
    try:
        held = HeldListeners.from_environ()  # in the lab, the controller holds them
        client = connect(kubeconfig)
    except (KubeconfigError, ListenFdsError) as err:
        raise SystemExit(f"tulle waypoint: {err}") from None
    try:  # uvloop, as the standalone waypoint (l7proxy.server.new_event_loop): the node's
        # waypoint carries every L7 request and every mTLS tunnel.
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(serve(node, client, Path(pin_dir), (host, int(port)), Path(intake),
                             metrics, request_split, Path(svid_dir) if svid_dir else None,
                             trust_domain, held=held,
                             active_lock=Path(active_lock) if active_lock else None,
                             standby=standby, trust_forwarded_for=trust_forwarded_for))
    except ListenFdsError as err:
        raise SystemExit(f"tulle waypoint: {err}") from None
    return 0
