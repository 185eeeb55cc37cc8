"""The parts of a v1 Container the lab kubelet runs beyond command and env values: key
references into Secrets and ConfigMaps (``env[].valueFrom``, ``envFrom``) and probes.
Shaped as the API's objects (the generic writer in convert.py writes them back as such);
defaults are the API's (pkg/apis/core/v1/defaults.go)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DnsPolicy(StrEnum):
    """A Pod's ``dnsPolicy``: which resolver its containers get. ``ClusterFirst`` (the API's
    default) is the cluster DNS, except in the node's network, where only
    ``ClusterFirstWithHostNet`` gives it (else the node's own, as ``Default``)."""

    CLUSTER_FIRST = "ClusterFirst"
    CLUSTER_FIRST_WITH_HOST_NET = "ClusterFirstWithHostNet"
    DEFAULT = "Default"
    NONE = "None"


@dataclass(frozen=True, slots=True)
class KeySelector:
    """``secretKeyRef`` / ``configMapKeyRef``: one key of a Secret or ConfigMap in the pod's
    namespace. ``optional``: a missing object or key leaves the variable unset instead of
    keeping the container from starting."""

    name: str
    key: str
    optional: bool | None = None  # None: unset (false), as the API omits false


@dataclass(frozen=True, slots=True)
class LocalObjectRef:
    """``envFrom[].configMapRef`` / ``secretRef``."""

    name: str
    optional: bool | None = None


@dataclass(frozen=True, slots=True)
class EnvFromSource:
    """``envFrom[]``: every key of a ConfigMap or a Secret (exactly one), each variable
    named ``prefix`` + key."""

    prefix: str = ""
    config_map_ref: LocalObjectRef | None = None
    secret_ref: LocalObjectRef | None = None


@dataclass(frozen=True, slots=True)
class ExecAction:
    command: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HTTPHeader:
    """``httpHeaders[]`` of an httpGet probe: sent as given (a name may repeat)."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class HTTPGetAction:
    """``port``: a number or a container port's name; ``host`` "": the pod's IP."""

    port: int | str
    path: str = ""  # "" is "/"
    host: str = ""
    scheme: str = "HTTP"
    http_headers: tuple[HTTPHeader, ...] = ()


@dataclass(frozen=True, slots=True)
class TCPSocketAction:
    port: int | str
    host: str = ""


@dataclass(frozen=True, slots=True)
class GRPCAction:
    port: int
    service: str = ""


@dataclass(frozen=True, slots=True)
class Probe:
    """A container probe with exactly one handler (``exec``, ``http_get``, ``tcp_socket``
    or ``grpc``), and its timing with the API's defaults."""

    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    grpc: GRPCAction | None = None
    initial_delay_seconds: int = 0
    timeout_seconds: int = 1
    period_seconds: int = 10
    success_threshold: int = 1
    failure_threshold: int = 3


# --- securityContext (the lab kubelet bounds a container's capabilities: lab/capabilities.py)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """``capabilities``: POSIX capability names as the API takes them (``NET_ADMIN``, ``ALL``;
    a container runtime also reads ``CAP_NET_ADMIN``), added to and dropped from the
    runtime's default set."""

    add: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SecurityContext:
    """A container's ``securityContext``, the fields a runtime acts on for its process.
    None: unset (the runtime's default)."""

    capabilities: Capabilities | None = None
    privileged: bool | None = None
    allow_privilege_escalation: bool | None = None
    read_only_root_filesystem: bool | None = None
    run_as_user: int | None = None
    run_as_non_root: bool | None = None


# --- Secret and ConfigMap volumes (the lab kubelet writes their files: lab/objectvolumes.py)


@dataclass(frozen=True, slots=True)
class KeyToPath:
    """One key of the object, written at ``path`` (relative, no ``..``) in the volume."""

    key: str
    path: str
    mode: int | None = None  # None: the volume's defaultMode


@dataclass(frozen=True, slots=True)
class SecretVolumeSource:
    """``secret``: ``items`` empty projects every key, each at a file of its name."""

    secret_name: str
    items: tuple[KeyToPath, ...] = ()
    default_mode: int | None = None  # None: unset (0644, the API's default)
    optional: bool | None = None  # None: unset (false), as the API omits false


@dataclass(frozen=True, slots=True)
class ConfigMapVolumeSource:
    """``configMap``: as SecretVolumeSource, naming the ConfigMap by ``name``."""

    name: str
    items: tuple[KeyToPath, ...] = ()
    default_mode: int | None = None
    optional: bool | None = None
