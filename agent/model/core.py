"""Core (v1) and discovery kinds: Namespace, Pod, Service, EndpointSlice, Secret."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from agent.model.core_container import (
    ConfigMapVolumeSource,
    DnsPolicy,
    EnvFromSource,
    KeySelector,
    Probe,
    SecretVolumeSource,
    SecurityContext,
)
from agent.model.frozen import EMPTY, FrozenMap
from agent.model.meta import ConditionStatus, ObjectMeta, Protocol
from identity.spiffe import DEFAULT_SERVICE_ACCOUNT


@dataclass(frozen=True, slots=True)
class Namespace:
    kind: ClassVar[str] = "Namespace"
    metadata: ObjectMeta


# --- Pod -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectFieldSelector:
    """A downward-API field of the pod (``spec.nodeName``, ``status.podIP``, ...)."""

    field_path: str
    api_version: str = "v1"


@dataclass(frozen=True, slots=True)
class EnvVarSource:
    """``fieldRef``, ``secretKeyRef`` and ``configMapKeyRef``; ``resourceFieldRef`` is
    dropped, and the lab kubelet sets such a variable to "" (lab/README.md)."""

    field_ref: ObjectFieldSelector | None = None
    secret_key_ref: KeySelector | None = None
    config_map_key_ref: KeySelector | None = None


@dataclass(frozen=True, slots=True)
class EnvVar:
    name: str
    value: str = ""
    value_from: EnvVarSource | None = None


@dataclass(frozen=True, slots=True)
class VolumeMount:
    name: str
    mount_path: str
    read_only: bool | None = None  # None: unset (read-write), as the API omits false


@dataclass(frozen=True, slots=True)
class HostPathVolumeSource:
    path: str
    type: str | None = None


@dataclass(frozen=True, slots=True)
class EmptyDirVolumeSource:
    medium: str | None = None  # "Memory" or unset (the node's disk); sizeLimit is not read


@dataclass(frozen=True, slots=True)
class Volume:
    """A pod volume: its name, and its source when that is a hostPath, an emptyDir, a
    Secret or a ConfigMap (the sources the lab runs, lab/podvolumes.py; the others are kept
    by name only)."""

    name: str
    host_path: HostPathVolumeSource | None = None
    empty_dir: EmptyDirVolumeSource | None = None
    secret: SecretVolumeSource | None = None
    config_map: ConfigMapVolumeSource | None = None


@dataclass(frozen=True, slots=True)
class ContainerPort:
    container_port: int
    name: str | None = None
    protocol: Protocol = Protocol.TCP


@dataclass(frozen=True, slots=True)
class Container:
    """A container. In the lab, ``command`` + ``args`` run inside the pod's network
    namespace; with no command the lab runs its echo server. ``image`` is informational."""

    name: str
    image: str = ""
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    volume_mounts: tuple[VolumeMount, ...] = ()
    env_from: tuple[EnvFromSource, ...] = ()
    startup_probe: Probe | None = None
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    # An init container's "Always" makes it a sidecar (native sidecars, Kubernetes 1.33 GA):
    # it keeps running beside the app containers and may have probes.
    restart_policy: str | None = None
    security_context: SecurityContext | None = None


class RestartPolicy(StrEnum):
    ALWAYS = "Always"
    ON_FAILURE = "OnFailure"
    NEVER = "Never"


@dataclass(frozen=True, slots=True)
class PodSpec:
    """``node_name`` is set once the pod is scheduled; ``node_selector`` constrains where.

    ``service_account_name`` is the pod's identity (a SPIFFE ID ``…/ns/<ns>/sa/<name>``).
    The model keeps what the object says: None when unset. A cluster's ServiceAccount
    admission plugin writes ``default`` there; consumers read None the same way
    (`service_account`), so a pod created without admission has the same identity.
    """

    containers: tuple[Container, ...]
    node_name: str | None = None
    node_selector: FrozenMap[str, str] = EMPTY
    restart_policy: RestartPolicy = RestartPolicy.ALWAYS
    service_account_name: str | None = None
    # True: the node's network namespace (the pod's IP is the node's). None when unset or
    # false, as the API omits false.
    host_network: bool | None = None
    volumes: tuple[Volume, ...] = ()
    # Run one after another, each to exit 0, before ``containers`` start.
    init_containers: tuple[Container, ...] = ()
    # None when unset: the ServiceAccount's own setting decides (default: mounted).
    automount_service_account_token: bool | None = None
    dns_policy: DnsPolicy | None = None  # None when unset: ClusterFirst

    @property
    def service_account(self) -> str:
        """The ServiceAccount the pod runs as: ``default`` when unset, as admission sets it."""
        return self.service_account_name or DEFAULT_SERVICE_ACCOUNT


class PodPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


@dataclass(frozen=True, slots=True)
class PodCondition:
    type: str
    status: ConditionStatus
    reason: str = ""
    message: str = ""
    last_transition_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class PodStatus:
    """Always present on a Pod; empty until the kubelet reports."""

    phase: PodPhase | None = None
    pod_ip: str | None = None
    host_ip: str | None = None
    conditions: tuple[PodCondition, ...] = ()


@dataclass(frozen=True, slots=True)
class Pod:
    kind: ClassVar[str] = "Pod"
    metadata: ObjectMeta
    spec: PodSpec
    status: PodStatus = PodStatus()


# --- Service ---------------------------------------------------------------------------


class ServiceType(StrEnum):
    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"
    EXTERNAL_NAME = "ExternalName"


class TrafficPolicy(StrEnum):
    """``spec.externalTrafficPolicy``: Cluster may hop to another node (and SNATs so replies
    return); Local keeps the client's address and serves only from the receiving node."""

    CLUSTER = "Cluster"
    LOCAL = "Local"


class SessionAffinity(StrEnum):
    NONE = "None"
    CLIENT_IP = "ClientIP"


@dataclass(frozen=True, slots=True)
class ServicePort:
    """A Service port. ``target_port`` is a number or a container port name; it defaults
    to ``port``."""

    port: int
    target_port: int | str
    name: str | None = None
    protocol: Protocol = Protocol.TCP
    app_protocol: str | None = None
    node_port: int | None = None


@dataclass(frozen=True, slots=True)
class ClientIPConfig:
    timeout_seconds: int = 10800


@dataclass(frozen=True, slots=True)
class SessionAffinityConfig:
    client_ip: ClientIPConfig | None = None


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """``cluster_ip`` is None when unassigned, "None" for a headless Service, else an IP.
    ``selector`` empty means the Service selects no pods (endpoints are managed by hand).
    ``session_affinity_config`` is set exactly when affinity is ClientIP. ``external_name``
    (a DNS name) is set exactly when type is ExternalName: no ClusterIP, no endpoints.
    ``external_traffic_policy`` is set exactly for NodePort and LoadBalancer Services (the API
    server defaults it to Cluster); ``health_check_node_port`` only with LoadBalancer + Local."""

    type: ServiceType = ServiceType.CLUSTER_IP
    cluster_ip: str | None = None
    ports: tuple[ServicePort, ...] = ()
    selector: FrozenMap[str, str] = EMPTY
    session_affinity: SessionAffinity = SessionAffinity.NONE
    session_affinity_config: SessionAffinityConfig | None = None
    external_traffic_policy: TrafficPolicy | None = None
    health_check_node_port: int | None = None
    load_balancer_class: str | None = None
    load_balancer_ip: str | None = None  # deprecated upstream; a request to the address pool
    external_name: str | None = None

    @property
    def headless(self) -> bool:
        return self.cluster_ip == "None"

    @property
    def affinity_timeout_seconds(self) -> int | None:
        """ClientIP affinity timeout, or None when affinity is off."""
        config = self.session_affinity_config
        return config.client_ip.timeout_seconds if config and config.client_ip else None


@dataclass(frozen=True, slots=True)
class LoadBalancerIngress:
    """One address of ``status.loadBalancer.ingress``: where the outside reaches the Service."""

    ip: str | None = None
    hostname: str | None = None
    ip_mode: str | None = None  # "VIP" or "Proxy" (KEP-1860)


@dataclass(frozen=True, slots=True)
class LoadBalancerStatus:
    ingress: tuple[LoadBalancerIngress, ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    load_balancer: LoadBalancerStatus = LoadBalancerStatus()


@dataclass(frozen=True, slots=True)
class Service:
    kind: ClassVar[str] = "Service"
    metadata: ObjectMeta
    spec: ServiceSpec = field(default_factory=ServiceSpec)
    status: ServiceStatus = ServiceStatus()

    @property
    def load_balancer_ips(self) -> tuple[str, ...]:
        """The addresses the outside reaches this Service at (LoadBalancer type only)."""
        if self.spec.type is not ServiceType.LOAD_BALANCER:
            return ()
        return tuple(i.ip for i in self.status.load_balancer.ingress if i.ip)


# --- EndpointSlice ---------------------------------------------------------------------


SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class AddressType(StrEnum):
    IPV4 = "IPv4"
    IPV6 = "IPv6"
    FQDN = "FQDN"


@dataclass(frozen=True, slots=True)
class EndpointConditions:
    """Raw conditions as written; use the ``is_*`` properties for Kubernetes semantics
    (an unset ``ready`` means ready, an unset ``serving`` means ``ready``)."""

    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None

    @property
    def is_ready(self) -> bool:
        return self.ready is not False

    @property
    def is_serving(self) -> bool:
        return self.is_ready if self.serving is None else self.serving

    @property
    def is_terminating(self) -> bool:
        return bool(self.terminating)


@dataclass(frozen=True, slots=True)
class ObjectReference:
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    uid: str | None = None


@dataclass(frozen=True, slots=True)
class Endpoint:
    addresses: tuple[str, ...]
    conditions: EndpointConditions = field(default_factory=EndpointConditions)
    hostname: str | None = None
    node_name: str | None = None
    zone: str | None = None
    target_ref: ObjectReference | None = None


@dataclass(frozen=True, slots=True)
class EndpointPort:
    """``port`` None means "all ports"; ``name`` "" is the unnamed port."""

    name: str = ""
    port: int | None = None
    protocol: Protocol = Protocol.TCP
    app_protocol: str | None = None


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    kind: ClassVar[str] = "EndpointSlice"
    metadata: ObjectMeta
    address_type: AddressType
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[EndpointPort, ...] = ()

    @property
    def service_name(self) -> str | None:
        """The owning Service, from the kubernetes.io/service-name label."""
        return self.metadata.labels.get(SERVICE_NAME_LABEL)


# --- Secret ----------------------------------------------------------------------------


TLS_SECRET_TYPE = "kubernetes.io/tls"


@dataclass(frozen=True, slots=True)
class Secret:
    """``data`` holds decoded bytes; manifest ``stringData`` is merged into it (and wins)."""

    kind: ClassVar[str] = "Secret"
    metadata: ObjectMeta
    type: str = "Opaque"
    data: FrozenMap[str, bytes] = EMPTY


# --- ConfigMap -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigMap:
    """``data`` only: Tulle reads ConfigMaps for text such as a BackendTLSPolicy's
    ``ca.crt``; ``binaryData`` is accepted by Kubernetes but not read here."""

    kind: ClassVar[str] = "ConfigMap"
    metadata: ObjectMeta
    data: FrozenMap[str, str] = EMPTY
