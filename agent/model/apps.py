"""apps/v1 kinds: Deployment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from agent.model.core import PodSpec
from agent.model.meta import ConditionStatus, LabelSelector, ObjectMeta


@dataclass(frozen=True, slots=True)
class PodTemplateSpec:
    """A pod template. Only ``metadata.labels`` and ``metadata.annotations`` are used."""

    metadata: ObjectMeta
    spec: PodSpec


@dataclass(frozen=True, slots=True)
class DeploymentSpec:
    """``selector`` is non-empty and matches ``template.metadata.labels`` (validated)."""

    selector: LabelSelector
    template: PodTemplateSpec
    replicas: int = 1


@dataclass(frozen=True, slots=True)
class DeploymentCondition:
    type: str
    status: ConditionStatus
    reason: str = ""
    message: str = ""
    last_update_time: datetime | None = None
    last_transition_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeploymentStatus:
    """Written by the Deployment controller; empty until it has run."""

    observed_generation: int | None = None
    replicas: int | None = None
    updated_replicas: int | None = None
    ready_replicas: int | None = None
    available_replicas: int | None = None
    conditions: tuple[DeploymentCondition, ...] = ()


@dataclass(frozen=True, slots=True)
class Deployment:
    kind: ClassVar[str] = "Deployment"
    metadata: ObjectMeta
    spec: DeploymentSpec
    status: DeploymentStatus = DeploymentStatus()
