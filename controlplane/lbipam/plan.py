"""What LoadBalancer IPAM wants written, pure: which objects claim an address, the
allocation, and the status each claimant (or former claimant) should carry.

- A Service of type LoadBalancer with no ``loadBalancerClass`` or Tulle's
  (``LOAD_BALANCER_CLASS``) gets ``status.loadBalancer.ingress: [{ip, ipMode: VIP}]``; one of
  another class is another implementation's and left alone; one that stopped being a
  LoadBalancer gives its address back (its ingress is emptied).
- A Gateway of a GatewayClass whose controller is Tulle's gets its address through its own
  Service of type LoadBalancer (``controlplane/gatewayservice``, told from a user's by its
  controller ownerReference, ``agent.model.gateway_service.is_service_of``): the claim is the
  Gateway's (its key, hence the address it had before it had a Service; ``spec.addresses``
  asks for one: the first IPAddress entry with a value; one without a value asks for any),
  the address goes to that Service's ``status.loadBalancer.ingress`` and from there to the
  Gateway's ``status.addresses: [{type: IPAddress, value}]``. While its Service is not made
  yet (the first round, or re-made) the Gateway's claim holds on to the address it shows, so
  an upgrade neither releases nor reshuffles Gateway addresses; a Gateway whose Service's name
  a user's Service squats claims nothing and waits, saying why (a label or a name never makes
  a user's Service the Gateway's).
- An IngressClass of Tulle's controller that serves at least one Ingress gets one address
  for all its Ingresses (the waypoints serve them all there, on 80 and 443), which the
  Ingress controller writes to each one's ``status.loadBalancer.ingress``; the address they
  already show is kept.
- A claim that waits has no address (never one outside a pool) and a reason, which the
  controller reports (an Event; a Gateway's ``Programmed`` condition, reason
  ``AddressNotAssigned`` as the Gateway API names it, or ``AddressNotUsable`` when the
  address it asked for cannot be given). A waiting Gateway is still served at every node's
  address on its Service's nodePorts, which that message names
  (``agent/datapath/gateway_nodeports.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from agent.model.core import Service, ServiceType
from agent.model.gateway import Gateway, GatewayClass
from agent.model.gateway_service import is_service_of, service_name
from agent.model.ingress import Ingress, IngressClass
from agent.model.lbpool import LOAD_BALANCER_CLASS, LoadBalancerIPPool
from controlplane.gatewayservice import desired_service
from controlplane.lbipam.allocate import Claim, Key, allocate
from gatewayapi import CONTROLLER_NAME
from gatewayapi.ingress.classes import served_ingresses
from gatewayapi.parameters import class_parameters_problem, gateway_parameters_problem

__all__ = ["LOAD_BALANCER_CLASS", "Plan", "ours", "plan", "requested_address"]


@dataclass(frozen=True, slots=True)
class Plan:
    services: dict[tuple[str, str], dict[str, object]]  # (ns, name) -> status to merge
    gateways: dict[tuple[str, str], str | None]  # Tulle's Gateways -> address (None: waits)
    waiting: dict[Key, str]  # claim -> reason
    # Tulle's IngressClasses that serve an Ingress -> address (None: waits)
    ingress_classes: dict[str, str | None] = field(default_factory=dict)


def ours(service: Service) -> bool:
    return service.spec.type is ServiceType.LOAD_BALANCER and service.spec.load_balancer_class in (
        None,
        LOAD_BALANCER_CLASS,
    )


def _service_claim(svc: Service) -> Claim:
    current = next((i.ip for i in svc.status.load_balancer.ingress if i.ip), None)
    return Claim(("Service", svc.metadata.namespace, svc.metadata.name),
                 dict(svc.metadata.labels), svc.spec.load_balancer_ip, current)


def requested_address(gw: Gateway) -> str | None:
    """The address a Gateway asks for: its first IPAddress entry with a value (an entry
    without one asks for any address: GatewayAddressEmpty), or None."""
    return next((a.value for a in gw.spec.addresses if a.type == "IPAddress" and a.value), None)


def _gateway_claim(gw: Gateway, svc: Service | None) -> Claim:
    """The Gateway's claim, made through its Service: selected by the Gateway's labels and
    its Service's (infrastructure labels, gateway-name); holding the Service's address, else
    the one the Gateway shows. ``svc`` None: its Service is not made yet (first round after an
    upgrade, or re-made): the claim holds on with the labels the Service will carry, so the
    address is neither released nor reshuffled nor open to another claim meanwhile."""
    requested = requested_address(gw)
    current = None
    if svc is not None:
        current = next((i.ip for i in svc.status.load_balancer.ingress if i.ip), None)
    if current is None:
        current = next((a.value for a in gw.status.addresses if a.type == "IPAddress"), None)
    svc_labels = (svc.metadata.labels if svc is not None
                  else desired_service(gw)["metadata"]["labels"])
    labels = {**gw.metadata.labels, **svc_labels}
    return Claim(("Gateway", gw.metadata.namespace, gw.metadata.name), labels, requested,
                 current)


def _squatted(namespace: str, name: str) -> str:
    """Why a Gateway whose Service name another Service holds claims nothing: a user's
    Service never carries a Gateway's address."""
    return (f"Service {namespace}/{name} exists and is not this Gateway's (no controller "
            "ownerReference to it): not overwritten; delete or rename that Service")


def _ingress_class_claim(name: str, labels: dict[str, str], members: Sequence[Ingress]) -> Claim:
    current = next((lb.ip for i in members for lb in i.status.load_balancer.ingress if lb.ip),
                   None)  # the oldest Ingress's, as they are ordered
    return Claim(("IngressClass", "", name), labels, None, current)


def plan(
    pools: Iterable[LoadBalancerIPPool],
    services: Sequence[Service],
    gateways: Sequence[Gateway],
    classes: Sequence[GatewayClass],
    ingresses: Sequence[Ingress] = (),
    ingress_classes: Sequence[IngressClass] = (),
) -> Plan:
    tulle_classes = {c.metadata.name for c in classes if c.spec.controller_name == CONTROLLER_NAME}
    tulle_gateways = [g for g in gateways if g.spec.gateway_class_name in tulle_classes]
    by_name = {(s.metadata.namespace, s.metadata.name): s for s in services}
    class_problems = {c.metadata.name: class_parameters_problem(c) for c in classes}
    own: dict[tuple[str, str], Service] = {}  # Gateway -> its Service
    held: dict[tuple[str, str], str] = {}  # Gateway -> why it claims no address
    for gw in tulle_gateways:
        key = (gw.metadata.namespace, gw.metadata.name)
        named = by_name.get((key[0], service_name(key[1])))
        if named is not None and is_service_of(named, gw):
            own[key] = named
        # Refused for its parameters: not served, so it holds no address either.
        problem = gateway_parameters_problem(gw, class_problems.get(gw.spec.gateway_class_name))
        if problem is not None:
            held[key] = f"not served: {problem}"
        if named is not None and key not in own:
            held[key] = _squatted(key[0], named.metadata.name)
    gateway_services = {id(s) for s in own.values()}
    claims = [_service_claim(s) for s in services if ours(s) and id(s) not in gateway_services]
    claims += [_gateway_claim(g, own.get((g.metadata.namespace, g.metadata.name)))
               for g in tulle_gateways if (g.metadata.namespace, g.metadata.name) not in held]
    served = served_ingresses(ingresses, ingress_classes)
    labels = {c.metadata.name: dict(c.metadata.labels) for c in ingress_classes}
    claims += [_ingress_class_claim(n, labels[n], m) for n, m in sorted(served.items())]
    allocation = allocate(pools, claims)
    for (ns, name), why in held.items():
        allocation.waiting[("Gateway", ns, name)] = why
    owner = {id(svc): ("Gateway", *gw_key) for gw_key, svc in own.items()}
    wanted: dict[tuple[str, str], dict[str, object]] = {}
    for svc in services:
        key = (svc.metadata.namespace, svc.metadata.name)
        if id(svc) in owner:
            ip = allocation.addresses.get(owner[id(svc)])
            ingress = [{"ip": ip, "ipMode": "VIP"}] if ip else []
        elif ours(svc):
            ip = allocation.addresses.get(("Service", *key))
            ingress = [{"ip": ip, "ipMode": "VIP"}] if ip else []
        elif svc.spec.type is ServiceType.LOAD_BALANCER or not svc.status.load_balancer.ingress:
            continue  # another implementation's, or nothing to give back
        else:
            ingress = []  # no longer a LoadBalancer: the address returns to the pool
        have = [
            {k: v for k, v in (("ip", i.ip), ("ipMode", i.ip_mode)) if v}
            for i in svc.status.load_balancer.ingress
        ]
        if have != ingress:
            wanted[key] = {"loadBalancer": {"ingress": ingress}}
    return Plan(
        wanted,
        {
            (g.metadata.namespace, g.metadata.name): allocation.addresses.get(
                ("Gateway", g.metadata.namespace, g.metadata.name)
            )
            for g in tulle_gateways
        },
        allocation.waiting,
        {name: allocation.addresses.get(("IngressClass", "", name)) for name in served},
    )
