"""The Gateway Service controller: a thin shell over ``controlplane.gatewayservice`` (pure)
that creates, updates and deletes each of Tulle's Gateways' Service of type LoadBalancer.
It runs before LoadBalancer IPAM in a round (``lab/controllers/manager.py``,
``controlplane/controller/status.py``); a Service it creates reaches the view, so the next
round's IPAM gives it its address. A Gateway whose Service name a user's Service holds is
reported by the Gateway controller (``Programmed`` False), from ``controlplane.lbipam.plan``;
here it is logged once per reason."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from lightkube import ApiError

from agent.model.cache import ModelCache
from agent.model.core import Service
from agent.model.gateway import Gateway, GatewayClass
from controlplane.gatewayservice import ServicePlan, plan
from gatewayapi import CONTROLLER_NAME
from lab.kubeapi import ApiWriter, Conflict, NotFound

log = logging.getLogger("tulle.gatewayservices")
KINDS = ("Gateway", "GatewayClass")


class GatewayServiceController:
    def __init__(self, api: ApiWriter) -> None:
        self.api = api
        self.models = ModelCache()
        self.reported: dict[tuple[str, str], str] = {}  # conflicts logged, per Gateway

    def reconcile(self, objects: Sequence[dict[str, Any]],
                  services: Sequence[Service]) -> ServicePlan:
        typed = self.models.decode_all(objects, KINDS)
        classes = {c.metadata.name for c in typed
                   if isinstance(c, GatewayClass) and c.spec.controller_name == CONTROLLER_NAME}
        gateways = [g for g in typed
                    if isinstance(g, Gateway) and g.spec.gateway_class_name in classes]
        served = {(o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
                  for o in objects if o.get("kind") == "Service"}
        result = plan(gateways, services, served)
        for obj in result.create:
            meta = obj["metadata"]
            try:
                self.api.create(obj)
            except ApiError as err:
                if err.status.code == 404:
                    # The Gateway's namespace is gone (a Gateway created as it was deleted
                    # can outlive it): no Service there, and the other Gateways' Services
                    # and every status of the round still go through.
                    log.warning("gateway %s/%s: no Service: namespace %s not found",
                                meta["namespace"], meta["ownerReferences"][0]["name"],
                                meta["namespace"])
                elif err.status.code != 409:
                    raise
                continue  # 409 AlreadyExists: the view lacked it; the next round decides
            log.info("gateway %s/%s: created Service %s", meta["namespace"],
                     meta["ownerReferences"][0]["name"], meta["name"])
        for obj in result.update:
            try:
                self.api.update(obj)
            except (Conflict, NotFound):
                continue  # changed or gone meanwhile: the next round plans from the news
            log.info("updated Service %s/%s of its Gateway", obj["metadata"]["namespace"],
                     obj["metadata"]["name"])
        for ns, name in result.delete:
            if self.api.delete("Service", ns, name):
                log.info("deleted Service %s/%s: its Gateway is gone or not Tulle's", ns, name)
        for (ns, name), why in result.conflicts.items():
            if self.reported.get((ns, name)) != why:
                log.warning("gateway %s/%s: %s", ns, name, why)
        self.reported = dict(result.conflicts)
        return result
