"""The lab's control plane process: Deployment, scheduler, EndpointSlice and GC controllers,
plus the kubelet for every lab node.

Level-triggered: whenever the store revision moves, list, decode, compute plans with the
pure controllers in agent.controllers, and write the differences back.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from agent.controllers.deployment import orphans, plan_deployment
from agent.controllers.endpointslice import MANAGED_BY, MANAGED_BY_LABEL, desired_slices
from agent.controllers.scheduler import schedule
from agent.lab import procs
from agent.lab.gateways import KINDS as GATEWAY_KINDS
from agent.lab.gateways import GatewayController
from agent.lab.kubelet import Kubelet
from agent.lab.lifecycle import load_plan
from agent.lab.state import LabPaths
from agent.model.apps import Deployment
from agent.model.cache import ModelCache
from agent.model.core import Pod, Service
from agent.store import Conflict, NotFound, Store

log = logging.getLogger("tulle.controller")
WATCHED = ("Deployment", "Pod", "Service", "EndpointSlice", *GATEWAY_KINDS)
TICK = 0.1


@dataclass
class ClusterView:
    deployments: list[Deployment] = field(default_factory=list)
    pods: list[Pod] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    slices: list[dict[str, Any]] = field(default_factory=list)


def decode(objs: list[dict[str, Any]], models: ModelCache) -> ClusterView:
    view = ClusterView(slices=[o for o in objs if o["kind"] == "EndpointSlice"])
    for res in models.decode_all(objs, ("Deployment", "Pod", "Service")):
        if isinstance(res, Deployment):
            view.deployments.append(res)
        elif isinstance(res, Pod):
            view.pods.append(res)
        elif isinstance(res, Service):
            view.services.append(res)
    return view


class Controller:
    def __init__(self, store: Store, nodes: list[str]):
        self.store = store
        self.nodes = nodes

    def reconcile(self, view: ClusterView) -> None:
        self._deployments(view)
        self._schedule(view)
        self._endpoint_slices(view)

    def _deployments(self, view: ClusterView) -> None:
        for deploy in view.deployments:
            plan = plan_deployment(deploy, view.pods)
            for new_pod in plan.create:
                self.store.create(new_pod)
                log.info(
                    "deployment %s/%s: created pod %s",
                    deploy.metadata.namespace,
                    deploy.metadata.name,
                    new_pod["metadata"]["name"],
                )
            for victim in plan.delete:
                self._delete_pod(victim, f"deployment {deploy.metadata.name} scaled or rolled")
            self._write_status(
                "Deployment", deploy.metadata.namespace, deploy.metadata.name, plan.status
            )
        for orphan in orphans(view.pods, {d.metadata.uid for d in view.deployments}):
            self._delete_pod(orphan, "its Deployment was deleted")

    def _delete_pod(self, pod: Pod, why: str) -> None:
        if self.store.delete("Pod", pod.metadata.namespace, pod.metadata.name) is not None:
            log.info("deleted pod %s/%s: %s", pod.metadata.namespace, pod.metadata.name, why)

    def _schedule(self, view: ClusterView) -> None:
        bindings, unschedulable = schedule(view.pods, self.nodes)
        for pod, reason in unschedulable:
            log.warning(
                "pod %s/%s unschedulable: %s", pod.metadata.namespace, pod.metadata.name, reason
            )
        for pod, node in bindings:
            obj = self.store.get("Pod", pod.metadata.namespace, pod.metadata.name)
            if obj is None:
                continue
            obj["spec"]["nodeName"] = node
            try:
                self.store.update(obj)
                log.info("bound pod %s/%s to %s", pod.metadata.namespace, pod.metadata.name, node)
            except (Conflict, NotFound):
                pass  # changed meanwhile: the next round sees it

    def _endpoint_slices(self, view: ClusterView) -> None:
        wanted: dict[tuple[str, str], dict[str, Any]] = {}
        for svc in view.services:
            for slc in desired_slices(svc, view.pods):
                wanted[(slc["metadata"]["namespace"], slc["metadata"]["name"])] = slc
        for slc in wanted.values():
            self.store.apply(slc)
        for existing in view.slices:
            meta = existing["metadata"]
            managed = (meta.get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY
            if managed and (meta["namespace"], meta["name"]) not in wanted:
                self.store.delete("EndpointSlice", meta["namespace"], meta["name"])

    def _write_status(self, kind: str, ns: str, name: str, status: dict[str, Any]) -> None:
        try:
            self.store.update_status(kind, ns, name, status)
        except NotFound:
            pass


class SystemProcesses:
    """Restarts the lab's node agents, DNS servers and relay when they exit, as the kubelet
    restarts a DaemonSet's pods. Never the controller itself."""

    def __init__(self, paths: LabPaths):
        self.paths = paths
        self.restarts: dict[str, int] = {}
        self.next_check = 0.0

    def tick(self) -> None:
        now = time.monotonic()
        if now < self.next_check:
            return
        self.next_check = now + 0.5
        for rec in procs.load_records(self.paths.procs):
            if rec.role == "controller" or procs.is_alive(rec):
                continue
            count = self.restarts.get(rec.role, 0) + 1
            self.restarts[rec.role] = count
            log.warning("%s (pid %d) exited: restarting it (restart %d)", rec.role, rec.pid, count)
            procs.spawn(rec.role, rec.argv, log=Path(rec.log), record_dir=self.paths.procs)


def run(name: str) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s controller %(levelname)s %(message)s"
    )
    paths = LabPaths.for_lab(name)
    plan = load_plan(paths)
    if plan is None:
        log.error("lab %s has no lab.json; is it up?", name)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with Store(paths.store) as store:
        kubelet = Kubelet(plan, paths, store)
        system = SystemProcesses(paths)
        controller = Controller(store, [n.name for n in plan.nodes])
        gateways = GatewayController(store)
        models = ModelCache()
        seen = -1
        log.info("controller for lab %s started with nodes %s", name, controller.nodes)
        try:
            while not stop.is_set():
                revision = store.revision()
                if revision != seen:
                    objs, seen = store.list(WATCHED)
                    view = decode(objs, models)
                    try:
                        controller.reconcile(view)
                        gateways.reconcile(objs, view.services)
                    except Exception:
                        log.exception("reconcile failed; retrying")
                    kubelet.sync(view.pods)
                kubelet.tick()
                system.tick()
                stop.wait(TICK)
        finally:
            log.info("stopping: tearing down pods")
            kubelet.shutdown()
    return 0
