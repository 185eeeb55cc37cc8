"""Node: a machine running the agent. The lab writes one per lab node; in a cluster the
kubelet does. Tulle reads the pod CIDR and addresses; conditions carry readiness."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from agent.model.meta import Condition, ObjectMeta


@dataclass(frozen=True, slots=True)
class NodeAddress:
    type: str
    address: str


@dataclass(frozen=True, slots=True)
class NodeSpec:
    pod_cidr: str | None = None
    pod_cidrs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NodeStatus:
    addresses: tuple[NodeAddress, ...] = ()
    conditions: tuple[Condition, ...] = ()

    def address(self, kind: str = "InternalIP") -> str | None:
        return next((a.address for a in self.addresses if a.type == kind), None)


@dataclass(frozen=True, slots=True)
class Node:
    kind: ClassVar[str] = "Node"
    metadata: ObjectMeta
    spec: NodeSpec = field(default_factory=NodeSpec)
    status: NodeStatus = field(default_factory=NodeStatus)
