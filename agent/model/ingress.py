"""networking.k8s.io/v1 Ingress and IngressClass, reduced to what Tulle serves.

An Ingress names its class by ``spec.ingressClassName`` or, before that field existed, by
the ``kubernetes.io/ingress.class`` annotation; an Ingress with neither belongs to the
IngressClass annotated ``ingressclass.kubernetes.io/is-default-class: "true"``
(``gatewayapi/ingress/classes.py`` decides). Readers and the API's validation rules:
``convert_ingress.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from agent.model.meta import ObjectMeta

CLASS_ANNOTATION = "kubernetes.io/ingress.class"
"""The class annotation Ingresses used before ``spec.ingressClassName`` (deprecated, read)."""
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
"""On an IngressClass, "true" makes it the class of Ingresses that name none."""


class PathType(StrEnum):
    EXACT = "Exact"
    PREFIX = "Prefix"
    IMPLEMENTATION_SPECIFIC = "ImplementationSpecific"


@dataclass(frozen=True, slots=True)
class ServiceBackendPort:
    """Exactly one of ``number`` and ``name`` (a Service port's name)."""

    number: int | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class IngressServiceBackend:
    name: str
    port: ServiceBackendPort


@dataclass(frozen=True, slots=True)
class TypedLocalObjectReference:
    kind: str
    name: str
    api_group: str | None = None


@dataclass(frozen=True, slots=True)
class IngressBackend:
    """Exactly one of ``service`` and ``resource``."""

    service: IngressServiceBackend | None = None
    resource: TypedLocalObjectReference | None = None


@dataclass(frozen=True, slots=True)
class HTTPIngressPath:
    path_type: PathType
    backend: IngressBackend
    path: str | None = None


@dataclass(frozen=True, slots=True)
class HTTPIngressRuleValue:
    paths: tuple[HTTPIngressPath, ...]


@dataclass(frozen=True, slots=True)
class IngressRule:
    host: str | None = None
    http: HTTPIngressRuleValue | None = None


@dataclass(frozen=True, slots=True)
class IngressTLS:
    hosts: tuple[str, ...] = ()
    secret_name: str | None = None


@dataclass(frozen=True, slots=True)
class IngressSpec:
    ingress_class_name: str | None = None
    default_backend: IngressBackend | None = None
    tls: tuple[IngressTLS, ...] = ()
    rules: tuple[IngressRule, ...] = ()


@dataclass(frozen=True, slots=True)
class PortStatus:
    port: int
    protocol: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class IngressLoadBalancerIngress:
    ip: str | None = None
    hostname: str | None = None
    ports: tuple[PortStatus, ...] = ()


@dataclass(frozen=True, slots=True)
class IngressLoadBalancerStatus:
    ingress: tuple[IngressLoadBalancerIngress, ...] = ()


@dataclass(frozen=True, slots=True)
class IngressStatus:
    load_balancer: IngressLoadBalancerStatus = IngressLoadBalancerStatus()


@dataclass(frozen=True, slots=True)
class Ingress:
    kind: ClassVar[str] = "Ingress"
    metadata: ObjectMeta
    spec: IngressSpec = field(default_factory=IngressSpec)
    status: IngressStatus = IngressStatus()

    @property
    def class_name(self) -> str | None:
        """The class the Ingress names: the field, else the legacy annotation."""
        return self.spec.ingress_class_name or self.metadata.annotations.get(CLASS_ANNOTATION)


@dataclass(frozen=True, slots=True)
class IngressClassParametersReference:
    kind: str
    name: str
    api_group: str | None = None
    scope: str | None = None
    namespace: str | None = None


@dataclass(frozen=True, slots=True)
class IngressClassSpec:
    controller: str | None = None
    parameters: IngressClassParametersReference | None = None


@dataclass(frozen=True, slots=True)
class IngressClass:
    kind: ClassVar[str] = "IngressClass"
    metadata: ObjectMeta
    spec: IngressClassSpec = field(default_factory=IngressClassSpec)

    @property
    def is_default(self) -> bool:
        return self.metadata.annotations.get(DEFAULT_CLASS_ANNOTATION) == "true"
