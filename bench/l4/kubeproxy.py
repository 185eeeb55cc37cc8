"""kube-proxy's iptables mode as `iptables-restore` text (pure).

The layout mirrors what kube-proxy (iptables mode, v1.28+) writes, so the comparison lab
pays what a real node pays for a new connection:

- nat: ``PREROUTING`` and ``OUTPUT`` jump to ``KUBE-SERVICES``; ``KUBE-SERVICES`` holds one
  rule per service port (``-d VIP/32 -p tcp --dport P -j KUBE-SVC-<hash>``), matched in
  order, and ends with the ``KUBE-NODEPORTS`` rule (``-m addrtype --dst-type LOCAL``: only
  packets to one of the node's own addresses get there, after missing every ClusterIP rule);
  ``KUBE-NODEPORTS`` holds one rule per NodePort (``-p tcp --dport N -j KUBE-EXT-<hash>``),
  matched in order; each ``KUBE-EXT-`` chain (externalTrafficPolicy Cluster) marks the packet
  for masquerade, so replies come back through this node, and jumps to the service's
  ``KUBE-SVC-`` chain; each ``KUBE-SVC-`` chain marks traffic
  from outside the cluster CIDR for masquerade, then picks an endpoint with
  ``-m statistic --mode random`` rules; each ``KUBE-SEP-`` chain marks hairpin traffic and
  DNATs to its endpoint. ``KUBE-POSTROUTING`` masquerades marked packets.
- filter: ``KUBE-FORWARD`` (drop INVALID, accept marked and established) and the empty
  ``KUBE-SERVICES``/``KUBE-EXTERNAL-SERVICES``/``KUBE-PROXY-FIREWALL`` chains that only hold
  rules for services without endpoints or with load-balancer source ranges.

Chain names use kube-proxy's hash: the first 16 characters of base32(sha256(name+proto)),
the same for a service port's ``KUBE-SVC-`` and ``KUBE-EXT-`` chains.
Only the nat table's first packet of a connection walks these chains; conntrack carries the
rest, which is why iptables costs new connections and not keep-alive requests.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

MASQ_MARK = "0x4000/0x4000"


@dataclass(frozen=True, slots=True)
class Endpoint:
    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True, slots=True)
class ServicePort:
    """One (Service, port) as kube-proxy sees it: `namespace/name:port_name` on VIP:port."""

    namespace: str
    name: str
    port_name: str
    vip: str
    port: int
    endpoints: tuple[Endpoint, ...]
    protocol: str = "tcp"
    node_port: int | None = None  # a NodePort Service's port (externalTrafficPolicy Cluster)

    @property
    def port_id(self) -> str:
        """kube-proxy's ServicePortName string, e.g. ``bench/target:http``."""
        return f"{self.namespace}/{self.name}:{self.port_name}"


def _hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def svc_chain(sp: ServicePort) -> str:
    return "KUBE-SVC-" + _hash(sp.port_id + sp.protocol)


def ext_chain(sp: ServicePort) -> str:
    """kube-proxy's ``serviceExternalChainName``: the external-traffic chain of a port."""
    return "KUBE-EXT-" + _hash(sp.port_id + sp.protocol)


def sep_chain(sp: ServicePort, ep: Endpoint) -> str:
    return "KUBE-SEP-" + _hash(sp.port_id + sp.protocol + str(ep))


def _comment(text: str) -> str:
    return f'-m comment --comment "{text}"'


def _probability(remaining: int) -> str:
    return f"{1.0 / remaining:0.10f}"


class RuleError(ValueError):
    """Services kube-proxy would not render this way (the benchmark's own input is wrong)."""


def _check(services: Sequence[ServicePort]) -> None:
    """kube-proxy only gives KUBE-SVC/KUBE-EXT chains to ports with endpoints (the others get
    REJECT rules in the filter table, which the benchmark never needs), and the API server
    never gives one node port to two Services."""
    held: dict[tuple[int, str], str] = {}
    for sp in services:
        if not sp.endpoints:
            raise RuleError(f"{sp.port_id} has no endpoints: only ports with endpoints are "
                            "rendered")
        if sp.node_port is None:
            continue
        if not 1 <= sp.node_port <= 65535:
            raise RuleError(f"{sp.port_id}: node port {sp.node_port} outside 1-65535")
        other = held.setdefault((sp.node_port, sp.protocol), sp.port_id)
        if other != sp.port_id:
            raise RuleError(f"node port {sp.node_port}/{sp.protocol} is both {other}'s and "
                            f"{sp.port_id}'s")


def _service_chains(sp: ServicePort, cluster_cidr: str) -> tuple[list[str], list[str]]:
    """The chains of one service port and their rules: KUBE-EXT (NodePort only), KUBE-SVC,
    and one KUBE-SEP per endpoint."""
    svc = svc_chain(sp)
    dest = f"-d {sp.vip}/32 -p {sp.protocol}"
    dport = f"-m {sp.protocol} --dport {sp.port}"
    chains, rules = [svc], []
    if sp.node_port is not None:
        ext = ext_chain(sp)
        chains.append(ext)
        rules += [
            f"-A {ext} {_comment(f'masquerade traffic for {sp.port_id} external destinations')} "
            "-j KUBE-MARK-MASQ",
            f"-A {ext} -j {svc}",
        ]
    rules.append(
        f"-A {svc} ! -s {cluster_cidr} {dest} {_comment(sp.port_id + ' cluster IP')} "
        f"{dport} -j KUBE-MARK-MASQ"
    )
    count = len(sp.endpoints)
    sep_rules: list[str] = []
    for index, ep in enumerate(sp.endpoints):
        sep = sep_chain(sp, ep)
        chains.append(sep)
        pick = (
            f" -m statistic --mode random --probability {_probability(count - index)}"
            if index < count - 1
            else ""
        )
        rules.append(f"-A {svc} {_comment(f'{sp.port_id} -> {ep}')}{pick} -j {sep}")
        sep_rules.append(f"-A {sep} -s {ep.ip}/32 {_comment(sp.port_id)} -j KUBE-MARK-MASQ")
        sep_rules.append(
            f"-A {sep} -p {sp.protocol} {_comment(sp.port_id)} -m {sp.protocol} "
            f"-j DNAT --to-destination {ep}"
        )
    return chains, rules + sep_rules


def restore_text(services: Sequence[ServicePort], cluster_cidr: str) -> str:
    """The full nat and filter tables for ``services``, in the given order: the last
    service's rule is the last one ``KUBE-SERVICES`` (and, for a NodePort,
    ``KUBE-NODEPORTS``) matches against. Raises RuleError for input kube-proxy would not
    render this way."""
    _check(services)
    nat_chains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"]
    nat_rules = [
        f"-A PREROUTING {_comment('kubernetes service portals')} -j KUBE-SERVICES",
        f"-A OUTPUT {_comment('kubernetes service portals')} -j KUBE-SERVICES",
        f"-A POSTROUTING {_comment('kubernetes postrouting rules')} -j KUBE-POSTROUTING",
        f"-A KUBE-MARK-MASQ -j MARK --set-xmark {MASQ_MARK}",
        f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK} -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
        f"-A KUBE-POSTROUTING {_comment('kubernetes service traffic requiring SNAT')} "
        "-j MASQUERADE --random-fully",
    ]
    svc_rules: list[str] = []
    nodeport_rules: list[str] = []
    chain_rules: list[str] = []
    for sp in services:
        chains, rules = _service_chains(sp, cluster_cidr)
        nat_chains += chains
        chain_rules += rules
        svc_rules.append(
            f"-A KUBE-SERVICES -d {sp.vip}/32 -p {sp.protocol} "
            f"{_comment(sp.port_id + ' cluster IP')} -m {sp.protocol} --dport {sp.port} "
            f"-j {svc_chain(sp)}"
        )
        if sp.node_port is not None:
            nodeport_rules.append(
                f"-A KUBE-NODEPORTS -p {sp.protocol} {_comment(sp.port_id)} -m {sp.protocol} "
                f"--dport {sp.node_port} -j {ext_chain(sp)}"
            )
    svc_rules.append(
        "-A KUBE-SERVICES "
        + _comment("kubernetes service nodeports; NOTE: this must be the last rule in this chain")
        + " -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
    )
    filter_chains = [
        "KUBE-FORWARD", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-PROXY-FIREWALL",
        "KUBE-NODEPORTS",
    ]
    filter_rules = [
        "-A INPUT -m conntrack --ctstate NEW "
        f"{_comment('kubernetes load balancer firewall')} -j KUBE-PROXY-FIREWALL",
        f"-A INPUT {_comment('kubernetes health check service ports')} -j KUBE-NODEPORTS",
        "-A INPUT -m conntrack --ctstate NEW "
        f"{_comment('kubernetes externally-visible service portals')} -j KUBE-EXTERNAL-SERVICES",
        "-A FORWARD -m conntrack --ctstate NEW "
        f"{_comment('kubernetes load balancer firewall')} -j KUBE-PROXY-FIREWALL",
        f"-A FORWARD {_comment('kubernetes forwarding rules')} -j KUBE-FORWARD",
        "-A FORWARD -m conntrack --ctstate NEW "
        f"{_comment('kubernetes service portals')} -j KUBE-SERVICES",
        "-A FORWARD -m conntrack --ctstate NEW "
        f"{_comment('kubernetes externally-visible service portals')} -j KUBE-EXTERNAL-SERVICES",
        "-A OUTPUT -m conntrack --ctstate NEW "
        f"{_comment('kubernetes load balancer firewall')} -j KUBE-PROXY-FIREWALL",
        "-A OUTPUT -m conntrack --ctstate NEW "
        f"{_comment('kubernetes service portals')} -j KUBE-SERVICES",
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        f"-A KUBE-FORWARD {_comment('kubernetes forwarding rules')} "
        f"-m mark --mark {MASQ_MARK} -j ACCEPT",
        f"-A KUBE-FORWARD {_comment('kubernetes forwarding conntrack rule')} "
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    ]
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    lines += [f":{c} - [0:0]" for c in filter_chains]
    lines += [*filter_rules, "COMMIT", "*nat"]
    lines += [":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
              ":POSTROUTING ACCEPT [0:0]"]
    lines += [f":{c} - [0:0]" for c in nat_chains]
    lines += [*nat_rules, *svc_rules, *nodeport_rules, *chain_rules, "COMMIT", ""]
    return "\n".join(lines)
