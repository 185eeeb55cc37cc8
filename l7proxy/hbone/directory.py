"""The directory callbacks of both HBONE ends, from the waypoint's cluster view.

- ``identity_of(ip)``: a pod's SPIFFE ID (its ServiceAccount in the trust domain);
- ``is_local(ip)``: the pod runs on this node (the receiving end delivers only to those);
- ``waypoint_of(ip)``: the pod's node's waypoint, ``(waypoint_address(node), HBONE_PORT)``,
  this node's own included;
- ``mode_of(ip, port)``: the mTLS mode an enrolled pod accepts on ``port`` ("STRICT",
  "PERMISSIVE", "DISABLE"; port 0: its own), None when it is not enrolled. The same plan as
  the kernel's ``mtls_v1`` (``agent.datapath.mtls_plan``), so the waypoint's L7 upstream hop
  (``l7proxy.via``) decides as the kernel would for the same pair.

Pods that finished (Succeeded, Failed), have no address or node yet, or share their node's
address (host network: no pod identity) are left out, so they have no identity here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from agent.datapath.desired import waypoint_address
from agent.datapath.mtls_plan import MODE_CODES, OWN_PORT, plan_mtls
from agent.datapath.pod_endpoints import pod_endpoints
from agent.model.core import Namespace, Pod, PodPhase
from agent.model.node import Node
from agent.model.peerauth import PeerAuthentication
from identity.hbone import HBONE_PORT
from identity.spiffe import SpiffeIdError, workload_id
from l7proxy.hbone.ends import Address

_DONE = (PodPhase.SUCCEEDED, PodPhase.FAILED)
_MODE_NAMES = {code: str(mode) for mode, code in MODE_CODES.items()}
Modes = Mapping[str, tuple[str, Mapping[int, str]]]  # ip -> (own mode, {port: override})


@dataclass(frozen=True)
class PodDirectory:
    node: str
    pods: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # ip -> (id, node)
    waypoints: Mapping[str, Address] = field(default_factory=dict)  # node -> HBONE address
    modes: Modes = field(default_factory=dict)  # enrolled pods only

    def identity_of(self, ip: str) -> str | None:
        pod = self.pods.get(ip)
        return pod[0] if pod else None

    def is_local(self, ip: str) -> bool:
        pod = self.pods.get(ip)
        return pod is not None and pod[1] == self.node

    def waypoint_of(self, ip: str) -> Address | None:
        pod = self.pods.get(ip)
        return self.waypoints.get(pod[1]) if pod else None

    def mode_of(self, ip: str, port: int) -> str | None:
        found = self.modes.get(ip)
        if found is None:
            return None
        own, ports = found
        return ports.get(port, own) if port != OWN_PORT else own


def modes_of(
    pods: Iterable[Pod],
    namespaces: Iterable[Namespace],
    peer_authentications: Iterable[PeerAuthentication],
) -> dict[str, tuple[str, dict[int, str]]]:
    """The kernel's ``mtls_v1`` plan, by pod address."""
    labels = {ns.metadata.name: ns.metadata.labels for ns in namespaces}
    planned = plan_mtls(pod_endpoints(pods).pairs, labels, peer_authentications)
    out: dict[str, tuple[str, dict[int, str]]] = {}
    for (ip, port), (code, _) in sorted(planned.items(), key=lambda kv: kv[0][1]):
        if port == OWN_PORT:  # sorted: every own entry comes before its overrides
            out[str(ip)] = (_MODE_NAMES[code], {})
        elif str(ip) in out:
            out[str(ip)][1][port] = _MODE_NAMES[code]
    return out


def build(
    node: str,
    pods: Iterable[Pod],
    nodes: Iterable[Node],
    trust_domain: str,
    namespaces: Iterable[Namespace] = (),
    peer_authentications: Iterable[PeerAuthentication] = (),
) -> PodDirectory:
    pods = list(pods)
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
    return PodDirectory(node, by_ip, waypoints, modes_of(pods, namespaces, peer_authentications))


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

    def mode_of(self, ip: str, port: int) -> str | None:
        return self.current.mode_of(ip, port)
