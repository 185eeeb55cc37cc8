"""What LoadBalancer IPAM wants written, pure: which objects claim an address, the
allocation, and the status each claimant (or former claimant) should carry.

- A Service of type LoadBalancer with no ``loadBalancerClass`` or Tulle's
  (``LOAD_BALANCER_CLASS``) gets ``status.loadBalancer.ingress: [{ip, ipMode: VIP}]``; one of
  another class is another implementation's and left alone; one that stopped being a
  LoadBalancer gives its address back (its ingress is emptied).
- A Gateway of a GatewayClass whose controller is Tulle's gets ``status.addresses:
  [{type: IPAddress, value}]``; ``spec.addresses`` asks for one (the first IPAddress entry
  with a value; one without a value asks for any; Tulle gives a Gateway one address).
- An IngressClass of Tulle's controller that serves at least one Ingress gets one address
  for all its Ingresses (the waypoints serve them all there, on 80 and 443), which the
  Ingress controller writes to each one's ``status.loadBalancer.ingress``; the address they
  already show is kept.
- A claim that waits has no address (never one outside a pool) and a reason, which the
  controller reports (an Event; a Gateway's ``Programmed`` condition, reason
  ``AddressNotAssigned`` as the Gateway API names it, or ``AddressNotUsable`` when the
  address it asked for cannot be given).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from agent.model.core import Service, ServiceType
from agent.model.gateway import Gateway, GatewayClass
from agent.model.ingress import Ingress, IngressClass
from agent.model.lbpool import LOAD_BALANCER_CLASS, LoadBalancerIPPool
from controlplane.lbipam.allocate import Claim, Key, allocate
from gatewayapi import CONTROLLER_NAME
from gatewayapi.ingress.classes import served_ingresses

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


def _gateway_claim(gw: Gateway) -> Claim:
    requested = requested_address(gw)
    current = next((a.value for a in gw.status.addresses if a.type == "IPAddress"), None)
    return Claim(("Gateway", gw.metadata.namespace, gw.metadata.name),
                 dict(gw.metadata.labels), requested, current)


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
    claims = [_service_claim(s) for s in services if ours(s)]
    claims += [_gateway_claim(g) for g in tulle_gateways]
    served = served_ingresses(ingresses, ingress_classes)
    labels = {c.metadata.name: dict(c.metadata.labels) for c in ingress_classes}
    claims += [_ingress_class_claim(n, labels[n], m) for n, m in sorted(served.items())]
    allocation = allocate(pools, claims)
    wanted: dict[tuple[str, str], dict[str, object]] = {}
    for svc in services:
        key = (svc.metadata.namespace, svc.metadata.name)
        if ours(svc):
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
