"""What to create, update and delete so that each Gateway of Tulle's class has its Service
(pure; ``agent.model.gateway_service`` names it and tells it from a user's).

The Service (GEP-1762 "resources created in response to the Gateway"):

- ``type: LoadBalancer``, ``loadBalancerClass: tulle.io/lb``: Tulle's LoadBalancer IPAM gives
  it an address (the Gateway's ``spec.addresses`` request honoured), which becomes the
  Gateway's ``status.addresses``; no other load balancer implementation acts on it;
- no selector: nothing behind it is a pod; the agent serves its address as the Gateway's
  (through the waypoint) and programs no endpoint entry for it (``looks_like_gateway_service``);
- one port per (port, protocol) of the Gateway's listeners (HTTP, HTTPS, TLS and TCP are TCP;
  UDP is UDP), named ``<protocol>-<port>``; a nodePort the API server assigned is kept: the
  agents serve each node's address at the nodePort of an HTTP, HTTPS or TLS listener's port as
  that listener (through the waypoint), which is how a Gateway no pool gives an address stays
  reachable (issue 13, ``agent/datapath/gateway_nodeports.py``);
- labels: the Gateway's ``spec.infrastructure.labels`` plus ``gateway-name: <Gateway>`` (ours
  last: an infrastructure label cannot rename the owner); annotations: the infrastructure ones;
- a controller ownerReference to the Gateway (garbage collection removes it with the Gateway
  on a cluster; this plan also deletes it, for a lab or a Gateway that left Tulle's class).

Labels and annotations are the controller's alone (replaced, not merged), so an
infrastructure label removed from the Gateway leaves the Service too.

A Service of the derived name that is not the Gateway's (no controller ownerReference with its
uid) is never overwritten nor deleted: the Gateway gets no address, and ``conflicts`` says why
(the Gateway's ``Programmed`` condition, ``controlplane/lbipam/plan.py``). A Service whose
loadBalancerClass differs (the field is immutable) is deleted, to be made again next round.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.model.core import Service
from agent.model.gateway import Gateway, ListenerProtocol
from agent.model.gateway_service import (
    GATEWAY_GROUP,
    GATEWAY_NAME_LABEL,
    gateway_owner,
    is_service_of,
    service_name,
)
from agent.model.lbpool import LOAD_BALANCER_CLASS

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)
_MANAGED_PORT_FIELDS = ("name", "port", "protocol", "targetPort", "nodePort")


@dataclass(frozen=True, slots=True)
class ServicePlan:
    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)  # the served object, changed (its rv kept)
    delete: list[Key] = field(default_factory=list)
    conflicts: dict[Key, str] = field(default_factory=dict)  # Gateway -> why it has no Service


def _ports(gateway: Gateway) -> list[Obj]:
    wanted = sorted({
        (listener.port, "UDP" if listener.protocol is ListenerProtocol.UDP else "TCP")
        for listener in gateway.spec.listeners
    })
    return [{"name": f"{protocol.lower()}-{port}", "port": port, "protocol": protocol,
             "targetPort": port} for port, protocol in wanted]


def desired_service(gateway: Gateway) -> Obj:
    """The Service ``gateway`` should have (without anything the API server assigns)."""
    meta = gateway.metadata
    infra = gateway.spec.infrastructure
    labels = {**(dict(infra.labels) if infra else {}), GATEWAY_NAME_LABEL: meta.name}
    annotations = dict(infra.annotations) if infra else {}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(meta.name),
            "namespace": meta.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": f"{GATEWAY_GROUP}/v1", "kind": "Gateway", "name": meta.name,
                "uid": meta.uid, "controller": True,
            }],
        },
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": LOAD_BALANCER_CLASS,
            "ports": _ports(gateway),
        },
    }


def _updated(served: Obj, wanted: Obj) -> Obj:
    """``served`` with the fields the controller owns set as ``wanted`` says; what the API
    server assigned (clusterIP, nodePorts, defaults) kept."""
    out = copy.deepcopy(served)
    meta, spec = out.setdefault("metadata", {}), out.setdefault("spec", {})
    for name in ("labels", "annotations", "ownerReferences"):
        meta[name] = wanted["metadata"][name]
    spec["type"] = wanted["spec"]["type"]
    spec.pop("selector", None)
    node_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                  for p in spec.get("ports") or []}
    ports = []
    for port in wanted["spec"]["ports"]:
        node_port = node_ports.get((port["port"], port["protocol"]))
        ports.append({**port, "nodePort": node_port} if node_port else dict(port))
    spec["ports"] = ports
    return out


def _managed(obj: Obj) -> Obj:
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    return {
        "labels": meta.get("labels") or {},
        "annotations": meta.get("annotations") or {},
        "ownerReferences": meta.get("ownerReferences") or [],
        "type": spec.get("type"),
        "selector": spec.get("selector") or {},
        "ports": [{k: p[k] for k in _MANAGED_PORT_FIELDS if k in p}
                  for p in spec.get("ports") or []],
    }


def plan(gateways: Sequence[Gateway], services: Sequence[Service],
         served: Mapping[Key, Obj]) -> ServicePlan:
    """``gateways``: Tulle's (of a GatewayClass whose controller is Tulle's); ``services``:
    every Service, typed, and ``served`` the same as the API serves them."""
    result = ServicePlan()
    by_key = {(s.metadata.namespace, s.metadata.name): s for s in services}
    kept: set[Key] = set()
    for gw in sorted(gateways, key=lambda g: (g.metadata.namespace, g.metadata.name)):
        if not gw.metadata.uid:
            continue  # not from the API (a manifest): nothing can own a Service
        key = (gw.metadata.namespace, service_name(gw.metadata.name))
        gw_key = (gw.metadata.namespace, gw.metadata.name)
        wanted = desired_service(gw)
        existing = by_key.get(key)
        if existing is None:
            result.create.append(wanted)
            continue
        if not is_service_of(existing, gw):
            result.conflicts[gw_key] = (
                f"Service {key[0]}/{key[1]} exists and is not this Gateway's (no controller "
                "ownerReference to it): not overwritten; delete or rename that Service"
            )
            continue
        kept.add(key)
        raw = served.get(key)
        if raw is None:
            continue  # typed but not served: the next round has it
        if (raw.get("spec") or {}).get("loadBalancerClass") != LOAD_BALANCER_CLASS:
            result.delete.append(key)  # immutable: made again next round
            continue
        updated = _updated(raw, wanted)
        if _managed(updated) != _managed(raw):
            result.update.append(updated)
    for svc in services:
        key = (svc.metadata.namespace, svc.metadata.name)
        ref = gateway_owner(svc.metadata)
        if ref is None or key in kept or svc.metadata.name != service_name(ref.name):
            continue  # not one this controller makes, or still wanted
        if any(g.metadata.uid == ref.uid and g.metadata.namespace == key[0] for g in gateways):
            continue  # its Gateway is ours and present (a conflicting duplicate is left)
        result.delete.append(key)
    return result
