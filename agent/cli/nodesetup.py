"""`python3 -m agent.cli.node setup`: the agent DaemonSet's node-setup init container.

The datapath sends L7 and mTLS connections to the node's waypoint address, which by the
cluster's rule is the last host of the node's pod CIDR (agent.datapath.desired
``waypoint_address``: only Node.spec decides it). In the lab, `lab up` puts it on each node's
loopback; on a cluster this step does, once per boot (an address on ``lo`` answers for the
node as any local address does, and the kernel routes local addresses before the CNI's
routes to the pod CIDR). Then it writes the address to a file that the agent
(``--waypoint``) and the waypoint (``--listen``) start from, since a manifest cannot compute
it (the downward API has no ``spec.podCIDR``).

A node without a pod CIDR (some CNIs allocate without one) gets an empty file: the agent then
runs without L7 redirection, and says so.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from agent.datapath.desired import waypoint_address
from agent.model.convert import ConversionError, from_dict
from agent.model.node import Node

log = logging.getLogger("tulle.nodesetup")
IPv4 = ipaddress.IPv4Address


class SetupError(Exception):
    """The node cannot be set up; the message says why and what to do."""


def plan(node: Mapping[str, Any]) -> IPv4 | None:
    """The node's waypoint address from its object, or None without a pod CIDR. Pure."""
    try:
        model = from_dict(node)
    except ConversionError as err:
        raise SetupError(f"Node {node.get('metadata', {}).get('name')!r}: {err}") from None
    assert isinstance(model, Node)
    return waypoint_address(model)


def add_to_loopback(address: IPv4, ifname: str = "lo") -> bool:
    """``address``/32 on ``ifname`` of this network namespace (the host's, with hostNetwork);
    False when it is there already. Needs CAP_NET_ADMIN."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            raise SetupError(f"no interface {ifname!r} in this network namespace")
        index = found[0]
        present = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index, family=2)}
        if str(address) in present:
            return False
        ipr.addr("add", index=index, address=str(address), prefixlen=32)
        return True


def read_node(client: Any, name: str) -> dict[str, Any]:
    """The Node by a list with a name field selector: the agent's role lists Nodes, never gets."""
    from agent.kube.resources import resource_for

    nodes = [dict(o) for o in client.list(resource_for("Node"),
                                          fields={"metadata.name": name})]
    if not nodes:
        raise SetupError(f"no Node {name!r} in the cluster (is --node this node's name?)")
    return nodes[0]


def setup(node: Mapping[str, Any], out: Path,
          add: Callable[[IPv4], bool] = add_to_loopback) -> IPv4 | None:
    """Add the node's waypoint address and write it to ``out`` (one line; empty: none), whole
    or not at all, for the containers' shell to read."""
    address = plan(node)
    if address is None:
        name = node.get("metadata", {}).get("name")
        log.warning("Node %s has no IPv4 spec.podCIDR of /30 or wider: no waypoint address, so "
                    "L7 routes and mTLS tunnels are off on this node", name)
    elif add(address):
        log.info("added the waypoint address %s/32 to lo", address)
    else:
        log.info("the waypoint address %s is already on lo", address)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text("" if address is None else f"{address}\n")
    os.replace(tmp, out)
    return address


def run(node: str, kubeconfig: str | None, out: Path) -> int:
    from agent.kube.source import KubeconfigError, connect

    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {node} %(levelname)s %(message)s")
    try:
        setup(read_node(connect(kubeconfig), node), out)
    except (SetupError, KubeconfigError) as err:
        log.error("%s", err)
        return 1
    except OSError as err:  # netlink refused (no CAP_NET_ADMIN) or the file not written
        log.error("cannot set up the node: %s", err)
        return 1
    return 0
