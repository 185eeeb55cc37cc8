"""Who a flow endpoint is, at the grain of a service map: a workload, a service, or one of
the collapsed peers (world, host, remote-node, other reserved identities).

One naming rule, shared by `tulle map` and the HTTP metrics' workload labels:

- a pod with a controller (``workloads``) is ``namespace/workload``;
- a pod without one is ``namespace/`` plus its name with the generated suffixes of
  Deployment, ReplicaSet, DaemonSet or StatefulSet pods removed (``web-7d9c6b8f5d-x2kq9``
  and the lab's ``web-3fa9c0d1e2-0b1c2`` become ``web``; ``db-0`` becomes ``db``);
- reserved identities (world, host, remote-node, …) collapse into one peer each, whatever
  their address;
- an endpoint nothing is known about is its IP address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.flows.flow import Endpoint, Service
from agent.flows.names import RESERVED_IDENTITIES

WORKLOAD, SERVICE, RESERVED, ADDRESS = "workload", "service", "reserved", "address"

# Kubernetes' generated-name alphabet has no vowels and no 0, 1, 3; the lab uses hex.
_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"
_POD_SUFFIXES = (
    re.compile(rf"^(.+)-(?:[0-9a-f]{{10}}|{_SAFE}{{6,10}})-(?:[0-9a-f]{{5}}|{_SAFE}{{5}})$"),
    re.compile(rf"^(.+)-{_SAFE}{{5}}$"),
    re.compile(r"^(.+)-\d+$"),
)
_RESERVED_ALIASES = {"world-ipv4": "world", "world-ipv6": "world"}


@dataclass(frozen=True, slots=True)
class Peer:
    """A node of the service map."""

    id: str  # unique: "shop/web", "svc:shop/web", "world", "10.0.0.9"
    kind: str  # WORKLOAD, SERVICE, RESERVED or ADDRESS
    name: str  # workload, service or reserved name, or the address
    namespace: str = ""
    detail: str = ""  # workload kind ("Deployment"), "Service", "reserved identity"…

    @property
    def label(self) -> str:
        """"namespace/name" or the bare name."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


def pod_workload_name(pod_name: str) -> str:
    """The workload a pod name was generated from, by Kubernetes' (and the lab's) naming."""
    for pattern in _POD_SUFFIXES:
        m = pattern.match(pod_name)
        if m:
            return m.group(1)
    return pod_name


def reserved_name(ep: Endpoint) -> str | None:
    """"world", "host", "remote-node"… for endpoints with a reserved identity, else None."""
    for label in ep.labels:
        if label.startswith("reserved:"):
            name = label[len("reserved:"):]
            return _RESERVED_ALIASES.get(name, name)
    if 0 < ep.identity < 256 and ep.identity in RESERVED_IDENTITIES and not ep.pod_name:
        name = RESERVED_IDENTITIES[ep.identity]
        return _RESERVED_ALIASES.get(name, name)
    return None


def endpoint_peer(ep: Endpoint | None, ip: str = "") -> Peer:
    """The map node for one side of a flow."""
    if ep is not None:
        if ep.workloads:
            wl = ep.workloads[0]
            return Peer(_qualified(ep.namespace, wl.name), WORKLOAD, wl.name, ep.namespace,
                        wl.kind)
        if ep.pod_name:
            name = pod_workload_name(ep.pod_name)
            return Peer(_qualified(ep.namespace, name), WORKLOAD, name, ep.namespace, "Pod")
        reserved = reserved_name(ep)
        if reserved is not None:
            return Peer(reserved, RESERVED, reserved, detail="reserved identity")
    if ip:
        return Peer(ip, ADDRESS, ip, detail="address")
    return Peer("unknown", RESERVED, "unknown", detail="unknown endpoint")


def _qualified(namespace: str, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


def service_peer(svc: Service) -> Peer:
    return Peer(f"svc:{_qualified(svc.namespace, svc.name)}", SERVICE, svc.name,
                svc.namespace, "Service")


def workload_label(ep: Endpoint | None) -> str:
    """The ``source_workload``/``destination_workload`` value of the HTTP metrics:
    "namespace/workload", a reserved name, or "unknown" (never an address, which would be
    unbounded)."""
    peer = endpoint_peer(ep)
    return "unknown" if peer.kind == ADDRESS else peer.label
