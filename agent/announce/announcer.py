"""The agent's announcement loop: from the cluster state it already watches (Nodes, Services,
Gateways, GatewayClasses, Ingresses, IngressClasses) to the addresses this node's ARP
responder answers for.

It looks once per ``INTERVAL`` and replans only when the state's revision moved, so a quiet
cluster costs nothing and a busy one one plan per second (a takeover after a node's agent
stops: its Node turns NotReady, the next look here elects again and sends gratuitous ARP)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any, Protocol

from agent.announce.election import announced_by, load_balancer_addresses, ready_nodes
from agent.model.cache import ModelCache
from agent.model.core import Service
from agent.model.gateway import Gateway, GatewayClass
from agent.model.ingress import Ingress, IngressClass
from agent.model.node import Node

log = logging.getLogger("tulle.announce")
INTERVAL = 0.5
KINDS = ("Node", "Service", "Gateway", "GatewayClass", "Ingress", "IngressClass")


class Announces(Protocol):
    def announce(self, addresses: frozenset[str]) -> None: ...


def plan_announcements(node: str, objects: Iterable[Any], models: ModelCache) -> frozenset[str]:
    """The addresses ``node`` announces, given the cluster's objects (dicts or models)."""
    typed = models.decode_all(objects, KINDS)
    return announced_by(
        node,
        load_balancer_addresses(
            [o for o in typed if isinstance(o, Service)],
            [o for o in typed if isinstance(o, Gateway)],
            [o for o in typed if isinstance(o, GatewayClass)],
            [o for o in typed if isinstance(o, Ingress)],
            [o for o in typed if isinstance(o, IngressClass)],
        ),
        ready_nodes(o for o in typed if isinstance(o, Node)),
    )


def run_announcer(node: str, source: Any, responder: Announces, stop: threading.Event) -> None:
    """``source``: the agent's ClusterSource (its ``lock`` and ``state``)."""
    models = ModelCache()
    seen = -1
    while not stop.wait(INTERVAL):
        with source.lock:
            state = source.state
            if not state.synced or state.revision == seen:
                continue
            seen = state.revision
            objects = [o for kind in KINDS for o in state.of_kind(kind)]
        try:
            responder.announce(plan_announcements(node, objects, models))
        except Exception:  # a bad round must not end announcing: the next revision retries
            log.exception("announcement round failed")
            seen = -1
