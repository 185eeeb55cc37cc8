"""The status controllers' loop, gated by leadership: the Gateway API status, Gateway
Service, Ingress and LoadBalancer pool controllers (the lab's own, ``lab/controllers``: the
same code in a lab and on a cluster) reconcile the informers' view only while ``leading()`` says so.

Leadership is checked before each round, and a round writes a few statuses (well under the
five seconds between the renew deadline and the lease's expiry, client-go's defaults), so a
replica that lost the Lease stops writing before another may start. Controllers are built
afresh on each new term: nothing one term remembered (reported Events, statuses) outlives it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from agent.kube.backoff import Backoff
from agent.model.cache import ModelCache
from agent.model.core import Service
from lab.controllers.events import Recorder
from lab.controllers.gateways import KINDS as GATEWAY_KINDS
from lab.controllers.gateways import GatewayController
from lab.controllers.gatewayservices import GatewayServiceController
from lab.controllers.ingresses import KINDS as INGRESS_KINDS
from lab.controllers.ingresses import IngressController
from lab.controllers.loadbalancer import KINDS as LB_KINDS
from lab.controllers.loadbalancer import LoadBalancerController
from lab.kubeapi import API_BACKOFF, ApiWriter
from lab.liveview import LiveView

log = logging.getLogger("tulle.controller")
WATCHED = tuple(dict.fromkeys(("Service", *GATEWAY_KINDS, *INGRESS_KINDS, *LB_KINDS)))
TICK = 0.1


@dataclass
class StatusControllers:
    gateways: GatewayController
    ingresses: IngressController
    lbipam: LoadBalancerController
    gateway_services: GatewayServiceController | None = None  # None: Gateways get no Service

    @classmethod
    def over(cls, api: ApiWriter, gateways: GatewayController) -> StatusControllers:
        return cls(gateways, IngressController(api, Recorder(api)),
                   LoadBalancerController(api, Recorder(api)), GatewayServiceController(api))


class StatusLoop:
    def __init__(
        self,
        view: LiveView,
        synced: Callable[[], bool],
        leading: Callable[[], bool],
        build: Callable[[], StatusControllers],
        backoff: Backoff = API_BACKOFF,
    ) -> None:
        self.view = view
        self.synced = synced
        self.leading = leading
        self.build = build
        self.backoff = backoff
        self.models = ModelCache()
        self.controllers: StatusControllers | None = None  # this term's; None: not leading
        self.seen = -1  # the view generation last reconciled
        self.failures = 0
        self.rounds = 0  # rounds that wrote what the view asked (for metrics and tests)

    def step(self) -> float:
        """One round if leading and the view changed; returns the seconds to wait."""
        if not self.leading():
            if self.controllers is not None:
                log.info("not leading: status controllers stopped")
            self.controllers, self.seen = None, -1
            return TICK
        if not self.synced():
            return TICK  # no full listing yet: statuses from half a view would be wrong
        if self.controllers is None:
            log.info("leading: status controllers started")
            self.controllers = self.build()
        generation, _ = self.view.take_changes()
        if generation == self.seen:
            return TICK
        try:
            self._reconcile(self.controllers)
        except Exception as err:
            self.failures += 1
            self.seen = -1  # the next round is a full one
            delay = max(TICK, self.backoff.delay(self.failures))
            log.warning("status round failed (%s: %s); retrying in %.2fs",
                        type(err).__name__, err, delay)
            return delay
        self.failures = 0
        self.seen = generation
        self.rounds += 1
        return TICK

    def _reconcile(self, parts: StatusControllers) -> None:
        objs = self.view.snapshot()
        services = [s for s in self.models.decode_all(objs, ("Service",))
                    if isinstance(s, Service)]
        if parts.gateway_services is not None:  # a Service made now is addressed next round
            parts.gateway_services.reconcile(objs, services)
        lb = parts.lbipam.reconcile(objs, services)
        parts.gateways.reconcile(objs, services, lb)
        parts.ingresses.reconcile(objs, services, lb)
