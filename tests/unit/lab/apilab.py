"""A lab API server on loopback with the components' ServiceAccounts and RBAC, and the lab
controller's pieces wired to it as the controller ServiceAccount (as `tulle lab controller`
runs them), with a fake kubelet."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lab.apiserver import identities
from lab.apiserver.__main__ import bootstrap
from lab.apiserver.certs import Credentials, credentials, write_kubeconfig
from lab.apiserver.crds import install_gateway_api
from lab.apiserver.server import ApiServer
from lab.controllers.events import Recorder
from lab.controllers.gateways import GatewayController
from lab.controllers.gatewayservices import GatewayServiceController
from lab.controllers.loadbalancer import LoadBalancerController
from lab.controllers.manager import FIELD_MANAGER, WATCHED, ControlLoop
from lab.controllers.reconcile import Controller
from lab.kubeapi import ApiWriter, Informers, connect
from lab.liveview import LiveView
from lab.store import Store
from lab.store.retry import Backoff
from tests.unit.kube.conftest import free_port, serve

NODES = ["node1", "node2"]


@dataclass
class ApiLab:
    store: Store
    creds: Credentials
    port: int
    admin: Path  # the admin kubeconfig
    controller: Path  # the controller ServiceAccount's kubeconfig
    tokens: dict[str, str]
    server: ApiServer | None = None

    def start(self) -> None:
        self.server = serve(self.store, self.creds, self.port)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def objects(self, kind: str, namespace: str = "default") -> list[dict[str, Any]]:
        return [
            o
            for o in self.store.list(kind)[0]
            if o["metadata"].get("namespace", "") == namespace or not namespace
        ]


@pytest.fixture
def apilab(tmp_path: Path) -> Iterator[ApiLab]:
    creds = credentials(tmp_path / "state")
    store = Store(tmp_path / "store.db", history=200)
    bootstrap(store)
    install_gateway_api(store)  # as `tulle lab up` does
    tokens = identities.seed(store, identities.load(identities.MANIFESTS))
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    admin = write_kubeconfig(tmp_path / "admin.kubeconfig", "t", url, creds)
    controller = write_kubeconfig(
        tmp_path / "controller.kubeconfig",
        "t",
        url,
        creds,
        token=tokens["tulle-lab-controller"],
        user="tulle-lab-controller",
    )
    lab = ApiLab(store, creds, port, admin, controller, tokens)
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()
        store.close()


class FakeKubelet:
    """Records what it was told to run; reports each pod Running and Ready with an IP
    (through the API, as the kubelet does) unless ``ready`` is off."""

    def __init__(self, api: ApiWriter | None = None) -> None:
        self.api = api
        self.synced: list[list[str]] = []
        self.ticks = 0
        self.shutdowns = 0
        self.tick_errors: list[Exception] = []
        self.reported: dict[str, str] = {}  # pod name -> IP reported
        self.pending: list[tuple[str, str]] = []

    def sync(self, pods: list[Any]) -> None:
        self.synced.append(sorted(p.metadata.name for p in pods))
        self.pending = [
            (p.metadata.namespace, p.metadata.name)
            for p in pods
            if p.spec.node_name and p.metadata.name not in self.reported
        ]

    def tick(self) -> None:
        self.ticks += 1
        if self.tick_errors:
            raise self.tick_errors.pop(0)
        for ns, name in list(self.pending):
            if self.api is None:
                continue
            ip = f"10.244.1.{len(self.reported) + 2}"
            self.api.update_status("Pod", ns, name, ready_status(ip))
            self.reported[name] = ip
            self.pending.remove((ns, name))

    def shutdown(self) -> None:
        self.shutdowns += 1


def ready_status(ip: str) -> dict[str, Any]:
    return {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True"}],
    }


@dataclass
class Parts:
    view: LiveView
    api: ApiWriter
    kubelet: FakeKubelet
    loop: ControlLoop
    informers: Informers | None = None
    synced: list[bool] = field(default_factory=lambda: [True])

    def settle(self, until: Callable[[], bool], timeout: float = 10.0) -> None:
        """Step the loop (as `run` does) until ``until()`` holds."""
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, "the controller did not get there in time"
            time.sleep(min(self.loop.step(), 0.05))


QUICK = Backoff(0.01, 0.05)


def parts(lab: ApiLab, *, informers: bool = True, backoff: Backoff = QUICK) -> Parts:
    view = LiveView(WATCHED)
    api = ApiWriter(connect(lab.controller, FIELD_MANAGER), view)
    kubelet = FakeKubelet(api)
    feed = None
    synced: Callable[[], bool]
    if informers:
        feed = Informers(connect(lab.controller, FIELD_MANAGER), view, watch_timeout=5).start()
        synced = feed.synced
    else:
        synced = lambda: True  # noqa: E731 - the test fills the view itself
    loop = ControlLoop(
        view,
        synced,
        kubelet,  # type: ignore[arg-type]
        Controller(api, NODES),
        GatewayController(api),
        backoff=backoff,
        lbipam=LoadBalancerController(api, Recorder(api)),
        gateway_services=GatewayServiceController(api),
    )
    return Parts(view, api, kubelet, loop, feed)
