"""The lab's LoadBalancer IPAM controller: a thin shell over ``controlplane.lbipam`` (pure)
that writes each Service's ``status.loadBalancer`` through the status subresource and records
an Event (reason ``AllocationFailed``, MetalLB's) when a claim starts waiting or its reason
changes. Gateways' addresses go to the Gateway controller, which writes Gateway status, and
IngressClasses' to the Ingress controller, which writes them to their Ingresses."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from agent.model.cache import ModelCache
from agent.model.core import Service
from agent.model.gateway import Gateway, GatewayClass
from agent.model.ingress import Ingress, IngressClass
from agent.model.lbpool import LoadBalancerIPPool
from controlplane.lbipam import Plan, plan
from controlplane.lbipam.allocate import Key
from lab.controllers.events import EventSink
from lab.kubeapi import NotFound, StatusWriter

log = logging.getLogger("tulle.lbipam")
KINDS = ("LoadBalancerIPPool", "Gateway", "GatewayClass", "Ingress", "IngressClass")
COMPONENT = "tulle-lbipam"
_API_VERSIONS = {"Service": "v1", "Gateway": "gateway.networking.k8s.io/v1",
                 "IngressClass": "networking.k8s.io/v1"}


class LoadBalancerController:
    def __init__(self, api: StatusWriter, events: EventSink) -> None:
        self.api = api
        self.events = events
        self.models = ModelCache()
        self.reported: dict[Key, str] = {}  # the reason last reported per waiting claim

    def reconcile(self, objects: Sequence[dict[str, Any]], services: Sequence[Service]) -> Plan:
        typed = self.models.decode_all(objects, KINDS)
        result = plan(
            [o for o in typed if isinstance(o, LoadBalancerIPPool)],
            services,
            [o for o in typed if isinstance(o, Gateway)],
            [o for o in typed if isinstance(o, GatewayClass)],
            [o for o in typed if isinstance(o, Ingress)],
            [o for o in typed if isinstance(o, IngressClass)],
        )
        for (ns, name), status in result.services.items():
            try:
                self.api.update_status("Service", ns, name, status)
            except NotFound:
                continue
            log.info("service %s/%s: load balancer status %s", ns, name, status)
        for key, reason in result.waiting.items():
            if self.reported.get(key) != reason:
                kind, ns, name = key
                log.warning("%s %s/%s waits for a LoadBalancer address: %s", kind, ns, name, reason)
                about = {"apiVersion": _API_VERSIONS[kind], "kind": kind, "namespace": ns,
                         "name": name, "uid": ""}
                self.events.record(about, "AllocationFailed", f"no address: {reason}",
                                   COMPONENT, "Warning")
        self.reported = dict(result.waiting)
        return result
