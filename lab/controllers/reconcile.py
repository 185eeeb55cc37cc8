"""One round of the lab's workload controllers over a decoded view of the cluster: the
Deployment (ReplicaSet-style) and DaemonSet controllers, the scheduler's binding, the
EndpointSlice controller and the garbage collection of orphaned pods. lab.controllers.manager
runs a round whenever the informers' view changed (ControlLoop); the plans are the pure
modules beside this one (deployment, daemonset, scheduler, endpointslice)."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

from lightkube import ApiError

from agent.model.apps import Deployment
from agent.model.cache import ModelCache
from agent.model.core import Pod, Service
from lab.controllers.daemonsets import DaemonSetController
from lab.controllers.deployment import orphans, plan_deployment
from lab.controllers.endpointslice import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    desired_slices,
    slice_differs,
    updated_slice,
)
from lab.controllers.events import Recorder, involved
from lab.controllers.scheduler import schedule
from lab.kubeapi import ApiWriter, Conflict, NotFound
from lab.seed import node_labels

log = logging.getLogger("tulle.controller")
Ref = tuple[str, str, str]  # (kind, namespace, name)
_DEPLOYMENTS = "deployment-controller"  # the reporting component of its events


@dataclass
class ClusterView:
    deployments: list[Deployment] = field(default_factory=list)
    pods: list[Pod] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    slices: list[dict[str, Any]] = field(default_factory=list)
    daemonsets: list[dict[str, Any]] = field(default_factory=list)  # as served (unmodelled)
    raw: dict[Ref, dict[str, Any]] = field(default_factory=dict)  # Deployments and Pods as served


def decode(objs: list[dict[str, Any]], models: ModelCache) -> ClusterView:
    view = ClusterView(slices=[o for o in objs if o["kind"] == "EndpointSlice"],
                       daemonsets=[o for o in objs if o["kind"] == "DaemonSet"])
    for o in objs:
        if o["kind"] in ("Deployment", "Pod"):
            view.raw[(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])] = o
    for res in models.decode_all(objs, ("Deployment", "Pod", "Service")):
        if isinstance(res, Deployment):
            view.deployments.append(res)
        elif isinstance(res, Pod):
            view.pods.append(res)
        elif isinstance(res, Service):
            view.services.append(res)
    return view


class Controller:
    def __init__(self, api: ApiWriter, nodes: list[str]):
        self.api = api
        self.nodes = nodes
        self.events = Recorder(api)
        self.wanted_slices: set[tuple[str, str]] = set()  # as of the last round
        # A lab node's labels as registered (lab.seed): what a DaemonSet's nodeSelector sees.
        labels = {n: node_labels(n) for n in nodes}
        self.daemonsets = DaemonSetController(api, self.events, labels, self._delete_pod)

    def reconcile(self, view: ClusterView) -> None:
        """Every part runs whatever another part raised (one refused Deployment or DaemonSet
        must not stop binding or EndpointSlices lab-wide); the first error then fails the
        round, which is retried with back-off."""
        failed: Exception | None = None
        for part in (self._deployments, self._daemonsets, self._schedule, self._endpoint_slices):
            try:
                part(view)
            except Exception as err:
                failed = failed or err
        if failed is not None:
            raise failed

    def _daemonsets(self, view: ClusterView) -> None:
        self.daemonsets.reconcile(view.daemonsets, view.pods)

    def _deployments(self, view: ClusterView) -> None:
        # One Deployment's refused write (a pod the API server rejects, a status patch that
        # fails) must not stall every Deployment after it in the view, as the ReplicaSet
        # controller's per-object queue ensures; the first error fails the round, so it is
        # retried with back-off once the others went through.
        failed: Exception | None = None
        for deploy in view.deployments:
            try:
                self._deployment(view, deploy)
            except Exception as err:
                log.warning("deployment %s/%s: %s: %s", deploy.metadata.namespace,
                            deploy.metadata.name, type(err).__name__, err)
                failed = failed or err
        for orphan in orphans(view.pods, {d.metadata.uid for d in view.deployments}):
            self._delete_pod(orphan, "its Deployment was deleted")
        if failed is not None:
            raise failed

    def _deployment(self, view: ClusterView, deploy: Deployment) -> None:
        plan = plan_deployment(deploy, view.pods)
        for new_pod in plan.create:
            self.api.create(new_pod)
            name = new_pod["metadata"]["name"]
            log.info(
                "deployment %s/%s: created pod %s",
                deploy.metadata.namespace,
                deploy.metadata.name,
                name,
            )
            self.events.record(
                involved(deploy), "SuccessfulCreate", f"Created pod: {name}", _DEPLOYMENTS
            )
        for victim in plan.delete:
            if self._delete_pod(victim, f"deployment {deploy.metadata.name} scaled or rolled"):
                self.events.record(
                    involved(deploy),
                    "SuccessfulDelete",
                    f"Deleted pod: {victim.metadata.name}",
                    _DEPLOYMENTS,
                )
        ref = ("Deployment", deploy.metadata.namespace, deploy.metadata.name)
        self._write_status(ref, view.raw.get(ref), plan.status)

    def _delete_pod(self, pod: Pod, why: str) -> bool:
        if not self.api.delete("Pod", pod.metadata.namespace, pod.metadata.name):
            return False
        log.info("deleted pod %s/%s: %s", pod.metadata.namespace, pod.metadata.name, why)
        return True

    def _schedule(self, view: ClusterView) -> None:
        bindings, unschedulable = schedule(view.pods, self.nodes)
        for pod, reason in unschedulable:
            log.warning(
                "pod %s/%s unschedulable: %s", pod.metadata.namespace, pod.metadata.name, reason
            )
        for pod, node in bindings:
            raw = view.raw.get(("Pod", pod.metadata.namespace, pod.metadata.name))
            if raw is None:
                continue
            obj = copy.deepcopy(raw)
            obj["spec"]["nodeName"] = node
            ns, name = pod.metadata.namespace, pod.metadata.name
            try:
                self.api.update(obj)
            except (Conflict, NotFound):
                continue  # changed or gone meanwhile: the view has its news, the next round acts
            log.info("bound pod %s/%s to %s", ns, name, node)
            message = f"Successfully assigned {ns}/{name} to {node}"
            self.events.record(involved(pod), "Scheduled", message, "default-scheduler")

    def _endpoint_slices(self, view: ClusterView) -> None:
        wanted: dict[tuple[str, str], dict[str, Any]] = {}
        for svc in view.services:
            for slc in desired_slices(svc, view.pods):
                wanted[(slc["metadata"]["namespace"], slc["metadata"]["name"])] = slc
        self.wanted_slices = set(wanted)
        served = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in view.slices}
        for key, slc in wanted.items():
            have = served.get(key)
            try:
                if have is None:
                    self.api.create(slc)
                elif slice_differs(have, slc):
                    self.api.update(updated_slice(have, slc))
            except Conflict:
                pass  # the view now holds the current slice: the next round updates it
            except ApiError as err:
                if err.status.code != 409:
                    raise
                self.api.get("EndpointSlice", *key)  # AlreadyExists: the view lacked it
        for key, existing in served.items():
            managed = (existing["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL)
            if managed == MANAGED_BY and key not in wanted:
                self.api.delete("EndpointSlice", *key)

    def _write_status(
        self, ref: Ref, current: dict[str, Any] | None, status: dict[str, Any]
    ) -> None:
        served = (current or {}).get("status") or {}
        merged = {**served, **status}
        if current is None or merged == served:
            return
        try:
            self.api.update_status(*ref, merged)
        except NotFound:
            pass
