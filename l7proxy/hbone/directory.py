"""The directory callbacks of both HBONE ends, from the waypoint's cluster view.

- ``identity_of(ip)``: a pod's SPIFFE ID (its ServiceAccount in the trust domain);
- ``is_local(ip)``: the pod runs on this node (the receiving end delivers only to those);
- ``waypoint_of(ip)``: the pod's node's waypoint, ``(waypoint_address(node), HBONE_PORT)``,
  this node's own included.

Pods that finished (Succeeded, Failed), have no address or node yet, or share their node's
address (host network: no pod identity) are left out, so they have no identity here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from agent.datapath.desired import waypoint_address
from agent.model.core import Pod, PodPhase
from agent.model.node import Node
from identity.hbone import HBONE_PORT
from identity.spiffe import SpiffeIdError, workload_id
from l7proxy.hbone.ends import Address

_DONE = (PodPhase.SUCCEEDED, PodPhase.FAILED)


@dataclass(frozen=True)
class PodDirectory:
    node: str
    pods: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # ip -> (id, node)
    waypoints: Mapping[str, Address] = field(default_factory=dict)  # node -> HBONE address

    def identity_of(self, ip: str) -> str | None:
        pod = self.pods.get(ip)
        return pod[0] if pod else None

    def is_local(self, ip: str) -> bool:
        pod = self.pods.get(ip)
        return pod is not None and pod[1] == self.node

    def waypoint_of(self, ip: str) -> Address | None:
        pod = self.pods.get(ip)
        return self.waypoints.get(pod[1]) if pod else None


def build(node: str, pods: Iterable[Pod], nodes: Iterable[Node], trust_domain: str) -> PodDirectory:
    by_ip: dict[str, tuple[str, str]] = {}
    for pod in pods:
        ip, host = pod.status.pod_ip, pod.spec.node_name
        if not ip or not host or ip == pod.status.host_ip or pod.status.phase in _DONE:
            continue
        try:
            spiffe_id = workload_id(trust_domain, pod.metadata.namespace, pod.spec.service_account)
        except SpiffeIdError:
            continue
        by_ip[ip] = (str(spiffe_id), host)
    waypoints = {}
    for item in nodes:
        address = waypoint_address(item)
        if address is not None:
            waypoints[item.metadata.name] = (str(address), HBONE_PORT)
    return PodDirectory(node, by_ip, waypoints)


class LiveDirectory:
    """The callbacks, reading whichever `PodDirectory` was swapped in last."""

    def __init__(self, current: PodDirectory) -> None:
        self.current = current

    def identity_of(self, ip: str) -> str | None:
        return self.current.identity_of(ip)

    def is_local(self, ip: str) -> bool:
        return self.current.is_local(ip)

    def waypoint_of(self, ip: str) -> Address | None:
        return self.current.waypoint_of(ip)
