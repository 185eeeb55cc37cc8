"""Node authorization: which identities a node's agent may obtain SVIDs for.

An agent authenticates as its node (later: by its ServiceAccount token, bound to the node)
and asks for `spiffe://<td>/ns/<ns>/sa/<sa>`. As Istio's CA does for ztunnel, the CA signs
only if a pod scheduled on that node runs as that namespace/service account, so a
compromised node can obtain the identities of its own pods and of no others.

`may_issue(node, spiffe_id, trust_domain, pods)` is pure: the caller hands it the pods it
knows (plain `PodRecord`s built from its cluster cache). It allows iff
- the ID is in our trust domain and has the workload shape `/ns/<ns>/sa/<sa>`;
- some pod with `node_name == node` runs as `<ns>/<sa>` (no service account means `default`),
- and that pod is not finished (phase Succeeded or Failed: its containers are gone).
Pending pods count: the agent gets the SVID before the workload's first connection.
Terminating pods (deletion requested) still count: they keep serving through their grace
period and may need a renewal then; once deleted they are no longer in `pods`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from identity.spiffe import DEFAULT_SERVICE_ACCOUNT, SpiffeId, SpiffeIdError, workload_of

FINISHED_PHASES = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True)
class PodRecord:
    """What authorization needs of a pod."""

    namespace: str
    name: str
    node_name: str | None
    service_account: str | None = None  # None: `default`
    phase: str = "Running"
    deleting: bool = False

    @property
    def account(self) -> str:
        return self.service_account or DEFAULT_SERVICE_ACCOUNT


@dataclass(frozen=True)
class Decision:
    """`allowed`, and `reason`: the pod that allows it, or why not ("no pod of ns/sa on n2")."""

    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def may_issue(
    node: str, spiffe_id: SpiffeId, trust_domain: str, pods: Iterable[PodRecord]
) -> Decision:
    """May `node`'s agent hold an SVID for `spiffe_id`? See the module docstring."""
    if not node:
        return Decision(False, "the requesting node has no name")
    if spiffe_id.trust_domain != trust_domain:
        return Decision(
            False, f"trust domain {spiffe_id.trust_domain!r} is not ours ({trust_domain!r})"
        )
    try:
        namespace, account = workload_of(spiffe_id)
    except SpiffeIdError as e:
        return Decision(False, str(e))
    finished: list[str] = []
    for pod in pods:
        if pod.node_name != node or pod.namespace != namespace or pod.account != account:
            continue
        if pod.phase in FINISHED_PHASES:
            finished.append(f"{pod.name} ({pod.phase})")
            continue
        return Decision(True, f"pod {namespace}/{pod.name} runs as {account} on {node}")
    detail = f" (finished: {', '.join(sorted(finished))})" if finished else ""
    return Decision(False, f"no pod of {namespace}/{account} on node {node}{detail}")
