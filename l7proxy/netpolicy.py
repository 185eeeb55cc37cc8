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
        self.swap(policy)

    def swap(self, policy: ConnectionPolicy) -> None:
        self.policy = policy
        self._verdicts: dict[tuple[str, Address], PolicyNames | None] = {}

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
            verdict = self._verdicts[key] = self.policy.allowed_by(client, backend)
            return verdict

    def __call__(self, client: Address, backend: Address) -> bool:
        return self.names(client, backend) is not None
