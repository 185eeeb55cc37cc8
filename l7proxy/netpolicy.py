"""PolicyGate: NetworkPolicy at the waypoint, judged per (client, backend) and cached."""

from __future__ import annotations

from agent.datapath.policy_waypoint import ConnectionPolicy
from agent.flows.l7record import PolicyNames

Address = tuple[str, int]


class PolicyGate:
    """``WaypointConfig.admits``, ``policy_names`` and ``client_namespace``: the current
    ConnectionPolicy (every pod's policy, identity and namespace), swapped on every change.
    A (client address, backend) pair is judged and named once, then read from the cache."""

    def __init__(self, policy: ConnectionPolicy) -> None:
        self.outside: dict[str, None] = {}  # client addresses the kernel found outside
        self.swap(policy)

    def swap(self, policy: ConnectionPolicy) -> None:
        self.policy = policy
        self._verdicts: dict[tuple[str, Address], PolicyNames | None] = {}

    def saw_outside(self, client: str) -> None:
        """The datapath recorded ``client`` with the world identity (``from_netdev``: a
        Gateway's or Ingress's client from outside the cluster, which the ipcache of every
        pod and node does not know): judged as the world, never failed closed as an unknown
        pod. Bounded: the oldest are forgotten (then failed closed until seen again)."""
        if client in self.outside:
            return
        if len(self.outside) >= 65536:
            del self.outside[next(iter(self.outside))]
        self.outside[client] = None
        for key in [k for k in self._verdicts if k[0] == client]:  # judged as unknown before
            del self._verdicts[key]

    def namespace_of(self, ip: str) -> str | None:
        return self.policy.namespaces.get(ip)

    def names(self, client: Address, backend: Address) -> PolicyNames | None:
        """The policies that allowed client egress and backend ingress; None: denied."""
        key = (client[0], backend)  # the client's port never matters
        try:
            return self._verdicts[key]
        except KeyError:
            if len(self._verdicts) > 65536:
                self._verdicts.clear()
            outside = client[0] in self.outside
            verdict = self._verdicts[key] = self.policy.allowed_by(client, backend,
                                                                   outside=outside)
            return verdict

    def __call__(self, client: Address, backend: Address) -> bool:
        return self.names(client, backend) is not None
