"""security.tulle.io/v1 PeerAuthentication: which mutual-TLS mode a workload accepts, in the
shape of Istio's security.istio.io PeerAuthentication (selector, mtls.mode, portLevelMtls).

The converter (``convert_peerauth.py``) applies Istio's CEL rules that a CRD schema cannot
say: portLevelMtls needs a selector with labels, and its keys are port numbers 1-65535. The
decision (precedence, inheritance) is ``identity.peerauth.effective_mode``; ``mtls_policy``
gives it this object as its input. A policy means nothing for a pod whose namespace is not
enrolled (label ``tulle.io/mtls: "true"``): that pod keeps the kernel's plaintext path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from agent.model.frozen import EMPTY, FrozenMap
from agent.model.meta import ObjectMeta
from identity import peerauth


class MutualTLSMode(StrEnum):
    """UNSET inherits from the policy a level up (mesh < namespace < workload < port)."""

    UNSET = "UNSET"
    DISABLE = "DISABLE"
    PERMISSIVE = "PERMISSIVE"
    STRICT = "STRICT"


@dataclass(frozen=True, slots=True)
class MutualTLS:
    mode: MutualTLSMode = MutualTLSMode.UNSET


@dataclass(frozen=True, slots=True)
class WorkloadSelector:
    """Istio's WorkloadSelector: labels only. Empty selects the whole namespace."""

    match_labels: FrozenMap[str, str] = EMPTY


@dataclass(frozen=True, slots=True)
class PeerAuthenticationSpec:
    """``port_level_mtls``: by the workload's (container) port, only with a selector."""

    selector: WorkloadSelector | None = None
    mtls: MutualTLS | None = None
    port_level_mtls: FrozenMap[int, MutualTLS] = EMPTY


@dataclass(frozen=True, slots=True)
class PeerAuthentication:
    kind: ClassVar[str] = "PeerAuthentication"
    metadata: ObjectMeta
    spec: PeerAuthenticationSpec = field(default_factory=PeerAuthenticationSpec)


def mtls_policy(policy: PeerAuthentication) -> peerauth.Policy:
    """The resolver's input for one policy."""
    spec = policy.spec
    return peerauth.Policy(
        namespace=policy.metadata.namespace,
        name=policy.metadata.name,
        mode=peerauth.Mode(spec.mtls.mode if spec.mtls else MutualTLSMode.UNSET),
        selector=spec.selector.match_labels if spec.selector else {},
        ports={port: peerauth.Mode(m.mode) for port, m in spec.port_level_mtls.items()},
        created=policy.metadata.creation_timestamp,
    )
