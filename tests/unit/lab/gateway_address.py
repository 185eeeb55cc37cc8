"""Tulle's Gateways' addresses written into a lab store, as the lab controller's round does
it: each Gateway's own Service first (controlplane/gatewayservice), then the Gateway status
with the pool address that comes through it (for tests that drive the store directly)."""

from __future__ import annotations

from agent.model.convert import from_dict
from agent.model.core import Service
from agent.model.gateway import Gateway
from controlplane.gatewayservice import plan
from gatewayapi import CONTROLLER_NAME
from lab.controllers.gateways import GatewayController
from lab.store import Store


def address_gateways(store: Store) -> None:
    objs = store.list()[0]
    classes = {o["metadata"]["name"] for o in objs if o["kind"] == "GatewayClass"
               and o["spec"].get("controllerName") == CONTROLLER_NAME}
    gateways = [g for g in (from_dict(o) for o in objs if o["kind"] == "Gateway")
                if isinstance(g, Gateway) and g.spec.gateway_class_name in classes]
    for svc in plan(gateways, [], {}).create:
        store.create(svc)
    objs = store.list()[0]
    services = [s for s in (from_dict(o) for o in objs if o["kind"] == "Service")
                if isinstance(s, Service)]
    GatewayController(store).reconcile(objs, services)
