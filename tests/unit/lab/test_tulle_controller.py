"""tulle-controller's status loop (controlplane/controller) against the lab API server as its
own ServiceAccount (deploy/controller/rbac.yaml): informers list and watch every kind it
reads, and it writes Gateway, HTTPRoute, GatewayClass, Ingress and Service status only while
leading. A verb missing from its ClusterRole fails here."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.controller import ACCOUNT
from controlplane.controller.__main__ import client
from controlplane.controller.status import WATCHED, StatusControllers, StatusLoop
from identity.system import SYSTEM_NAMESPACE
from lab.apiserver.certs import write_kubeconfig
from lab.controllers.gateways import GatewayController, check_gateway_api
from lab.kubeapi import ApiWriter, Informers
from lab.liveview import LiveView
from lab.seed import DEFAULT_POOL, GATEWAY_CLASS, INGRESS_CLASS
from lab.store.retry import Backoff
from tests.unit.lab.apilab import ApiLab
from tests.unit.lab.test_controller_rbac import GATEWAY, ROUTE

SERVICE = {
    "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
    "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
             "ports": [{"port": 80, "protocol": "TCP"}]},
}
INGRESS = {
    "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"ingressClassName": INGRESS_CLASS["metadata"]["name"],
             "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}},
}


class Running:
    def __init__(self, loop: StatusLoop, leading: list[bool], informers: Informers) -> None:
        self.loop, self.leading, self.informers = loop, leading, informers
        self.built = 0

    def settle(self, until: Callable[[], bool], rounds: int = 400) -> None:
        """Step the loop (as main does) until ``until()`` holds; bounded by rounds."""
        for _ in range(rounds):
            if until():
                return
            time.sleep(min(self.loop.step(), 0.05))
        raise AssertionError("the controller did not get there")


@pytest.fixture
def running(apilab: ApiLab, tmp_path: Path) -> Iterator[Running]:
    apilab.store.create({"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": SYSTEM_NAMESPACE}})
    kubeconfig = write_kubeconfig(tmp_path / "ctl.kubeconfig", "t",
                                  f"https://127.0.0.1:{apilab.port}", apilab.creds,
                                  token=apilab.tokens[ACCOUNT], user=ACCOUNT)
    view = LiveView(WATCHED)
    informers = Informers(client(kubeconfig), view, watch_timeout=5).start()
    writer = client(kubeconfig)
    api = ApiWriter(writer, view)
    crds = check_gateway_api(writer)
    leading = [False]

    def build() -> StatusControllers:
        run.built += 1
        return StatusControllers.over(api, GatewayController(api, crds))

    loop = StatusLoop(view, informers.synced, lambda: leading[0], build,
                      backoff=Backoff(0.01, 0.05))
    run = Running(loop, leading, informers)
    try:
        yield run
    finally:
        informers.stop()
        writer.close()


def _status(apilab: ApiLab, kind: str, name: str, ns: str = "default") -> dict[str, Any]:
    obj = apilab.store.get(kind, "" if kind == "GatewayClass" else ns, name)
    assert obj is not None
    return dict(obj.get("status") or {})


def test_statuses_are_written_only_while_leading(apilab: ApiLab, running: Running) -> None:
    for obj in (GATEWAY_CLASS, INGRESS_CLASS, DEFAULT_POOL, SERVICE, GATEWAY, ROUTE, INGRESS):
        apilab.store.create(obj)
    before = apilab.store.revision()
    for _ in range(20):
        time.sleep(min(running.loop.step(), 0.05))
    assert running.informers.synced()
    assert apilab.store.revision() == before  # a follower writes nothing
    assert running.built == 0 and running.loop.rounds == 0

    running.leading[0] = True
    running.settle(lambda: bool(_status(apilab, "HTTPRoute", "r").get("parents"))
                   and bool(_status(apilab, "Ingress", "web").get("loadBalancer"))
                   and bool(_status(apilab, "Service", "web").get("loadBalancer"))
                   and bool(_status(apilab, "Gateway", "gw").get("addresses"))
                   # its own Service, which this account makes; its address a round later
                   and bool(_status(apilab, "Service", "tulle-gateway-gw").get("loadBalancer")))
    gateway = _status(apilab, "Gateway", "gw")
    assert _status(apilab, "Service", "tulle-gateway-gw")["loadBalancer"]["ingress"][0]["ip"] \
        == gateway["addresses"][0]["value"]
    assert gateway["addresses"][0]["type"] == "IPAddress"
    assert any(c["type"] == "Accepted" and c["status"] == "True"
               for c in _status(apilab, "GatewayClass", "tulle")["conditions"])
    [lb] = _status(apilab, "Service", "web")["loadBalancer"]["ingress"]
    assert lb["ip"] != gateway["addresses"][0]["value"]
    assert _status(apilab, "Ingress", "web")["loadBalancer"]["ingress"][0]["ip"]
    assert running.built == 1

    # Leadership lost: the controllers stop; a change is not acted on.
    running.leading[0] = False
    running.loop.step()
    assert running.loop.controllers is None
    route = apilab.store.get("HTTPRoute", "default", "r")
    assert route is not None
    apilab.store.update_status("HTTPRoute", "default", "r", {"parents": []})
    settled = apilab.store.revision()
    for _ in range(20):
        time.sleep(min(running.loop.step(), 0.05))
    assert apilab.store.revision() == settled
    # A new term: fresh controllers, a full round that repairs the status.
    running.leading[0] = True
    running.settle(lambda: bool(_status(apilab, "HTTPRoute", "r").get("parents")))
    assert running.built == 2
