"""Which pods are enrolled in mutual TLS and the mode each accepts, per port: what the kernel's
``mtls_v1`` (bpf/lib/mtls.h) holds, planned for every pod of the cluster (pure).

A pod is enrolled when its namespace carries ``tulle.io/mtls: "true"``
(``identity.peerauth.enrolled``); its mode on a port is ``identity.peerauth.effective_mode``
over the PeerAuthentications. The map holds, per enrolled pod, its own entry (port 0: the mode
with no port-level override) and one entry per port whose override gives another mode; the own
entry then carries ``MTLS_F_PORTS``, so the kernel looks up a port only for such pods.
Not-enrolled pods have no entry: the kernel keeps them on the plaintext path.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from agent.datapath.cdefs import LIB_DIR, defines
from agent.datapath.policy_plan import PodEndpoint
from agent.model.core import Pod
from agent.model.peerauth import PeerAuthentication, mtls_policy
from identity.peerauth import ROOT_NAMESPACE, Mode, Policy, effective_mode, enrolled

IPv4 = ipaddress.IPv4Address

_DEFS = defines(LIB_DIR / "mtls.h", "MTLS_")
MTLS_PERMISSIVE = _DEFS["MTLS_PERMISSIVE"]
MTLS_STRICT = _DEFS["MTLS_STRICT"]
MTLS_DISABLE = _DEFS["MTLS_DISABLE"]
MTLS_F_PORTS = _DEFS["MTLS_F_PORTS"]
MTLS_TUNNEL_PORT = _DEFS["MTLS_TUNNEL_PORT"]  # identity.hbone.TUNNEL_OUTBOUND_PORT
OWN_PORT = 0  # the key port of a pod's own entry
MODE_CODES = {
    Mode.PERMISSIVE: MTLS_PERMISSIVE,
    Mode.STRICT: MTLS_STRICT,
    Mode.DISABLE: MTLS_DISABLE,
}

MtlsKey = tuple[IPv4, int]
"""(pod address, port); port ``OWN_PORT`` is the pod's own entry."""
MtlsEntry = tuple[int, int]
"""(mode: MTLS_PERMISSIVE, MTLS_STRICT or MTLS_DISABLE; flags: MTLS_F_PORTS on an own entry)."""


def plan_mtls(
    pods: Iterable[tuple[Pod, PodEndpoint]],
    namespace_labels: Mapping[str, Mapping[str, str]],
    policies: Iterable[PeerAuthentication],
    root_namespace: str = ROOT_NAMESPACE,
) -> dict[MtlsKey, MtlsEntry]:
    """``pods``: every pod with its address (``pod_endpoints``' pairs: one pod per address,
    the same pods the ipcache names)."""
    by_namespace: dict[str, list[Policy]] = {}
    for policy in policies:
        converted = mtls_policy(policy)
        by_namespace.setdefault(converted.namespace, []).append(converted)
    mesh = by_namespace.get(root_namespace, [])
    planned: dict[MtlsKey, MtlsEntry] = {}
    for pod, endpoint in pods:
        namespace = endpoint.namespace
        if not enrolled(namespace_labels.get(namespace, {})):
            continue
        own_namespace = by_namespace.get(namespace, []) if namespace != root_namespace else []
        candidates = mesh + own_namespace
        labels = pod.metadata.labels
        own = effective_mode(namespace, labels, OWN_PORT, candidates, root_namespace).mode
        # Only a selecting policy of the pod's namespace can set port modes; effective_mode
        # decides whether it is the one that wins for this pod.
        ports = sorted({port for p in own_namespace for port in p.ports})
        overrides = {}
        for port in ports:
            mode = effective_mode(namespace, labels, port, candidates, root_namespace).mode
            if mode != own:
                overrides[port] = MODE_CODES[mode]
        planned[(endpoint.ip, OWN_PORT)] = (MODE_CODES[own], MTLS_F_PORTS if overrides else 0)
        for port, code in overrides.items():
            planned[(endpoint.ip, port)] = (code, 0)
    return planned
