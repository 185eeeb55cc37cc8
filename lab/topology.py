"""The lab's address plan: pure functions from (lab name, node count) to names and CIDRs.

Everything the lab creates is named from here, so `lab down` and the leak checks can find
every namespace by prefix without any state file.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass

FABRIC_CIDR = ipaddress.IPv4Network("10.240.0.0/24")
POD_SUPERNET = ipaddress.IPv4Network("10.244.0.0/16")
SERVICE_CIDR = ipaddress.IPv4Network("10.96.0.0/16")
# LoadBalancer and Gateway addresses (the default LoadBalancerIPPool): the fabric's top /27,
# above every node's address (10 + MAX_NODES < 224), announced on the fabric by one node.
# 30 addresses: the conformance suite alone gives 15 Gateways one each.
LB_POOL_CIDR = ipaddress.IPv4Network("10.240.0.224/27")
# The lab API server's second listener, on the fabric bridge (inside the fabric netns): every
# node reaches it over its uplink, and the root namespace gets no address or route.
API_SERVER_IP = FABRIC_CIDR.network_address + 1
API_SERVER_PORT = 6443
# NodeLocal-DNS style address: link-local, so it can never leak toward an uplink.
DNS_ADDRESS = ipaddress.IPv4Address("169.254.20.10")
CLUSTER_DOMAIN = "cluster.local"
# The external client: a machine outside the cluster on the same L2 fabric (a load balancer's
# client, a laptop on the node network). Only the fabric's connected route: no pod-CIDR or
# service routes, no cluster DNS, no Tulle. Its port on the fabric bridge is `EXTERNAL_PORT`.
EXTERNAL_CLIENT_IP = FABRIC_CIDR.network_address + 2
EXTERNAL_PORT = "ext0"
WAYPOINT_PORT = 15001  # where each node's waypoint accepts redirected connections
MAX_NODES = 200
POD_NETNS_READABLE = 40  # netns names are file names: keep them short

_LAB_NAME = re.compile(r"^[a-z][a-z0-9]{0,11}$")


class TopologyError(ValueError):
    """An impossible lab shape (bad name, too many nodes)."""


@dataclass(frozen=True, slots=True)
class NodePlan:
    name: str
    index: int
    netns: str
    fabric_ip: ipaddress.IPv4Address
    pod_cidr: ipaddress.IPv4Network
    gateway_ip: ipaddress.IPv4Address  # the node's own address inside its pod CIDR

    @property
    def waypoint_ip(self) -> ipaddress.IPv4Address:
        """The node's waypoint address: the last host of its pod CIDR, never given to a pod."""
        return self.pod_cidr.broadcast_address - 1

    @property
    def fabric_peer(self) -> str:
        """Name of the node's port on the fabric bridge (inside the fabric netns)."""
        return f"n{self.index}"


@dataclass(frozen=True, slots=True)
class LabPlan:
    name: str
    nodes: tuple[NodePlan, ...]

    @property
    def prefix(self) -> str:
        return f"tulle-{self.name}-"

    @property
    def fabric_netns(self) -> str:
        return f"{self.prefix}fabric"

    @property
    def external_netns(self) -> str:
        """The external client's namespace (`tulle lab exec --external`)."""
        return f"{self.prefix}external"

    def node(self, name: str) -> NodePlan:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"lab {self.name!r} has no node {name!r}")

    def pod_netns(self, namespace: str, pod: str) -> str:
        """A readable, bounded prefix plus a hash of `namespace/pod`: `-` may appear in both
        names (so `a-b/c` and `a/b-c` read alike) but `/` in neither, so the hash is unique."""
        digest = hashlib.sha256(f"{namespace}/{pod}".encode()).hexdigest()[:16]
        readable = f"{namespace}-{pod}"[:POD_NETNS_READABLE]
        return f"{self.prefix}pod-{readable}-{digest}"


def validate_lab_name(name: str) -> str:
    if not _LAB_NAME.match(name):
        raise TopologyError(
            f"invalid lab name {name!r}: "
            "use 1-12 lowercase letters or digits, starting with a letter"
        )
    return name


def plan_lab(name: str, node_count: int) -> LabPlan:
    validate_lab_name(name)
    if not 1 <= node_count <= MAX_NODES:
        raise TopologyError(f"--nodes must be between 1 and {MAX_NODES}, got {node_count}")
    nodes = tuple(_plan_node(name, i) for i in range(1, node_count + 1))
    return LabPlan(name=name, nodes=nodes)


def _plan_node(lab: str, index: int) -> NodePlan:
    pod_cidr = ipaddress.IPv4Network(f"10.244.{index}.0/24")
    return NodePlan(
        name=f"node{index}",
        index=index,
        netns=f"tulle-{lab}-node{index}",
        fabric_ip=FABRIC_CIDR.network_address + 10 + index,
        pod_cidr=pod_cidr,
        gateway_ip=pod_cidr.network_address + 1,
    )


def host_veth_name(namespace: str, pod: str) -> str:
    """Node-side veth name: `lxc` + a stable hash, within IFNAMSIZ (15 chars)."""
    return "lxc" + hashlib.sha256(f"{namespace}/{pod}".encode()).hexdigest()[:11]
