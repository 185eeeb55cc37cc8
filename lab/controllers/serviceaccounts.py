"""The lab's ServiceAccounts controller, as kube-controller-manager's `serviceaccount`
controller: every Active namespace has a ServiceAccount ``default``, made when the namespace
appears and made again if it is deleted. ``missing`` is the pure plan; the controller writes it.

A namespace being deleted (phase Terminating, or a deletionTimestamp) gets none, as upstream:
its contents are on their way out. A 409 (someone made it meanwhile) is success."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from lightkube import ApiError

log = logging.getLogger("tulle.controller")
KINDS = ("Namespace", "ServiceAccount")
DEFAULT = "default"  # upstream's --service-account list: only `default`


class Creator(Protocol):
    def create(self, obj: dict[str, Any]) -> dict[str, Any]: ...


def _active(ns: dict[str, Any]) -> bool:
    meta = ns.get("metadata") or {}
    phase = (ns.get("status") or {}).get("phase") or "Active"  # unset: not yet written
    return phase == "Active" and not meta.get("deletionTimestamp")


def missing(objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ServiceAccounts to create: ``default`` in each Active namespace that lacks one."""
    have = {
        (o["metadata"].get("namespace", ""), o["metadata"]["name"])
        for o in objects
        if o.get("kind") == "ServiceAccount"
    }
    names = sorted(
        o["metadata"]["name"] for o in objects if o.get("kind") == "Namespace" and _active(o)
    )
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": DEFAULT, "namespace": ns}}
        for ns in names
        if (ns, DEFAULT) not in have
    ]


class ServiceAccountController:
    def __init__(self, api: Creator) -> None:
        self.api = api

    def reconcile(self, objects: Sequence[dict[str, Any]]) -> None:
        """Create what ``missing`` plans; the first error other than 409 fails the round
        (after trying the other namespaces), which the control loop retries."""
        failed: Exception | None = None
        for body in missing(objects):
            ns = body["metadata"]["namespace"]
            try:
                self.api.create(body)
            except ApiError as err:
                if err.status.code != 409:
                    failed = failed or err
                    log.warning("serviceaccount %s/%s: %s", ns, DEFAULT, err)
                continue
            log.info("serviceaccount %s/%s: created", ns, DEFAULT)
        if failed is not None:
            raise failed
