"""The lab controller's loop and the tulle-controller Lease: Gateway, Ingress and
LoadBalancer status run only while it leads; Deployments and the kubelet always; a new term
starts with a full round even when nothing changed since."""

from __future__ import annotations

from typing import Any

from lab.controllers.manager import ControlLoop
from lab.controllers.reconcile import Controller
from lab.liveview import LiveView
from lab.store.retry import Backoff
from tests.unit.lab.controllers.test_control_loop import DEPLOY, POD, FailingApi, FakeKubelet


class Recording:
    def __init__(self) -> None:
        self.rounds = 0

    def reconcile(self, objs: Any, services: Any, lb: Any = None) -> Any:
        self.rounds += 1
        return None


def test_status_work_runs_only_while_leading() -> None:
    view = LiveView(("Deployment", "Pod", "Service", "EndpointSlice"))
    view.observe("Pod", POD)
    api = FailingApi(view)
    kubelet = FakeKubelet()
    gateways, ingresses, lbipam = Recording(), Recording(), Recording()
    leading = [False]
    loop = ControlLoop(
        view, lambda: True, kubelet, Controller(api, ["node1"]),  # type: ignore[arg-type]
        gateways,  # type: ignore[arg-type]
        backoff=Backoff(initial=1.0, cap=8.0),
        ingresses=ingresses,  # type: ignore[arg-type]
        lbipam=lbipam,  # type: ignore[arg-type]
        leading=lambda: leading[0],
    )
    loop.step()
    view.observe("Deployment", DEPLOY)
    loop.step()
    assert "api" in " ".join(api.created)  # the Deployment controller ran: a pod for it
    assert kubelet.synced  # the kubelet heard of pods
    assert (gateways.rounds, ingresses.rounds, lbipam.rounds) == (0, 0, 0)

    leading[0] = True  # a new term, with nothing changed since the last round
    loop.step()
    assert (gateways.rounds, ingresses.rounds, lbipam.rounds) == (1, 1, 1)
    loop.step()  # nothing changed: no round
    assert gateways.rounds == 1

    leading[0] = False
    view.observe("Pod", {**POD, "metadata": {**POD["metadata"], "resourceVersion": "9"}})
    loop.step()
    assert gateways.rounds == 1
