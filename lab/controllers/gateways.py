"""The lab's Gateway API controller: addresses for Tulle's Gateways, and the status of
every HTTPRoute, Gateway and GatewayClass, computed by the route engine (pure) and written
through the status subresource only when it changed."""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from agent.model.authz import AuthorizationPolicy
from agent.model.backendpolicy import BackendTrafficPolicy
from agent.model.backendtls import BackendTLSPolicy
from agent.model.cache import ModelCache
from agent.model.core import ConfigMap, Namespace, Secret, Service
from agent.model.fault import HTTPFault
from agent.model.gateway import Gateway, GatewayClass, ReferenceGrant
from agent.model.httproute import HTTPRoute
from agent.model.ratelimit import HTTPLocalRateLimitPolicy
from authz.status import policy_status
from gatewayapi import CONTROLLER_NAME, RoutingInputs, compute_status
from gatewayapi.backendpolicy import attach
from gatewayapi.backendtls import attach_backend_tls
from l7proxy.tlscerts import certificate_problem
from lab.ipam import allocate_cluster_ip
from lab.kubeapi import NotFound, StatusWriter

log = logging.getLogger("tulle.gateways")
KINDS = (
    "HTTPRoute",
    "Gateway",
    "GatewayClass",
    "ReferenceGrant",
    "Namespace",
    "Secret",
    "BackendTrafficPolicy",
    "AuthorizationPolicy",
    "HTTPFault",
    "HTTPLocalRateLimitPolicy",
    "BackendTLSPolicy",
    "ConfigMap",
)
_WITH_STATUS = (
    "HTTPRoute", "Gateway", "GatewayClass", "BackendTrafficPolicy", "AuthorizationPolicy",
    "HTTPLocalRateLimitPolicy", "BackendTLSPolicy",
)


def gateway_addresses(
    gateways: Sequence[Gateway], classes: Sequence[GatewayClass], services: Sequence[Service],
    taken: Sequence[str] = (),
) -> dict[tuple[str, str], str]:
    """Addresses for Tulle's Gateways that have none yet (pure). Drawn from the service range,
    so every lab node already routes them nowhere but through the datapath. ``taken``:
    other addresses in use (IngressClasses', ``ingresses.py``)."""
    ours = {c.metadata.name for c in classes if c.spec.controller_name == CONTROLLER_NAME}
    used: set[Any] = {
        ipaddress.ip_address(s.spec.cluster_ip)
        for s in services
        if s.spec.cluster_ip not in (None, "", "None")
    }
    used |= {ipaddress.ip_address(a.value) for g in gateways for a in g.status.addresses}
    used |= {ipaddress.ip_address(t) for t in taken}
    fresh = {}
    for gw in sorted(gateways, key=lambda g: g.metadata.key):
        if gw.spec.gateway_class_name in ours and not gw.status.addresses:
            ip = allocate_cluster_ip(("gateway", gw.metadata.namespace, gw.metadata.name), used)
            used.add(ip)
            fresh[(gw.metadata.namespace, gw.metadata.name)] = str(ip)
    return fresh


def ingress_ips(objects: Sequence[dict[str, Any]]) -> list[str]:
    """The IP addresses Ingresses' status announces (an IngressClass's address)."""
    out = []
    for obj in objects:
        if obj.get("kind") != "Ingress":
            continue
        for lb in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
            try:
                out.append(str(ipaddress.ip_address(lb.get("ip") or "")))
            except ValueError:
                continue
    return out


@functools.lru_cache(maxsize=256)
def _certificate_problem(crt: bytes, key: bytes) -> str | None:
    """The waypoint's own check (the same TLS library, the same errors); a Secret's content
    is checked once per content, not per reconcile."""
    return certificate_problem(crt, key)


class GatewayController:
    def __init__(self, api: StatusWriter) -> None:
        self.api = api
        self.models = ModelCache()
        self.current: dict[tuple[str, str, str], dict[str, Any]] = {}  # this round's statuses

    def reconcile(self, objects: Sequence[dict[str, Any]], services: Sequence[Service]) -> None:
        """``objects``: the kinds in KINDS as the API serves them (with their status)."""
        self.current = {
            (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): (
                o.get("status") or {}
            )
            for o in objects
            if o.get("kind") in _WITH_STATUS
        }
        typed = self.models.decode_all(objects, KINDS)
        routes = [o for o in typed if isinstance(o, HTTPRoute)]
        gateways = [o for o in typed if isinstance(o, Gateway)]
        classes = [o for o in typed if isinstance(o, GatewayClass)]
        taken = ingress_ips(objects)
        for (ns, name), ip in gateway_addresses(gateways, classes, services, taken).items():
            self._merge_status(
                "Gateway", ns, name, {"addresses": [{"type": "IPAddress", "value": ip}]}
            )
            log.info("gateway %s/%s: address %s", ns, name, ip)
        self._policy_status([o for o in typed if isinstance(o, BackendTrafficPolicy)], services)
        self._policy_status(
            [o for o in typed if isinstance(o, HTTPLocalRateLimitPolicy)], services
        )
        self._authorization_policies(typed, services, gateways)
        self._backend_tls_status(typed, services)
        if not routes and not gateways and not classes:
            return
        report = compute_status(
            RoutingInputs.of(
                routes,
                gateways,
                classes,
                services,
                [o for o in typed if isinstance(o, ReferenceGrant)],
                [o for o in typed if isinstance(o, Namespace)],
                [o for o in typed if isinstance(o, Secret)],
                faults=[o for o in typed if isinstance(o, HTTPFault)],
            ),
            certificate_check=_certificate_problem,
        )
        for kind, statuses in (
            ("HTTPRoute", report.routes),
            ("Gateway", report.gateways),
            ("GatewayClass", report.gateway_classes),
        ):
            for key, status in statuses.items():
                ns, _, name = key.rpartition("/")
                self._merge_status(kind, ns, name, status)

    def _policy_status(
        self, policies: Sequence[BackendTrafficPolicy] | Sequence[HTTPLocalRateLimitPolicy],
        services: Sequence[Service],
    ) -> None:
        """GEP-713 status of each BackendTrafficPolicy or HTTPLocalRateLimitPolicy (one kind
        per call: each kind is attached on its own; ``gatewayapi.backendpolicy``)."""
        if not policies:
            return
        policy_kind = policies[0].kind
        previous = {
            f"{ns}/{name}": status
            for (kind, ns, name), status in self.current.items()
            if kind == policy_kind
        }
        report = attach(policies, services, previous, datetime.now(UTC))
        for key, status in report.statuses.items():
            ns, _, name = key.partition("/")
            self._merge_status(policy_kind, ns, name, status)

    def _backend_tls_status(self, typed: Sequence[Any], services: Sequence[Service]) -> None:
        """Accepted and ResolvedRefs on each BackendTLSPolicy (``gatewayapi.backendtls``)."""
        policies = [o for o in typed if isinstance(o, BackendTLSPolicy)]
        if not policies:
            return
        previous = {
            f"{ns}/{name}": status
            for (kind, ns, name), status in self.current.items()
            if kind == "BackendTLSPolicy"
        }
        config_maps = [o for o in typed if isinstance(o, ConfigMap)]
        report = attach_backend_tls(policies, services, config_maps, previous, datetime.now(UTC))
        for key, status in report.statuses.items():
            ns, _, name = key.partition("/")
            self._merge_status("BackendTLSPolicy", ns, name, status)

    def _authorization_policies(
        self, typed: Sequence[Any], services: Sequence[Service], gateways: Sequence[Gateway]
    ) -> None:
        """Accepted (GEP-713) on each AuthorizationPolicy (authz/status.py)."""
        service_names = {(s.metadata.namespace, s.metadata.name) for s in services}
        gateway_names = {(g.metadata.namespace, g.metadata.name) for g in gateways}
        now = datetime.now(UTC)
        for policy in typed:
            if not isinstance(policy, AuthorizationPolicy):
                continue
            ns, name = policy.metadata.namespace, policy.metadata.name
            previous = self.current.get(("AuthorizationPolicy", ns, name), {})
            status = policy_status(policy, service_names, gateway_names,
                                   previous.get("conditions") or [], now)
            self._merge_status("AuthorizationPolicy", ns, name, status)

    def _merge_status(self, kind: str, ns: str, name: str, status: dict[str, Any]) -> None:
        current = self.current.get((kind, ns, name))
        if current is None:
            return
        merged = {**current, **status}
        if merged != current:
            try:
                self.api.update_status(kind, ns, name, merged)
            except NotFound:
                return
            self.current[(kind, ns, name)] = merged  # a later write this round builds on it
