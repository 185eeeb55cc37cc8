"""AuthorizationPolicy in the waypoint: the request's peer and destination from the cluster
view, the decision from ``authz`` (pure), per request after routing and before upstream.

The peer's identity is that of the pod at the client address (its namespace and
ServiceAccount, and so its SPIFFE ID): the kernel only lets a pod send from its own address,
and an mTLS-enrolled pod's certificate carries that same ServiceAccount (the CA issues it
for the pod's ServiceAccount), so the two agree. An address held by no pod, or by two, is
no identity: principal, namespace and ServiceAccount rules do not match it (fail closed).

A request goes to one endpoint of its backend, picked later; every endpoint it could reach
must allow it (an endpoint's pod may be selected by other policies than its neighbours').
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from agent.model.authz import AuthorizationPolicy
from agent.model.convert import from_dict
from agent.model.core import Pod, Service
from agent.model.frozen import EMPTY
from agent.model.grpcroute import GRPCRoute
from agent.model.httproute import HTTPRoute
from authz import (
    CompiledPolicies,
    Destination,
    Peer,
    Verdict,
    applicable,
    compile_policies,
    key_of,
    steered_services,
)
from authz.compiled import header_names
from authz.residual import (
    Connection,
    Residual,
    connection_facts,
    header_key,
    narrow,
    pick_headers,
)
from gatewayapi import GatewayParent, Parent, ServiceParent
from gatewayapi.paths import PathRefused, normalize_path

log = logging.getLogger("tulle.waypoint.authz")
Address = tuple[str, int]
RawHeaders = Sequence[tuple[bytes, bytes]]
_NO_HEADERS: Mapping[str, tuple[str, ...]] = EMPTY
DENIED_BODY = b"RBAC: access denied"  # Envoy's RBAC filter's body, which Istio users know
VERDICTS_KEPT = 4096
"""Verdicts remembered (``AuthzGate.check``) before the memo starts over."""
VERDICT_KEY_CHARS = 2048
"""A request whose target, authority and read header values are longer than this together
is judged every time: the memo stays within ~VERDICTS_KEPT x this many characters."""
VERDICTS_BYPASSED = 16 * VERDICTS_KEPT
"""Requests judged without the memo after it filled with fewer than one hit per
``FUTILE_HITS`` verdicts kept (paths with ids: no request repeats). Then it is tried again."""
FUTILE_HITS = 16
PICKED_KEPT = 1024
"""Decoded read header fields remembered (``AuthzGate._pick``) before starting over."""
PICKED_FIELD_CHARS = 512
"""Read header fields longer than this together are decoded every time."""
_MISS = object()


@dataclass(frozen=True, slots=True)
class _PodInfo:
    namespace: str
    labels: dict[str, str]
    service_account: str


class Call(NamedTuple):
    """What the gate reads of one routed request. A NamedTuple: immutable, and built per
    request for about a third of a frozen dataclass's cost (no ``object.__setattr__``
    per field)."""

    client: Address
    parent: Parent | None
    endpoints: Sequence[Address]
    method: str
    authority: str
    target: str
    headers: RawHeaders
    sni: str = ""


# Bounds on what the gate keeps between policy changes. Distinct residuals are few (one per
# caller identity, say) unless the policies read client-chosen facts (peer address, SNI);
# each keeps up to authz.residual.LINES_KEPT narrowed request lines (~38 KB at most with 20
# rules), so 1,024 residuals bound that memory near 40 MB.
RESIDUALS_KEPT = 65536
NARROWED_KEPT = 1024


class AuthzGate:
    """The current policies and pods, swapped on change; ``check`` per request."""

    def __init__(self, trust_domain: str) -> None:
        self.trust_domain = trust_domain
        self.swap((), ())

    def swap(self, policies: Iterable[AuthorizationPolicy], pods: Iterable[Pod]) -> None:
        self.policies = tuple(policies)
        by_ip: dict[str, list[_PodInfo]] = {}
        for pod in pods:
            ip = pod.status.pod_ip
            # A hostNetwork pod's address is its node's: every process on the node uses it,
            # so it names the host, never that pod's identity (as in the kernel's endpoints
            # and hbone/directory.py).
            live = pod.status.phase not in ("Succeeded", "Failed")
            if ip and live and not pod.spec.host_network:
                info = _PodInfo(pod.metadata.namespace, dict(pod.metadata.labels),
                                pod.spec.service_account)
                by_ip.setdefault(ip, []).append(info)
        self._pods = by_ip
        # The identity of each address, built once per change, not per request.
        self._peers = {
            ip: Peer.of_pod(ip, self.trust_domain, found[0].namespace, found[0].service_account)
            for ip, found in by_ip.items() if len(found) == 1
        }
        self._applicable: dict[tuple[Parent | None, str], CompiledPolicies] = {}
        # One matcher per distinct set of policies (many destinations share one), compiled
        # on first use after a swap (authz.compiled: the evaluator's verdicts, cheaper).
        self._compiled: dict[tuple[str, ...], CompiledPolicies] = {}
        # Per (parent, endpoint, port, client address, SNI): the rules left to test per
        # request once the connection's facts are known (``authz.residual``).
        self._residuals: dict[tuple[Parent | None, str, int, str, str], Residual | None] = {}
        self._narrowed: dict[tuple[CompiledPolicies, tuple[object, ...]], Residual] = {}
        # Every header name a rule of any policy reads: a request's verdict depends on
        # these fields and no others (``check``'s memo key).
        self._header_names = header_names(self.policies)
        self._header_key = header_key(self._header_names)
        self._verdicts: dict[tuple[object, ...], Verdict | None] = {}
        self._picked: dict[tuple[RawHeaders, frozenset[str]], dict[str, tuple[str, ...]]] = {}
        self._hits = 0  # since the memo was last cleared
        self._bypass = 0  # requests left to judge without the memo

    def peer(self, ip: str) -> Peer:
        return self._peers.get(ip) or Peer(ip)

    def _policies_for(self, parent: Parent | None, ip: str) -> CompiledPolicies:
        key = (parent, ip)
        found = self._applicable.get(key)
        if found is None:
            service = (parent.namespace, parent.name) if isinstance(parent, ServiceParent) else None
            gateway = (parent.namespace, parent.name) if isinstance(parent, GatewayParent) else None
            chosen: dict[str, AuthorizationPolicy] = {}
            for pod in self._pods.get(ip, ()) or (None,):
                where = Destination(
                    pod=(pod.namespace, pod.labels) if pod is not None else None,
                    service=service,
                    gateway=gateway,
                )
                for p in applicable(self.policies, where):
                    chosen[key_of(p)] = p
            if len(self._applicable) > 65536:
                self._applicable.clear()
                self._compiled.clear()
            keys = tuple(sorted(chosen))
            found = self._compiled.get(keys)
            if found is None:
                found = compile_policies([chosen[k] for k in keys])
                self._compiled[keys] = found
            self._applicable[key] = found
        return found

    def _residual_for(self, parent: Parent | None, ip: str, port: int, client: str,
                      sni: str) -> Residual | None:
        """The policies of one endpoint narrowed to the connection's facts (None: no policy
        applies there), built on the connection's first request and kept until the
        policies or pods change (``swap``)."""
        key = (parent, ip, port, client, sni)
        try:
            return self._residuals[key]
        except KeyError:
            pass
        policies = self._policies_for(parent, ip)
        found = None
        if policies.policies:
            connection = Connection(self.peer(client), ip, port, sni)
            # Keys that agree on what the policies read share one residual: the memory
            # is per distinct residual (few: one per caller identity, say), not per key.
            shared = (policies, connection_facts(policies, connection))
            found = self._narrowed.get(shared)
            if found is None:
                found = self._narrowed[shared] = narrow(policies, connection)
        if len(self._residuals) > RESIDUALS_KEPT or len(self._narrowed) > NARROWED_KEPT:
            self._residuals.clear()
            self._narrowed.clear()
        self._residuals[key] = found
        return found

    def check(self, call: Call) -> Verdict | None:
        """The denial; or, for a request that may go on, an allowing Verdict naming the
        AUDIT policies that matched (``audited``: its flow's verdict is AUDIT), or None when
        none did (no policy applies, or every endpoint's policies allow it unaudited).

        The verdict is a function of the policies and pods (``swap``, which forgets every
        verdict) and of the call's caller address, parent, endpoints, SNI, method,
        authority, target and the header fields a rule reads: kept per those (a keep-alive
        client repeating a request is judged once; any difference in them is judged
        anew). A verdict naming AUDIT policies is not kept: each such request is logged.

        When requests do not repeat (ids in paths), the memo costs a key, a store and its
        clearing on every request and answers none (~9 k instructions per request, 20% of
        judging one: bench/results/authz-miss-2026-12-06.md): once it fills with fewer than
        one hit per ``FUTILE_HITS`` kept, the next ``VERDICTS_BYPASSED`` requests are judged
        without it, then it is tried again. Either way each request gets its verdict."""
        if not self.policies:
            return None
        client_address, parent, endpoints, method, authority, target, raw, sni = call
        fields = self._header_key(raw)
        if self._bypass:
            self._bypass -= 1
            return self._judge(call, fields)[0]
        key = (client_address[0], parent,
               endpoints if type(endpoints) is tuple else tuple(endpoints),
               sni, method, authority, target, fields)
        found = self._verdicts.get(key, _MISS)
        if found is not _MISS:
            self._hits += 1
            return found  # type: ignore[return-value]
        verdict, logged = self._judge(call, fields)
        if not logged and len(target) + len(authority) + (
                sum([len(v) for _, v in fields]) if fields else 0) <= VERDICT_KEY_CHARS:
            if len(self._verdicts) >= VERDICTS_KEPT:
                self._verdicts.clear()
                if self._hits * FUTILE_HITS < VERDICTS_KEPT:
                    self._bypass = VERDICTS_BYPASSED
                    self._hits = 0
                    return verdict
                self._hits = 0
            self._verdicts[key] = verdict
        return verdict

    def _judge(self, call: Call, fields: RawHeaders) -> tuple[Verdict | None, bool]:
        """``check``'s verdict, computed; and whether an AUDIT policy matched (logged).
        ``fields``: the call's header fields that any rule reads (``_header_key``), a
        superset of those any one endpoint's rules read, so the headers are picked from
        them and the others are never decoded."""
        client_address, parent, endpoints, method, authority, target, _, sni = call
        try:
            # The path as routed and forwarded (``/x/../admin`` is ``/admin``), as Envoy
            # normalizes before its RBAC filter; route rewrites come after, as there.
            path = normalize_path(target.partition("?")[0])
        except PathRefused:
            return Verdict(False, tuple(sorted(key_of(p) for p in self.policies))), False
        client = client_address[0]
        # The headers are decoded only for the names a rule reads; endpoints whose policies
        # differ read different names, so they are picked again for each new set of names.
        picked: Mapping[str, tuple[str, ...]] = _NO_HEADERS
        picked_for: frozenset[str] = frozenset()
        audited: dict[str, None] | None = None
        for ip, port in endpoints or [("", parent.port if parent is not None else 0)]:
            residual = self._residual_for(parent, ip, port, client, sni)
            if residual is None:
                continue
            names = residual.header_names
            if names and names is not picked_for:
                picked, picked_for = self._pick(fields, names), names
            verdict = residual.evaluate(method, authority, path,
                                        picked if names else _NO_HEADERS)
            if verdict.audited:
                log.info("audit %s %s %s%s from %s: %s", ", ".join(verdict.audited),
                         method, authority, target, self.peer(client).principal or client,
                         "allowed" if verdict.allowed else "denied")
                audited = audited or {}
                audited.update(dict.fromkeys(verdict.audited))
            if not verdict.allowed:
                return verdict, audited is not None
        # Every endpoint the request could reach allows it: the AUDIT policies of any of
        # them that matched are named (the endpoint is picked later).
        return (Verdict(True, audited=tuple(audited)), True) if audited else (None, False)


    def _pick(self, fields: RawHeaders, names: frozenset[str]) -> Mapping[str, tuple[str, ...]]:
        """``pick_headers``, kept per (fields, names): read header values repeat across
        requests whose paths do not (a client version, a tenant), and decoding them cost
        ~4 k instructions per request. Only short fields are kept (bounded memory); the
        mapping is shared, so no caller may change it (``Residual.evaluate`` only reads)."""
        key = (fields if type(fields) is tuple else tuple(fields), names)
        found = self._picked.get(key)
        if found is None:
            found = pick_headers(fields, names)
            if sum([len(v) + len(n) for n, v in fields]) <= PICKED_FIELD_CHARS:
                if len(self._picked) >= PICKED_KEPT:
                    self._picked.clear()
                self._picked[key] = found
        return found


def default_routes(
    policies: Sequence[AuthorizationPolicy], services: Sequence[Service],
    routes: Sequence[HTTPRoute | GRPCRoute], targeted: Iterable[tuple[str, str]] = (),
) -> list[HTTPRoute]:
    """For each Service the datapath steers to the waypoint for AuthorizationPolicy
    (``authz.steer``) or for a BackendTrafficPolicy or HTTPLocalRateLimitPolicy
    (``targeted``: ``gatewayapi.backendpolicy.targeted_services``) and no HTTPRoute or
    GRPCRoute has as parent, one route per TCP port to the Service itself: the waypoint
    forwards what it was sent, as Istio's waypoint does by default."""
    steered = set(targeted) | (steered_services(policies, services) if policies else set())
    if not steered:
        return []
    routed = {
        (ref.namespace or r.metadata.namespace, ref.name)
        for r in routes for ref in r.spec.parent_refs if (ref.group, ref.kind) == ("", "Service")
    }
    by_name = {(s.metadata.namespace, s.metadata.name): s for s in services}
    out = []
    for key in sorted(steered - routed):
        svc = by_name.get(key)
        if svc is None:
            continue
        for port in svc.spec.ports:
            if port.protocol != "TCP":
                continue
            route = from_dict({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": {"name": f"tulle-authz-{key[1]}-{port.port}"[:253],
                             "namespace": key[0]},
                "spec": {
                    "parentRefs": [{"group": "", "kind": "Service", "name": key[1],
                                    "port": port.port}],
                    "rules": [{"backendRefs": [{"name": key[1], "port": port.port}]}],
                },
            })
            assert isinstance(route, HTTPRoute)
            out.append(route)
    return out
