"""Events the lab's controllers record, as a cluster's do (``kubectl describe``, ``kubectl
events``): best effort, never a reason for a round to fail."""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from typing import Any, Protocol

from agent.model.kinds import kind_info
from lab.kubeapi import ApiWriter

log = logging.getLogger("tulle.events")


def involved(obj: Any) -> dict[str, str]:
    """The ``involvedObject`` for a model object (Pod, Deployment, ...)."""
    meta = obj.metadata
    return {
        "apiVersion": kind_info(obj.kind).api_version,
        "kind": obj.kind,
        "namespace": meta.namespace,
        "name": meta.name,
        "uid": meta.uid or "",
    }


def event(
    about: dict[str, str], reason: str, message: str, component: str, type_: str = "Normal"
) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            # As client-go names them: the object's name and a unique suffix.
            "name": f"{about['name']}.{secrets.token_hex(8)}",
            "namespace": about["namespace"] or "default",
        },
        "involvedObject": about,
        "reason": reason,
        "message": message,
        "type": type_,
        "source": {"component": component},
        "reportingComponent": component,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


class EventSink(Protocol):
    def record(
        self,
        about: dict[str, str],
        reason: str,
        message: str,
        component: str,
        type_: str = "Normal",
    ) -> None: ...


class Recorder:
    def __init__(self, api: ApiWriter) -> None:
        self.api = api

    def record(
        self,
        about: dict[str, str],
        reason: str,
        message: str,
        component: str,
        type_: str = "Normal",
    ) -> None:
        try:
            self.api.create(event(about, reason, message, component, type_))
        except Exception as err:  # the API away or refusing: the work itself went through
            log.debug("event %s for %s not recorded: %s", reason, about["name"], err)
