"""Builds and removes the lab's namespaces and links with pyroute2.

Nothing here touches the machine's root network namespace: veth pairs are created inside a
lab namespace with their peer placed straight into another lab namespace.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import subprocess
from pathlib import Path

from pyroute2 import NetNS, netns

from agent.datapath.attach import attached_names
from lab.topology import (
    API_SERVER_IP,
    DNS_ADDRESS,
    EXTERNAL_CLIENT_IP,
    EXTERNAL_PORT,
    FABRIC_CIDR,
    SERVICE_CIDR,
    LabPlan,
    NodePlan,
)

log = logging.getLogger(__name__)

FABRIC_BRIDGE = "fabric0"
NODE_UPLINK = "eth0"
ETC_NETNS = Path("/etc/netns")
DATAPATH_PROGRAMS = frozenset({"tulle_from_pod", "tulle_to_pod"})  # agent.datapath.attach


def _sysctl(ns: str, **values: str | int) -> None:
    # /proc/sys/net is per network namespace; `nsenter --net` switches only that.
    args = [f"{k.replace('__', '.')}={v}" for k, v in values.items()]
    subprocess.run(
        ["nsenter", f"--net=/var/run/netns/{ns}", "sysctl", "-qw", *args],
        check=True,
        capture_output=True,
    )


def _ifindex(ipr: NetNS, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise RuntimeError(f"interface {name} not found")
    return int(found[0])


def _ensure_netns(name: str) -> None:
    if name not in netns.listnetns():
        netns.create(name)


def build_fabric(plan: LabPlan) -> None:
    _ensure_netns(plan.fabric_netns)
    with NetNS(plan.fabric_netns) as ipr:
        ipr.link("set", index=_ifindex(ipr, "lo"), state="up")
        if not ipr.link_lookup(ifname=FABRIC_BRIDGE):
            ipr.link("add", ifname=FABRIC_BRIDGE, kind="bridge")
        bridge = _ifindex(ipr, FABRIC_BRIDGE)
        # The lab API server listens here (lab.apiserver --fabric-address).
        ipr.addr(
            "replace", index=bridge, address=str(API_SERVER_IP), prefixlen=FABRIC_CIDR.prefixlen
        )
        ipr.link("set", index=bridge, state="up")


def build_external_client(plan: LabPlan) -> None:
    """A machine outside the cluster: one address on the fabric and nothing else. It reaches
    nodes' addresses (NodePort) and whatever a route added inside it points at a node (a
    LoadBalancer address); never a pod or ClusterIP, as a real outside client cannot."""
    _ensure_netns(plan.external_netns)
    with NetNS(plan.external_netns) as ipr:
        ipr.link("set", index=_ifindex(ipr, "lo"), state="up")
        if not ipr.link_lookup(ifname=NODE_UPLINK):
            ipr.link(
                "add",
                ifname=NODE_UPLINK,
                kind="veth",
                peer={"ifname": EXTERNAL_PORT, "net_ns_fd": plan.fabric_netns},
            )
        uplink = _ifindex(ipr, NODE_UPLINK)
        ipr.addr(
            "replace", index=uplink, address=str(EXTERNAL_CLIENT_IP),
            prefixlen=FABRIC_CIDR.prefixlen,
        )
        ipr.link("set", index=uplink, state="up")
    with NetNS(plan.fabric_netns) as fab:
        port = _ifindex(fab, EXTERNAL_PORT)
        fab.link("set", index=port, master=_ifindex(fab, FABRIC_BRIDGE), state="up")


def build_node(plan: LabPlan, node: NodePlan, *, fabric_routes: bool = False) -> None:
    """Node netns: uplink to the fabric, gateway + DNS addresses, routes to other nodes.
    ``fabric_routes``: the fabric netns routes the node's pod CIDR via the node's fabric
    address, so pods reach what listens in the fabric (the API server at 10.240.0.1) and get
    the replies: needed once Tulle's own Deployments run as pods (`lab up --install manifests`,
    the default).
    Inside the fabric netns only; the root netns never gets a route."""
    _ensure_netns(node.netns)
    with NetNS(node.netns) as ipr:
        ipr.link("set", index=_ifindex(ipr, "lo"), state="up")
        if not ipr.link_lookup(ifname=NODE_UPLINK):
            ipr.link(
                "add",
                ifname=NODE_UPLINK,
                kind="veth",
                peer={"ifname": node.fabric_peer, "net_ns_fd": plan.fabric_netns},
            )
        uplink = _ifindex(ipr, NODE_UPLINK)
        ipr.addr("replace", index=uplink, address=str(node.fabric_ip), prefixlen=24)
        ipr.link("set", index=uplink, state="up")

        # Gateway, waypoint and DNS addresses live on lo (this kernel has no dummy links); with the
        # default arp_ignore=0 the node still answers pods' ARP for them on every veth.
        lo = _ifindex(ipr, "lo")
        for address in (node.gateway_ip, node.waypoint_ip, DNS_ADDRESS):
            ipr.addr("replace", index=lo, address=str(address), prefixlen=32)

        for other in plan.nodes:
            if other.name != node.name:
                ipr.route(
                    "replace", dst=str(other.pod_cidr), gateway=str(other.fabric_ip), oif=uplink
                )
        # Service VIPs are only ever served by the datapath; VIP traffic it did not translate
        # dies here. `unreachable` rather than a silent blackhole so clients fail fast.
        ipr.route("replace", dst=str(SERVICE_CIDR), type="unreachable")

    with NetNS(plan.fabric_netns) as fab:
        port = _ifindex(fab, node.fabric_peer)
        fab.link("set", index=port, master=_ifindex(fab, FABRIC_BRIDGE), state="up")
        if fabric_routes:
            fab.route("replace", dst=str(node.pod_cidr), gateway=str(node.fabric_ip))

    _sysctl(
        node.netns,
        net__ipv4__ip_forward=1,
        net__ipv4__conf__all__rp_filter=0,
        net__ipv4__conf__default__rp_filter=0,
        # bpf/lib/nodeport.h: a NodePort connection SNATed to the node, and its reversed
        # reply, come back to the stack on the uplink with the node's own source address.
        **{f"net__ipv4__conf__{NODE_UPLINK}__accept_local": 1,
           f"net__ipv4__conf__{NODE_UPLINK}__send_redirects": 0},
    )


def add_pod_netns(pod_netns: str) -> None:
    """A pod's netns with lo up and nothing else: the CNI chain adds eth0 (a runtime brings
    lo up itself, as containerd does, rather than through the loopback plugin)."""
    _ensure_netns(pod_netns)
    with NetNS(pod_netns) as pod:
        pod.link("set", index=_ifindex(pod, "lo"), state="up")


def add_pod(node: NodePlan, pod_netns: str, host_veth: str, pod_ip: ipaddress.IPv4Address) -> None:
    """Pod netns with eth0 = pod_ip/32, default route via the node's gateway address."""
    _ensure_netns(pod_netns)
    with NetNS(node.netns) as ipr:
        if not ipr.link_lookup(ifname=host_veth):
            ipr.link(
                "add",
                ifname=host_veth,
                kind="veth",
                peer={"ifname": "eth0", "net_ns_fd": pod_netns},
            )
        idx = _ifindex(ipr, host_veth)
        ipr.link("set", index=idx, state="up")
        ipr.route("replace", dst=f"{pod_ip}/32", oif=idx, scope="link")
    with NetNS(pod_netns) as pod:
        pod.link("set", index=_ifindex(pod, "lo"), state="up")
        eth0 = _ifindex(pod, "eth0")
        pod.addr("replace", index=eth0, address=str(pod_ip), prefixlen=32)
        pod.link("set", index=eth0, state="up")
        pod.route("replace", dst=f"{node.gateway_ip}/32", oif=eth0, scope="link")
        pod.route("replace", dst="0.0.0.0/0", gateway=str(node.gateway_ip), oif=eth0)


class DatapathProbe:
    """(node, host veth) -> both of the agent's tc programs are on the veth (the CNI-ADD
    condition). Keeps one netlink socket per node netns: kubelets poll this while pods wait."""

    def __init__(self) -> None:
        self._sockets: dict[str, NetNS] = {}

    def __call__(self, node: NodePlan, host_veth: str) -> bool:
        ipr = self._sockets.get(node.netns)
        if ipr is None:  # flags=0: never create a node netns that is gone
            ipr = self._sockets[node.netns] = NetNS(node.netns, flags=0)
        try:
            found = ipr.link_lookup(ifname=host_veth)
            return bool(found) and DATAPATH_PROGRAMS <= attached_names(ipr, int(found[0]))
        except Exception:
            self._sockets.pop(node.netns).close()
            raise

    def close(self) -> None:
        for ipr in self._sockets.values():
            ipr.close()
        self._sockets.clear()


def remove_netns(name: str) -> None:
    """Removing a pod netns also removes its veth pair (the peer dies with it)."""
    if name in netns.listnetns():
        netns.remove(name)
    etc = ETC_NETNS / name
    if etc.is_dir():
        shutil.rmtree(etc, ignore_errors=True)


def write_pod_resolv_conf(pod_netns: str, content: str) -> None:
    """`ip netns exec` bind-mounts /etc/netns/NAME/* over /etc, giving each pod its resolver."""
    etc = ETC_NETNS / pod_netns
    etc.mkdir(parents=True, exist_ok=True)
    tmp = etc / "resolv.conf.tmp"
    tmp.write_text(content)
    os.replace(tmp, etc / "resolv.conf")


def lab_namespaces(prefix: str) -> list[str]:
    return sorted(ns for ns in netns.listnetns() if ns.startswith(prefix))


def destroy(prefix: str) -> list[str]:
    """Remove every netns (and /etc/netns entry) of a lab; returns what was removed."""
    removed = lab_namespaces(prefix)
    # Pods first, then nodes, then the fabric: links die with their namespaces.
    for name in sorted(removed, key=lambda n: 0 if "-pod-" in n else 1 if "-node" in n else 2):
        remove_netns(name)
    if ETC_NETNS.is_dir():
        for leftover in ETC_NETNS.glob(f"{prefix}*"):
            shutil.rmtree(leftover, ignore_errors=True)
    return removed
