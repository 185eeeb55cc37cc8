"""networking.k8s.io/v1 kinds: NetworkPolicy."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from agent.model.meta import LabelSelector, ObjectMeta, Protocol


class PolicyType(StrEnum):
    INGRESS = "Ingress"
    EGRESS = "Egress"


@dataclass(frozen=True, slots=True)
class IPBlock:
    """``cidr`` and each of ``except_`` as written (validated; ``except_`` lies inside cidr)."""

    cidr: str
    except_: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NetworkPolicyPeer:
    """Exactly one of: ip_block; or pod_selector and/or namespace_selector.

    pod_selector alone selects pods in the policy's namespace; namespace_selector alone
    selects all pods in matching namespaces; both select matching pods in matching
    namespaces. ``None`` (absent) differs from an empty selector (everything).
    """

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True, slots=True)
class NetworkPolicyPort:
    """``port`` None means all ports; a str is a named container port. ``end_port``
    (numeric ``port`` only) makes the range port..end_port inclusive."""

    protocol: Protocol = Protocol.TCP
    port: int | str | None = None
    end_port: int | None = None


@dataclass(frozen=True, slots=True)
class NetworkPolicyIngressRule:
    """Empty ``from_`` means all sources; empty ``ports`` means all ports."""

    from_: tuple[NetworkPolicyPeer, ...] = ()
    ports: tuple[NetworkPolicyPort, ...] = ()


@dataclass(frozen=True, slots=True)
class NetworkPolicyEgressRule:
    """Empty ``to`` means all destinations; empty ``ports`` means all ports."""

    to: tuple[NetworkPolicyPeer, ...] = ()
    ports: tuple[NetworkPolicyPort, ...] = ()


@dataclass(frozen=True, slots=True)
class NetworkPolicySpec:
    """``policy_types`` is always filled (Kubernetes defaulting: Ingress, plus Egress when
    egress rules exist). A listed type with no rules denies all traffic of that direction."""

    pod_selector: LabelSelector = field(default_factory=LabelSelector)
    policy_types: tuple[PolicyType, ...] = (PolicyType.INGRESS,)
    ingress: tuple[NetworkPolicyIngressRule, ...] = ()
    egress: tuple[NetworkPolicyEgressRule, ...] = ()

    @property
    def affects_ingress(self) -> bool:
        return PolicyType.INGRESS in self.policy_types

    @property
    def affects_egress(self) -> bool:
        return PolicyType.EGRESS in self.policy_types


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    kind: ClassVar[str] = "NetworkPolicy"
    metadata: ObjectMeta
    spec: NetworkPolicySpec = field(default_factory=NetworkPolicySpec)
