"""NetworkPolicy for connections the waypoint makes on a client's behalf (pure).

The kernel judges a direct connection twice: the client's egress policy in from_pod.c and
the backend's ingress policy in to_pod.c, both on the peer's identity. A request through
the waypoint is judged the same way, by the same compiled plan (``compile_policy``,
``evaluate``) over every pod of the cluster, on the client's identity: the kernel skips
both checks for it (the waypoint is the only way in, and its own packets carry waypoint
identity), so this is the one place they happen. See ARCHITECTURE.md, "Policy through the
waypoint".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, ip_address

from agent.datapath.identity import WORLD
from agent.datapath.pod_endpoints import pod_endpoints
from agent.datapath.policy import compile_policy
from agent.datapath.policy_names import REGISTRY, PolicyNames
from agent.datapath.policy_plan import NOT_ENFORCED, Direction, PolicyPlan, decide, evaluate
from agent.model.core import Namespace, Pod
from agent.model.networking import NetworkPolicy
from agent.model.validation import special_address

TCP = 6
Address = tuple[str, int]


@dataclass(frozen=True)
class ConnectionPolicy:
    """The cluster's policy plan for every pod, and each pod address's identity."""

    plan: PolicyPlan = field(default_factory=lambda: PolicyPlan({}, {}, {}))
    identities: Mapping[IPv4Address, int] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    namespaces: Mapping[str, str] = field(default_factory=dict)
    """Pod address (text) -> the pod's namespace: selects GAMMA consumer routes."""

    def identity(self, address: IPv4Address) -> int:
        """A pod's identity; anything else is the world (the waypoint's clients are pods)."""
        return self.identities.get(address, WORLD)

    def allows(
        self, client: Address, backend: Address, protocol: int = TCP, outside: bool = False
    ) -> bool:
        """Whether a direct connection from ``client`` to ``backend`` would pass both the
        client's egress and the backend's ingress policy. ``outside``: the kernel found the
        client outside the cluster (a Gateway's or Ingress's client from the uplink, the
        world identity): it has no egress policy, and the backend's ingress judges it as
        the world (ipBlock rules match its address), as to_pod.c judges a NodePort client."""
        try:
            src, dst = ip_address(client[0]), ip_address(backend[0])
        except ValueError:
            return False
        if not isinstance(src, IPv4Address) or not isinstance(dst, IPv4Address):
            return False
        if src not in self.identities and not outside:
            # Not a pod this view knows (yet, or any more): its egress policy cannot be
            # judged, and the kernel drops what no endpoint sent. Fail closed.
            return False
        if special_address(dst) is not None:
            # Loopback, 0.0.0.0, link-local: from the waypoint these are the node's own
            # listeners, which no pod reaches directly (admission refuses such endpoints too).
            return False
        port = backend[1]
        if src not in self.identities:  # outside: the backend's ingress alone
            return evaluate(self.plan, dst, Direction.INGRESS, src, WORLD, protocol, port)
        return evaluate(
            self.plan, src, Direction.EGRESS, dst, self.identity(dst), protocol, port
        ) and evaluate(self.plan, dst, Direction.INGRESS, src, self.identity(src), protocol, port)

    def allowed_by(
        self, client: Address, backend: Address, protocol: int = TCP,
        names: PolicyNames = REGISTRY, outside: bool = False,
    ) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """For a connection ``allows`` admits, the NetworkPolicies ("namespace/name") that
        allowed the client's egress and the backend's ingress (Hubble's
        ``egress_allowed_by``/``ingress_allowed_by``; empty where no policy selects that
        side); None when it is denied. ``names``: the registry the plan was compiled with."""
        if not self.allows(client, backend, protocol, outside):
            return None
        src, dst, port = IPv4Address(client[0]), IPv4Address(backend[0]), backend[1]
        sides = (
            None  # outside the cluster: no egress policy of ours
            if src not in self.identities
            else decide(self.plan, src, Direction.EGRESS, dst, self.identity(dst), protocol, port),
            decide(self.plan, dst, Direction.INGRESS, src, self.identity(src), protocol, port),
        )
        egress, ingress = (
            () if pid is None or pid == NOT_ENFORCED else names.allowed_by(pid, protocol, port)
            for pid in sides
        )
        return egress, ingress


def connection_policy(
    pods: Iterable[Pod], namespaces: Iterable[Namespace], policies: Iterable[NetworkPolicy]
) -> ConnectionPolicy:
    found = pod_endpoints(pods)
    endpoints = [endpoint for _, endpoint in found.pairs]
    plan = compile_policy(
        list(policies),
        endpoints,
        {ns.metadata.name: ns.metadata.labels for ns in namespaces},
        [e.ip for e in endpoints],
    )
    identities = {e.ip: e.identity for e in endpoints}
    by_address = {str(e.ip): e.namespace for e in endpoints}
    return ConnectionPolicy(plan, identities, found.collisions + plan.errors, by_address)
