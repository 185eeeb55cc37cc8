"""Attaching the datapath to pod veths with pyroute2 (tc clsact, direct-action bpf filters).

Filters use a fixed priority and handle, so attaching again is an atomic in-place replace:
a restarted agent swaps in its freshly loaded programs without a gap.

pyroute2 is imported on first use (``netlink``), not with this module: its import costs
~0.1 s of the GIL, which the agent's first lists need more (tests/unit/test_import_agent.py).
"""

from __future__ import annotations

import errno
import ipaddress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyroute2 import IPRoute

INGRESS_PARENT = "ffff:fff2"  # packets the pod sends (they enter the node on its veth)
EGRESS_PARENT = "ffff:fff3"  # packets delivered to the pod (on the uplink: leaving the node)
FILTER_PRIO = 1
FILTER_HANDLE = 1


def netlink() -> IPRoute:
    """An rtnetlink socket of this network namespace (the caller closes it)."""
    from pyroute2 import IPRoute

    return IPRoute()


def veth_for(ipr: IPRoute, pod_ip: ipaddress.IPv4Address) -> int | None:
    """The node-side interface that routes to the pod: works with any routed-veth CNI."""
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        routes = ipr.route("get", dst=str(pod_ip))
    except NetlinkError:
        return None
    for route in routes:
        oif = route.get_attr("RTA_OIF")
        if oif and route.get_attr("RTA_GATEWAY") is None:
            return int(oif)
    return None


def link_name(ipr: IPRoute, ifindex: int) -> str | None:
    """The name of interface ``ifindex`` here; None when there is none (a veth gone with its
    pod's netns)."""
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        links = ipr.link("get", index=ifindex)
    except NetlinkError:
        return None
    for link in links:
        return str(link.get_attr("IFLA_IFNAME"))
    return None


def is_gone(err: Exception) -> bool:
    """Whether ``err`` (from ``attach``) says the interface is no more (ENODEV)."""
    from pyroute2.netlink.exceptions import NetlinkError

    return isinstance(err, NetlinkError) and err.code == errno.ENODEV


def uplink_for(ipr: IPRoute, address: ipaddress.IPv4Address) -> int | None:
    """The interface holding the node's address (its InternalIP): where traffic from outside
    the cluster arrives."""
    for msg in ipr.get_addr(family=2, address=str(address)):
        return int(msg["index"])
    return None


def attach(ipr: IPRoute, ifindex: int, from_pod_fd: int, to_pod_fd: int) -> None:
    """A pod veth: from_pod on what the pod sends, to_pod on what it receives."""
    _attach(ipr, ifindex, (from_pod_fd, "tulle_from_pod"), (to_pod_fd, "tulle_to_pod"))


def attach_uplink(ipr: IPRoute, ifindex: int, from_netdev_fd: int, to_netdev_fd: int) -> None:
    """The node's uplink: from_netdev on what arrives from outside, to_netdev on what leaves
    (bpf/lib/nodeport.h). Lab uplinks die with their node namespace (``lab down``)."""
    _attach(ipr, ifindex, (from_netdev_fd, "tulle_from_netdev"),
            (to_netdev_fd, "tulle_to_netdev"))


def _attach(ipr: IPRoute, ifindex: int, ingress: tuple[int, str], egress: tuple[int, str]) -> None:
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        ipr.tc("add", "clsact", ifindex)
    except NetlinkError as err:
        if err.code != 17:  # EEXIST: already there
            raise
    for parent, (fd, name) in ((INGRESS_PARENT, ingress), (EGRESS_PARENT, egress)):
        ipr.tc(
            "replace-filter",
            "bpf",
            ifindex,
            FILTER_HANDLE,
            fd=fd,
            name=name,
            parent=parent,
            classid=1,
            direct_action=True,
            prio=FILTER_PRIO,
        )


def attached_names(ipr: IPRoute, ifindex: int) -> set[str]:
    from pyroute2.netlink.exceptions import NetlinkError

    names = set()
    for parent in (INGRESS_PARENT, EGRESS_PARENT):
        try:
            for flt in ipr.get_filters(ifindex, parent=parent):
                name = flt.get_nested("TCA_OPTIONS", "TCA_BPF_NAME")
                if name:
                    names.add(str(name))
        except NetlinkError:
            continue
    return names
