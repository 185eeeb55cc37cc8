"""The DaemonSet controller's writes (the thin shell around lab.controllers.daemonset): for
each served DaemonSet, create and delete Pods as planned, record Events and write status;
delete the Pods of DaemonSets that are gone (the garbage collector's part)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from agent.model.core import Pod
from lab.controllers.daemonset import (
    InvalidDaemonSet,
    NodeLabels,
    orphans,
    plan_daemonset,
    read_daemonset,
)
from lab.controllers.events import EventSink
from lab.kubeapi import ApiWriter, NotFound

log = logging.getLogger("tulle.controller")
COMPONENT = "daemonset-controller"  # the reporting component of its events

DeletePod = Callable[[Pod, str], bool]  # (pod, why) -> deleted (False: it was gone)


def _about(obj: dict[str, Any]) -> dict[str, str]:
    meta = obj["metadata"]
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "namespace": meta.get("namespace", ""),
            "name": meta["name"], "uid": meta.get("uid", "")}


class DaemonSetController:
    def __init__(self, api: ApiWriter, events: EventSink, nodes: NodeLabels,
                 delete_pod: DeletePod) -> None:
        self.api = api
        self.events = events
        self.nodes = nodes
        self.delete_pod = delete_pod
        self.refused: dict[str, int] = {}  # uid -> generation whose refusal was reported

    def reconcile(self, daemonsets: Sequence[dict[str, Any]], pods: Sequence[Pod]) -> None:
        """Each DaemonSet on its own: one that fails does not stall the others; the first
        error fails the round (retried with back-off), as for Deployments."""
        failed: Exception | None = None
        for obj in daemonsets:
            try:
                self._daemonset(obj, pods)
            except Exception as err:
                meta = obj["metadata"]
                log.warning("daemonset %s/%s: %s: %s", meta.get("namespace"), meta["name"],
                            type(err).__name__, err)
                failed = failed or err
        live = {str(o["metadata"].get("uid", "")) for o in daemonsets}
        for orphan in orphans(pods, live):
            self.delete_pod(orphan, "its DaemonSet was deleted")
        if failed is not None:
            raise failed

    def _daemonset(self, obj: dict[str, Any], pods: Sequence[Pod]) -> None:
        try:
            ds = read_daemonset(obj)
        except InvalidDaemonSet as err:
            self._refuse(obj, str(err))
            return
        plan = plan_daemonset(ds, self.nodes, pods)
        for body in plan.create:
            self.api.create(body)
            name, node = body["metadata"]["name"], body["spec"]["nodeName"]
            log.info("daemonset %s/%s: created pod %s on %s", ds.namespace, ds.name, name, node)
            self.events.record(_about(obj), "SuccessfulCreate", f"Created pod: {name}",
                               COMPONENT)
        for victim in plan.delete:
            if self.delete_pod(victim, f"daemonset {ds.name} replaced or removed it"):
                self.events.record(_about(obj), "SuccessfulDelete",
                                   f"Deleted pod: {victim.metadata.name}", COMPONENT)
        served = obj.get("status") or {}
        merged = {**served, **plan.status}
        if merged != served:
            try:
                self.api.update_status("DaemonSet", ds.namespace, ds.name, merged)
            except NotFound:
                pass  # deleted meanwhile: the next round finds its pods orphaned

    def _refuse(self, obj: dict[str, Any], why: str) -> None:
        """Say once per generation why a DaemonSet gets no pods (a log line, a Warning)."""
        meta = obj["metadata"]
        uid, generation = str(meta.get("uid", "")), int(meta.get("generation") or 0)
        if self.refused.get(uid) == generation:
            return
        self.refused[uid] = generation
        log.warning("%s", why)
        self.events.record(_about(obj), "FailedCreate", why, COMPONENT, "Warning")
