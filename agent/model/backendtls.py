"""gateway.networking.k8s.io/v1 BackendTLSPolicy (Gateway API v1.4, GEP-1897): how the
waypoint connects over TLS to the Services it targets. A Direct policy (GEP-713): its
``targetRefs`` name Services of its own namespace, a ``sectionName`` naming one port.

``validation`` holds the trust anchors, either ``ca_certificate_refs`` (ConfigMaps with a
``ca.crt`` key: Core support) or ``well_known_ca_certificates`` ("System"), never both;
``hostname`` (the SNI, and what the certificate must match unless ``subject_alt_names``
is listed). Whether a reference resolves is not the converter's business but the status's
(``ResolvedRefs`` with ``InvalidCACertificateRef`` / ``InvalidKind``), so any group/kind is
kept here. How the waypoint checks a backend: ``l7proxy/backendtls.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from agent.model.frozen import EMPTY, FrozenMap
from agent.model.meta import ObjectMeta


@dataclass(frozen=True, slots=True)
class TLSPolicyTargetReference:
    """GEP-713's LocalPolicyTargetReferenceWithSectionName; ``section_name`` is a Service
    port's name, None for every port."""

    group: str
    kind: str
    name: str
    section_name: str | None = None


@dataclass(frozen=True, slots=True)
class LocalObjectReference:
    """A CA certificate reference: an object of the policy's namespace."""

    group: str
    kind: str
    name: str


class WellKnownCACertificates(StrEnum):
    SYSTEM = "System"


class SubjectAltNameType(StrEnum):
    HOSTNAME = "Hostname"
    URI = "URI"


@dataclass(frozen=True, slots=True)
class SubjectAltName:
    """Exactly the member ``type`` names is set."""

    type: SubjectAltNameType
    hostname: str = ""
    uri: str = ""


@dataclass(frozen=True, slots=True)
class BackendTLSPolicyValidation:
    hostname: str
    ca_certificate_refs: tuple[LocalObjectReference, ...] = ()
    well_known_ca_certificates: WellKnownCACertificates | None = None
    subject_alt_names: tuple[SubjectAltName, ...] = ()


@dataclass(frozen=True, slots=True)
class BackendTLSPolicySpec:
    target_refs: tuple[TLSPolicyTargetReference, ...]
    validation: BackendTLSPolicyValidation
    options: FrozenMap[str, str] = EMPTY


@dataclass(frozen=True, slots=True)
class BackendTLSPolicy:
    kind: ClassVar[str] = "BackendTLSPolicy"
    metadata: ObjectMeta
    spec: BackendTLSPolicySpec
