"""Finding the host-side veth of a pod's interface over rtnetlink (pyroute2).

Generic-veth chaining (as Cilium's): whatever CNI ran before us, the pod's ``CNI_IFNAME``
is one end of a veth pair whose other end lives in the namespace the plugin runs in (the
node's). The pod end's IFLA_LINK is the peer's ifindex *in the peer's namespace*; ifindexes
repeat across namespaces, so the host link found under that index must also point back at
the pod's ifindex and sit in the pod's namespace (its IFLA_LINK_NETNSID is the pod
namespace's id as seen from here).

pyroute2 costs ~0.15 s to import, so it is imported here only, on ADD and CHECK; VERSION,
DEL, STATUS and GC never load it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cni.spec import ERR_NO_HOST_VETH, ERR_UNKNOWN_CONTAINER, CniError

if TYPE_CHECKING:
    from pyroute2 import IPRoute


@dataclass(frozen=True, slots=True)
class HostPeer:
    ifname: str  # the host-side veth
    ifindex: int
    pod_ifindex: int  # CNI_IFNAME's index inside the pod


def find_host_peer(netns: str, ifname: str) -> HostPeer:
    from pyroute2 import IPRoute

    try:
        nsfd = os.open(netns, os.O_RDONLY)
    except OSError as err:
        raise CniError(
            ERR_UNKNOWN_CONTAINER,
            "cannot open the pod's network namespace",
            f"{netns}: {err.strerror}",
        ) from None
    try:
        # flags=0: pyroute2 would otherwise create a namespace at a path that is missing.
        with IPRoute(netns=netns, flags=0) as pod:
            links = pod.get_links(ifname=ifname)
        if not links:
            raise CniError(ERR_NO_HOST_VETH, f"no interface {ifname} in the pod", netns)
        link = links[0]
        kind = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
        peer_index = link.get_attr("IFLA_LINK")
        if kind != "veth" or not peer_index:
            raise CniError(
                ERR_NO_HOST_VETH,
                f"{ifname} in the pod is not a veth (kind {kind!r}): generic-veth chaining "
                "needs the previous plugin to give the pod a veth",
                netns,
            )
        with IPRoute() as host:
            host_links = _links_by_index(host, peer_index)
            pod_nsid = host.get_netnsid(fd=nsfd).get("nsid")
    finally:
        os.close(nsfd)
    if not host_links:
        raise CniError(
            ERR_NO_HOST_VETH,
            f"the veth peer of {ifname} (ifindex {peer_index}) is not in this network namespace",
            "run tulle-cni where the CNI ran",
        )
    peer = host_links[0]
    back = peer.get_attr("IFLA_LINK")
    peer_nsid = peer.get_attr("IFLA_LINK_NETNSID")
    if (
        peer.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") != "veth"
        or back != link["index"]
        or pod_nsid is None
        or peer_nsid != pod_nsid
    ):
        raise CniError(
            ERR_NO_HOST_VETH,
            f"ifindex {peer_index} here is not the peer of {ifname}",
            f"its link {back}, netnsid {peer_nsid}; pod's netnsid {pod_nsid}",
        )
    return HostPeer(str(peer.get_attr("IFLA_IFNAME")), int(peer["index"]), int(link["index"]))


def _links_by_index(ipr: IPRoute, index: int) -> tuple[Any, ...]:
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        return tuple(ipr.get_links(index))
    except NetlinkError as err:
        if err.code == 19:  # ENODEV
            return ()
        raise
