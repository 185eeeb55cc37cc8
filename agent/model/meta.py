"""Object metadata and the small types every kind shares: selectors, conditions, protocols."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from agent.model.frozen import EMPTY, FrozenMap


@dataclass(frozen=True, slots=True)
class OwnerReference:
    """An owner of the object (the Deployment of a Pod). At most one is the controller."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """metav1.ObjectMeta, reduced to what Tulle reads.

    ``namespace`` is "" for cluster-scoped kinds; the converter defaults it to "default"
    for namespaced kinds. ``uid``, ``resource_version``, ``generation`` and
    ``creation_timestamp`` (an aware UTC datetime, second precision) are set by the store
    and are empty in manifests.
    """

    name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    generation: int | None = None
    creation_timestamp: datetime | None = None
    labels: FrozenMap[str, str] = EMPTY
    annotations: FrozenMap[str, str] = EMPTY
    owner_references: tuple[OwnerReference, ...] = ()

    @property
    def controller(self) -> OwnerReference | None:
        """The owner reference with ``controller: true``, if any."""
        return next((ref for ref in self.owner_references if ref.controller), None)

    @property
    def key(self) -> str:
        """ "namespace/name" for namespaced objects, "name" for cluster-scoped ones."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True, slots=True)
class LabelSelectorRequirement:
    key: str
    operator: SelectorOperator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        match self.operator:
            case SelectorOperator.IN:
                return labels.get(self.key) in self.values
            case SelectorOperator.NOT_IN:
                return self.key not in labels or labels[self.key] not in self.values
            case SelectorOperator.EXISTS:
                return self.key in labels
            case SelectorOperator.DOES_NOT_EXIST:
                return self.key not in labels


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """metav1.LabelSelector. The empty selector matches every object.

    Where Kubernetes distinguishes "no selector" from "empty selector" (NetworkPolicy peers),
    the model holds ``None`` for the former.
    """

    match_labels: FrozenMap[str, str] = EMPTY
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when ``labels`` satisfy every matchLabels entry and every expression."""
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            req.matches(labels) for req in self.match_expressions
        )


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


@dataclass(frozen=True, slots=True)
class Condition:
    """metav1.Condition, as used in Gateway API status."""

    type: str
    status: ConditionStatus
    reason: str = ""
    message: str = ""
    last_transition_time: datetime | None = None
    observed_generation: int | None = None


class Protocol(StrEnum):
    """L4 protocol of a port (Service, EndpointSlice, container, NetworkPolicy)."""

    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"
