"""The waypoint's per-request logic, shared by the HTTP/1.1 and HTTP/2 front ends:
pick the parent, route (``RouteTables.route``), admit (TLS Host/SNI, NetworkPolicy),
answer locally or hand the request to ``forward`` (timeouts, retries, streaming) and
``mirror``, and record a flow and metrics. No sockets: upstream connections come from
the pool (``upstream.py``), the client is a ``Downstream``."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping, Sequence

from agent.flows.l7record import AuditedNames, PolicyNames, pack_lean
from gatewayapi import (
    Answer,
    BackendTarget,
    Forward,
    GatewayParent,
    Headers,
    IngressParent,
    Parent,
    Request,
    Respond,
    RouteTables,
    RuleRef,
    ServiceParent,
)
from gatewayapi.backendclientcert import ClientCertificate
from gatewayapi.backendtls import UpstreamTLS
from gatewayapi.session import SessionKey
from gatewayapi.types import host_of
from l7proxy.authz import DENIED_BODY, Call
from l7proxy.backendtls import presenting
from l7proxy.config import Limits, WaypointConfig
from l7proxy.exchange import Downstream, Exchange
from l7proxy.failures import Failed
from l7proxy.flows import FlowRecorder, now_ns
from l7proxy.forward import forward, raw_headers
from l7proxy.metrics import WaypointMetrics
from l7proxy.mirror import send_mirror
from l7proxy.pool import Pool
from l7proxy.ratelimit import RATE_LIMITED_BODY, RATE_LIMITED_DROP
from l7proxy.resilience.gate import OVERFLOW_BODY, OVERFLOW_DROP, OVERFLOW_HEADERS, Gate
from l7proxy.resilience.metrics import ResilienceCollector
from l7proxy.resilience.params import BackendParams
from l7proxy.resilience.state import Resilience
from l7proxy.timing import SPLIT, Marks, now
from l7proxy.upstream import Address, Connector, UpstreamFailure
from l7proxy.via import Tunnel, Via

__all__ = ["Failed", "Proxy"]

_DROPPED_ANSWERS = {
    Answer.NO_ROUTE: "NO_ROUTE",
    Answer.INVALID_BACKEND: "INVALID_BACKEND",
    Answer.NO_BACKEND: "NO_BACKEND",
    Answer.UNSUPPORTED_FILTER: "UNSUPPORTED_FILTER",
    Answer.INVALID_PATH: "INVALID_PATH",
    Answer.INVALID_REQUEST: "INVALID_REQUEST",
    Answer.FAULT_ABORT: "FAULT_ABORT",  # an HTTPFault's abort (Envoy's FI flag)
}
_CLUSTER_SUFFIXES = (".svc.cluster.local", ".svc")
_POLICY_DENIED_BODY = b"NetworkPolicy denies this client the backend\n"


def _tunnel_ids(via: Via | None) -> tuple[str, str] | None:
    """The flow's identities when the upstream hop rode a tunnel (``l7proxy.via``)."""
    return (via.source_id, via.destination_id) if isinstance(via, Tunnel) else None


class Proxy:
    """Everything a worker shares across connections."""

    def __init__(
        self,
        config: WaypointConfig,
        *,
        connector: Connector | None = None,
        flows: FlowRecorder | None = None,
        metrics: WaypointMetrics | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        SPLIT.on = config.request_split  # one waypoint per process (``l7proxy.timing``)
        self.tables: RouteTables = config.tables
        self.endpoints = config.endpoints
        self.limits: Limits = config.limits
        self.connector = connector or Connector(connect_timeout=config.limits.connect_timeout)
        self.pool = Pool(
            self.connector,
            max_per_endpoint=config.limits.max_upstream_per_endpoint,
            idle_timeout=config.limits.upstream_idle_timeout,
            wait_timeout=config.limits.pool_wait_timeout,
        )
        self.flows = flows or FlowRecorder(None, node_name=config.node_name)
        self.metrics = metrics or WaypointMetrics(lambda: self.pool.stats)
        self.rng = rng
        self.admits = config.admits
        self.policy_names = config.policy_names
        self.mirrors_in_flight = 0
        self.h2: object | None = None
        """The HTTP/2 upstream client (``h2.H2Upstreams``), set by the server."""
        self.backend_tls: Mapping[tuple[str, str, int], UpstreamTLS] = {}
        """BackendTLSPolicy per (namespace, Service, port): the TLS its connections speak
        (``gatewayapi.backendtls.tls_by_port``), swapped by the node's runner."""
        self.client_certificates: Mapping[tuple[str, str], ClientCertificate] = {}
        """What each Gateway (namespace, name) presents to those backends (GEP-3155,
        ``gatewayapi.backendclientcert.client_certificates``), swapped by the runner."""
        self.resilience = Resilience(rng, config.backend_params)
        """Endpoint choice (P2C over peak-EWMA, outlier ejection) and pool limits."""
        self.gate = Gate()
        self.sessions = SessionKey(config.session_key)
        """Session persistence tokens (``gatewayapi/session.py``), under the waypoint's key."""
        self.metrics.registry.register(ResilienceCollector(self.resilience))
        self._labels: dict[tuple[RuleRef, BackendTarget], tuple[str, str, str]] = {}

    # --- configuration updates ---------------------------------------------------------

    def update(
        self,
        tables: RouteTables | None = None,
        endpoints: object | None = None,
        backend_params: Mapping[tuple[str, str], BackendParams] | None = None,
    ) -> None:
        """Swap in new route tables, an endpoint resolver and/or BackendTrafficPolicy
        parameters; requests already routed finish with what they had."""
        if backend_params is not None:
            self.resilience.update(backend_params)
        if tables is not None:
            self.tables = tables
            self._labels.clear()
        if endpoints is not None:
            assert callable(endpoints)
            self.endpoints = endpoints

    # --- per request -------------------------------------------------------------------

    def parent_for(self, ex: Exchange) -> Parent | None:
        if ex.parent is not None:
            return ex.parent
        parent = self.tables.parent_for_address(*ex.local)
        if parent is not None or self.config.original_destination is not None:
            # Behind redirection the original destination alone decides: a Host header
            # must not reach a Service the client never dialled.
            return parent
        host, _, port = ex.authority.partition(":")
        for suffix in _CLUSTER_SUFFIXES:
            if host.endswith(suffix):
                host = host[: -len(suffix)]
                break
        name, dot, namespace = host.partition(".")
        if not dot or "." in namespace:
            return None
        return ServiceParent(namespace, name, int(port) if port.isdigit() else ex.local[1])

    def route(self, ex: Exchange, scheme: str = "http") -> Forward | Respond:
        parent = self.parent_for(ex)
        headers = Headers([(n.decode("latin-1"), v.decode("latin-1")) for n, v in ex.headers])
        ex.routed_headers = headers
        request = Request(ex.method, scheme, ex.authority, ex.target, headers)
        if parent is None:
            from gatewayapi.actions import error_response

            return Respond(error_response(404, "no route"), Answer.NO_ROUTE, None, "no parent")
        namespace_of = self.config.client_namespace
        client_namespace = namespace_of(ex.client[0]) if namespace_of is not None else None
        return self.tables.route(
            parent, request, rng=self.rng, client_namespace=client_namespace,
            sessions=self.sessions,
        )

    async def handle(self, ex: Exchange, down: Downstream) -> None:
        """Serve one request to completion (or failure) and account for it."""
        metrics = self.metrics
        metrics.in_flight += 1
        route = rule = backend = drop = ""
        status = 0
        denied_by: tuple[str, ...] = ()
        audited: tuple[str, ...] = ()  # AUDIT AuthorizationPolicies that matched
        try:
            tls = getattr(down, "tls", None)
            if tls is not None and self._misdirected(ex, tls.listener):
                status, drop = 421, "MISDIRECTED_REQUEST"
                body = f"{host_of(ex.authority)} is not served by the TLS server name\n"
                down.local(status, [(b"content-type", b"text/plain")], body.encode(), close=True)
                return
            decision = self.route(ex, down.scheme)
            if decision.delay:  # an HTTPFault's delay (Envoy's DI): counts in the request timeout
                await asyncio.sleep(decision.delay)
            if isinstance(decision, Respond):
                selection = decision.selection
                if selection is not None:
                    ref = selection.ref
                    route, rule = f"{ref.namespace}/{ref.route}", str(ref)
                response = decision.response
                status = response.status
                drop = _DROPPED_ANSWERS.get(decision.answer, "")
                down.local(
                    status, raw_headers(response.headers), response.body, close=not ex.body.complete
                )
                return
            key = (decision.selection.ref, decision.backend)
            labels = self._labels.get(key)
            if labels is None:
                ref = key[0]
                labels = self._labels[key] = (f"{ref.namespace}/{ref.route}", str(ref), str(key[1]))
            route, rule, backend = labels
            if not self._admitted(ex.client, decision.backend, any_endpoints=False):
                status, drop = 403, "POLICY_DENIED"
                down.local(
                    status,
                    [(b"content-type", b"text/plain")],
                    _POLICY_DENIED_BODY,
                    close=not ex.body.complete,
                )
                return
            if self.config.authorize is not None:
                denial = self.config.authorize(Call(
                    ex.client, self.parent_for(ex), self.endpoints(decision.backend),
                    ex.method, ex.authority, ex.target, ex.headers,
                    getattr(tls, "server_name", "") or ""))
                if denial is not None and denial.allowed:
                    audited = denial.audited  # served; its flow's verdict is AUDIT
                elif denial is not None:
                    # Hubble's reasons: a DENY policy matched, or no ALLOW policy did
                    status, denied_by = 403, denial.policies
                    drop = "POLICY_DENIED" if denial.by_allow else "POLICY_DENY"
                    down.local(status, [(b"content-type", b"text/plain")], DENIED_BODY,
                               close=not ex.body.complete)
                    return
            if self.config.rate_limit is not None:
                limited = self.config.rate_limit(ex.client, decision.backend)
                if limited is not None:  # after authz: a denied caller spends no budget
                    status, drop = 429, RATE_LIMITED_DROP
                    down.local(status, limited.headers(), RATE_LIMITED_BODY,
                               close=not ex.body.complete)
                    return
            for mirror in decision.mirrors:
                if self._admitted(ex.client, mirror.target, any_endpoints=True):
                    send_mirror(self, mirror.target, mirror.request, ex)
            limits = self.resilience.limits(decision.backend)
            if limits is not None and not await self.gate.enter(
                limits, self.limits.pool_wait_timeout
            ):
                status, drop = 503, OVERFLOW_DROP  # Envoy's UO
                down.local(status, OVERFLOW_HEADERS, OVERFLOW_BODY, close=not ex.body.complete)
                return
            try:
                status = await forward(self, ex, decision, down)
            except Failed as failure:
                status, drop = failure.status, failure.drop
            except asyncio.CancelledError:
                # nginx's code for a client gone, unless the client side said why it ended
                status, drop = ex.aborted or (499, "CLIENT_CLOSED")
                raise
            finally:
                if limits is not None:
                    self.gate.leave(limits)
        finally:
            metrics.in_flight -= 1
            end = now()
            span = end - ex.t_start
            metrics.observe(route, backend, status, span / 1e9)
            if self.flows.enabled:
                marks: Marks | None = None
                timing: tuple[int, ...] | bool | None = None
                if ex.timed:  # the split (``l7proxy.timing``): the client's RTT, cached
                    rtt = down.rtt
                    # the clock readings as taken, in ``Marks`` order, packed (one C call,
                    # no frame); the agent makes them relative
                    marks = pack_lean(rtt.value if end < rtt.until else rtt.get(end),
                                      ex.t_start, ex.t_sent, ex.t_first, ex.upstream_rtt_us)
                    # most requests need no other mark (``reqsplit.EXTRA``)
                    timing = True if ex.plain else (
                        ex.t_connect, ex.t_connect_late, ex.t_head_out, ex.t_last,
                        ex.t_body_end, ex.t_stall)
                self.flows.record(
                    (
                        ex.started_ns,
                        span,
                        status,
                        ex.method,
                        f"{down.scheme}://{ex.authority}{ex.target}",
                        down.protocol,
                        route,
                        rule,
                        backend,
                        drop,
                        ex.client,
                        ex.local,
                        "",
                        timing,
                        ((), denied_by) if denied_by
                        else _with_audit(self._policy_names(ex), audited) if audited
                        else self._policy_names(ex) if self.policy_names is not None else None,
                        _tunnel_ids(ex.via),
                        ex.grpc_status,
                    ),
                    marks,
                )

    def _admitted(self, client: Address, target: BackendTarget, *, any_endpoints: bool) -> bool:
        """Whether NetworkPolicy lets ``client`` reach some endpoint of ``target``. A target
        without endpoints counts as admitted unless ``any_endpoints`` (its 503 follows)."""
        admits = self.admits
        if admits is None:
            return True
        endpoints = self.endpoints(target)
        if not endpoints:
            return not any_endpoints
        return any(admits(client, e) for e in endpoints)

    def _policy_names(self, ex: Exchange) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """The policies that let the request reach the endpoint it was sent to; None when
        it never reached one (refused by policy, no route, no endpoint)."""
        endpoint = ex.endpoint
        if endpoint is None or self.policy_names is None:
            return None
        return self.policy_names(ex.client, endpoint)

    def refuse(self, client: Address, local: Address, drop: str) -> None:
        """Record a connection refused before any request (reset by the caller)."""
        if self.flows.enabled:
            self.flows.record(
                (now_ns(), 0, 0, "", "", "", "", "", "", drop, client, local, "", None, None,
                 None, None)
            )

    def _misdirected(self, ex: Exchange, sni_listener: str | None) -> bool:
        """Over TLS, a Host whose listener is not the one SNI chose (Gateway API: 421)."""
        parent = ex.parent
        if isinstance(parent, IngressParent):
            ingresses = self.tables.ingresses
            host = host_of(ex.authority)
            return ingresses is not None and ingresses.misdirected(parent, host, sni_listener)
        table = self.tables.gateways.get(parent) if isinstance(parent, GatewayParent) else None
        if table is None:
            return False
        return table.misdirected(ex.authority, sni_listener)

    def upstream_tls(self, target: BackendTarget, parent: Parent | None) -> UpstreamTLS | None:
        """The TLS a request to ``target`` speaks (a BackendTLSPolicy's; None: plaintext),
        presenting the client certificate of the Gateway that took it, if it names one."""
        tls = self.backend_tls.get(target)
        if tls is None or not isinstance(parent, GatewayParent):
            return tls
        certificate = self.client_certificates.get((parent.namespace, parent.name))
        return tls if certificate is None else presenting(tls, certificate)

    def pick(
        self, target: BackendTarget, client: Address, prefer: Address | None = None
    ) -> Address:
        """The endpoint of ``target`` to send to, of those NetworkPolicy lets ``client``
        reach and outlier detection has not ejected: ``prefer`` (a session's endpoint) if
        it is one, else the cheaper of two by peak-EWMA (``l7proxy/resilience``)."""
        endpoints: Sequence[Address] = self.endpoints(target)
        admits = self.admits
        if admits is not None and endpoints:
            endpoints = [e for e in endpoints if admits(client, e)]
            if not endpoints:  # policy changed since handle() checked
                raise UpstreamFailure(f"no endpoints for {target} admit the client", sent=False)
        if not endpoints:
            raise UpstreamFailure(f"no endpoints for {target}", sent=False)
        return self.resilience.choose(target, endpoints, self.resilience.clock(), prefer)


def _with_audit(names: PolicyNames | None, audited: tuple[str, ...]) -> AuditedNames:
    """A served request's policy names with the AUDIT policies that matched it after them
    (``agent.flows.l7record``: its flow's verdict is AUDIT)."""
    if names is None:
        return (), (), audited
    return names[0], names[1], audited
