"""gateway.networking.k8s.io ListenerSet (v1, standard since Gateway API v1.5; GEP-1713).

A ListenerSet adds listeners to a Gateway it names in ``parentRef``, from its own namespace,
when the Gateway's ``allowedListeners`` admits that namespace (none do by default). Its
listener entries have the fields of a Gateway listener (``Listener``); names are unique
within the ListenerSet only. Routes attach to it with a parentRef of kind ListenerSet. How
entries merge into the Gateway, and which conflict, is ``gatewayapi/listenersets.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from agent.model.gateway import GATEWAY_GROUP, Listener, ListenerStatus
from agent.model.meta import Condition, ObjectMeta


@dataclass(frozen=True, slots=True)
class ParentGatewayReference:
    """group default gateway.networking.k8s.io, kind default Gateway; ``namespace`` None
    means the ListenerSet's namespace."""

    name: str
    group: str = GATEWAY_GROUP
    kind: str = "Gateway"
    namespace: str | None = None


@dataclass(frozen=True, slots=True)
class ListenerSetSpec:
    parent_ref: ParentGatewayReference
    listeners: tuple[Listener, ...]


@dataclass(frozen=True, slots=True)
class ListenerSetStatus:
    conditions: tuple[Condition, ...] = ()
    listeners: tuple[ListenerStatus, ...] = ()
    """ListenerEntryStatus: the fields of a Gateway's ListenerStatus."""


@dataclass(frozen=True, slots=True)
class ListenerSet:
    kind: ClassVar[str] = "ListenerSet"
    metadata: ObjectMeta
    spec: ListenerSetSpec
    status: ListenerSetStatus = field(default_factory=ListenerSetStatus)
