"""The lab's Gateway API controller: the status of every HTTPRoute, GRPCRoute, TCPRoute,
UDPRoute, Gateway and GatewayClass, computed by the route engine (pure) and written through
the status subresource only when it changed. Tulle's Gateways' addresses come from the
LoadBalancer pools through each Gateway's own Service of type LoadBalancer
(``controlplane.lbipam``, run by ``lab/controllers/loadbalancer.py``; the Services are
``lab/controllers/gatewayservices.py``'s); this writes them."""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent.datapath.gateway_nodeports import (
    gateway_node_ports,
    ports_text,
    waypoint_node_ports,
)
from agent.model.authz import AuthorizationPolicy
from agent.model.backendpolicy import BackendTrafficPolicy
from agent.model.backendtls import BackendTLSPolicy
from agent.model.cache import ModelCache
from agent.model.core import ConfigMap, Namespace, Secret, Service
from agent.model.fault import HTTPFault
from agent.model.gateway import Gateway, GatewayClass, ReferenceGrant
from agent.model.grpcroute import GRPCRoute
from agent.model.httproute import HTTPRoute
from agent.model.l4route import TCPRoute, UDPRoute
from agent.model.lbpool import LoadBalancerIPPool
from agent.model.listenerset import ListenerSet
from agent.model.ratelimit import HTTPLocalRateLimitPolicy
from agent.model.tlsroute import TLSRoute
from authz.status import policy_status
from controlplane.lbipam import Plan, requested_address
from controlplane.lbipam import plan as plan_addresses
from gatewayapi import RoutingInputs, compute_status
from gatewayapi.backendpolicy import attach
from gatewayapi.backendtls import attach_backend_tls, gateways_by_service
from gatewayapi.crdversion import VersionCheck, check_crds
from gatewayapi.supported_features import SUPPORTED_FEATURES
from l7proxy.tlscerts import certificate_problem
from lab.kubeapi import NotFound, StatusWriter

if TYPE_CHECKING:
    from lightkube import Client

log = logging.getLogger("tulle.gateways")
KINDS = (
    "HTTPRoute",
    "GRPCRoute",
    "TLSRoute",
    "TCPRoute",
    "UDPRoute",
    "Gateway",
    "GatewayClass",
    "ListenerSet",
    "ReferenceGrant",
    "Namespace",
    "Secret",
    "BackendTrafficPolicy",
    "AuthorizationPolicy",
    "HTTPFault",
    "HTTPLocalRateLimitPolicy",
    "LoadBalancerIPPool",
    "BackendTLSPolicy",
    "ConfigMap",
)
# GatewayClass status.supportedFeatures (v1.2+): a list of {name}, sorted by name.
SUPPORTED_FEATURE_STATUS = [{"name": f} for f in sorted(SUPPORTED_FEATURES)]
_WITH_STATUS = (
    "HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute", "Gateway", "GatewayClass",
    "ListenerSet", "BackendTrafficPolicy",
    "AuthorizationPolicy", "HTTPLocalRateLimitPolicy", "BackendTLSPolicy",
)


def check_gateway_api(client: Client) -> VersionCheck:
    """The installed Gateway API CRDs against the versions Tulle supports, read once at
    start (gatewayapi.crdversion); logged, and reported on Tulle's GatewayClasses as their
    SupportedVersion condition. CRDs that cannot be read are an unknown version."""
    from lightkube.resources.apiextensions_v1 import CustomResourceDefinition

    try:
        crds = [crd.to_dict() for crd in client.list(CustomResourceDefinition)]
    except Exception as err:  # an API error or the API away: say so, serve on best effort
        check = VersionCheck(False, f"cannot read the Gateway API CRDs ({err})")
    else:
        check = check_crds(crds)
    if check.supported:
        log.info("Gateway API: %s", check.message)
    else:
        log.warning("Gateway API: %s; serving on a best-effort basis", check.message)
    return check


@functools.lru_cache(maxsize=256)
def _certificate_problem(crt: bytes, key: bytes) -> str | None:
    """The waypoint's own check (the same TLS library, the same errors); a Secret's content
    is checked once per content, not per reconcile."""
    return certificate_problem(crt, key)


def with_address(status: dict[str, Any], address: str | None, reason: str,
                 requested: bool = False, node_ports: Mapping[int, int] | None = None
                 ) -> dict[str, Any]:
    """A Gateway's computed status with its pool address, or, while it waits for one, none
    and ``Programmed`` False with the Gateway API's reason: ``AddressNotUsable`` when it
    asked for an address (``spec.addresses``) that cannot be given, else
    ``AddressNotAssigned`` (no pool for it, or the pools are full). ``node_ports``
    (listener port -> its Service's nodePort): where it is served meanwhile, on every node's
    address (``agent/datapath/gateway_nodeports.py``), said in the message only: a node
    address in ``status.addresses`` would claim the listeners' own ports."""
    if address is not None:
        return {**status, "addresses": [{"type": "IPAddress", "value": address}]}
    why = "AddressNotUsable" if requested else "AddressNotAssigned"
    if node_ports:
        reason += (f"; served meanwhile at every node's address on its Service's nodePorts "
                   f"(listener port->nodePort: {ports_text(node_ports)})")
    conditions = [
        {**c, "status": "False", "reason": why, "message": reason}
        if c.get("type") == "Programmed" else c
        for c in status.get("conditions") or []
    ]
    return {**status, "addresses": [], "conditions": conditions}


class GatewayController:
    def __init__(self, api: StatusWriter, crd_versions: VersionCheck | None = None) -> None:
        self.api = api
        self.crd_versions = crd_versions  # None: not checked, no SupportedVersion condition
        self.models = ModelCache()
        self.current: dict[tuple[str, str, str], dict[str, Any]] = {}  # this round's statuses

    def reconcile(
        self,
        objects: Sequence[dict[str, Any]],
        services: Sequence[Service],
        lb: Plan | None = None,
    ) -> None:
        """``objects``: the kinds in KINDS as the API serves them (with their status);
        ``lb``: LoadBalancer IPAM's plan this round (the LoadBalancer controller's), which
        gives each of Tulle's Gateways its pool address; planned here when not given."""
        self.current = {
            (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): (
                o.get("status") or {}
            )
            for o in objects
            if o.get("kind") in _WITH_STATUS
        }
        typed = self.models.decode_all(objects, KINDS)
        routes = [o for o in typed if isinstance(o, HTTPRoute)]
        grpc_routes = [o for o in typed if isinstance(o, GRPCRoute)]
        tls_routes = [o for o in typed if isinstance(o, TLSRoute)]
        l4_routes = [o for o in typed if isinstance(o, TCPRoute | UDPRoute)]
        gateways = [o for o in typed if isinstance(o, Gateway)]
        classes = [o for o in typed if isinstance(o, GatewayClass)]
        if lb is None:
            pools = [o for o in typed if isinstance(o, LoadBalancerIPPool)]
            lb = plan_addresses(pools, services, gateways, classes)
        addresses = lb.gateways
        waiting = {(ns, name): why for (kind, ns, name), why in lb.waiting.items()
                   if kind == "Gateway"}
        requested = {(g.metadata.namespace, g.metadata.name) for g in gateways
                     if requested_address(g) is not None}
        node_ports = {(g.metadata.namespace, g.metadata.name): waypoint_node_ports(g, ports)
                      for g, ports in gateway_node_ports(gateways, classes, services)}
        self._policy_status([o for o in typed if isinstance(o, BackendTrafficPolicy)], services)
        self._policy_status(
            [o for o in typed if isinstance(o, HTTPLocalRateLimitPolicy)], services
        )
        self._authorization_policies(typed, services, gateways)
        self._backend_tls_status(typed, services)
        if not (routes or grpc_routes or tls_routes or l4_routes or gateways or classes):
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
                grpc_routes=grpc_routes,
                tls_routes=tls_routes,
                l4_routes=l4_routes,
                listener_sets=[o for o in typed if isinstance(o, ListenerSet)],
                config_maps=[o for o in typed if isinstance(o, ConfigMap)],
            ),
            certificate_check=_certificate_problem,
            crd_versions=self.crd_versions,
        )
        for kind, statuses in (
            ("HTTPRoute", report.routes),
            ("GRPCRoute", report.grpc_routes),
            ("TLSRoute", report.tls_routes),
            ("TCPRoute", report.tcp_routes),
            ("UDPRoute", report.udp_routes),
            ("Gateway", report.gateways),
            ("GatewayClass", report.gateway_classes),
            ("ListenerSet", report.listener_sets),
        ):
            for key, status in statuses.items():
                ns, _, name = key.rpartition("/")
                if kind == "GatewayClass":  # what the conformance run proves (conformance/)
                    status = {**status, "supportedFeatures": SUPPORTED_FEATURE_STATUS}
                if kind == "Gateway" and (ns, name) in addresses:
                    reason = waiting.get((ns, name), "no address assigned")
                    # AddressNotUsable only when the address asked for is what fails
                    # (not a Service squatting its name, nor a pool that selects it not).
                    status = with_address(status, addresses[(ns, name)], reason,
                                          (ns, name) in requested
                                          and reason.startswith("requested address"),
                                          node_ports.get((ns, name)))
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
        routes = [o for o in typed if isinstance(o, HTTPRoute | GRPCRoute)]
        report = attach_backend_tls(policies, services, config_maps, previous, datetime.now(UTC),
                                    gateways_by_service(routes))
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
