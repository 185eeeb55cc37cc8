"""Which host veth serves a pod address, from tulle-cni's records, and the agent's answers.

The applier (agent.datapath.applier) asks ``match(ip, namespace, name)`` where it attaches a
pod's programs, and calls ``attached`` once the endpoint entry is written and both programs
are on the veth: that writes the mark the plugin's ADD waits for. A pod without a record was
running before tulle-cni was installed (or on a node whose CNI does not chain it): the
applier then finds its veth by route, as before, and says so once.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agent.cni import registry
from cni.record import EndpointRecord

log = logging.getLogger("tulle.cni")
IPv4 = ipaddress.IPv4Address


def live(records: Iterable[EndpointRecord]) -> tuple[list[EndpointRecord], list[EndpointRecord]]:
    """(records in use, records of sandboxes that are gone). A record is gone when its
    netns file's directory is visible here and the file is not (its DEL never came). A
    netns under /proc, or in a directory this agent cannot see (a container without the
    host's /run/netns), is taken as live: only the runtime's DEL or GC removes those."""
    kept: list[EndpointRecord] = []
    stale: list[EndpointRecord] = []
    for rec in records:
        path = rec.netns
        gone = (not path.startswith("/proc/") and os.path.isdir(os.path.dirname(path))
                and not os.path.exists(path))
        (stale if gone else kept).append(rec)
    return kept, stale


class CniAttachments:
    """The node's records by address, and the marks this agent wrote (not thread-safe: the
    controller's lock guards it)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.by_ip: dict[IPv4, EndpointRecord] = {}
        self.generation = 0  # bumped on every change of by_ip: the applier replans endpoints
        self._marked: dict[str, int] = {}  # record key -> host ifindex marked
        self._routed: set[IPv4] = set()  # addresses whose veth was found by route (logged)
        self._conflicts: set[Any] = set()  # addresses two records claim (logged)

    def set_records(self, records: Iterable[EndpointRecord]) -> bool:
        """Take the node's records; True when an address's record changed."""
        owner, conflicts = registry.by_ip(records)
        by_ip = {ip: rec for ip, rec in owner.items() if isinstance(ip, IPv4)}
        for ip in sorted(conflicts - self._conflicts):
            log.warning("address %s is in two tulle-cni records: its veth is found by route", ip)
        self._conflicts = conflicts
        changed = by_ip != self.by_ip
        if changed:
            self.by_ip = by_ip
            self.generation += 1
        keys = {rec.key for rec in by_ip.values()}
        for key in [k for k in self._marked if k not in keys]:
            del self._marked[key]  # its DEL removed the record and the mark
        return changed

    def match(self, ip: IPv4, namespace: str, name: str) -> tuple[EndpointRecord | None, bool]:
        """(the record of the pod ``namespace/name`` at ``ip``, whether a record gives ``ip``
        to another pod). The veth of another pod's record is that pod's: never policed, nor
        marked, with this one's identity (an address still listed for a pod that is going,
        while the new one's Pod is not in the agent's cache yet)."""
        rec = self.by_ip.get(ip)
        if rec is None:
            return None, False
        if rec.pod is None or (rec.pod.namespace, rec.pod.name) != (namespace, name):
            return None, True
        return rec, False

    def routed(self, ip: IPv4, ifindex: int | None) -> None:
        """The applier found ``ip``'s veth by route (no record): logged once per address."""
        if ifindex is not None and ip not in self._routed:
            self._routed.add(ip)
            log.info("pod %s has no tulle-cni record (running before tulle-cni was installed?): "
                     "its veth (ifindex %d) was found by route", ip, ifindex)

    def attached(self, rec: EndpointRecord, ifindex: int) -> None:
        """The datapath polices ``ifindex`` for ``rec``'s pod: answer the record, once."""
        if rec.host_ifindex != ifindex or self._marked.get(rec.key) == ifindex:
            return
        registry.mark_attached(self.state_dir, rec)
        self._marked[rec.key] = ifindex
        log.info("tulle-cni: marked %s (%s) attached on ifindex %d", rec.key,
                 ",".join(rec.ips), ifindex)

    def detached(self, ifindex: int) -> None:
        """The endpoint on ``ifindex`` is gone: withdraw its mark (CHECK then fails, 102)."""
        keys = {k for k, i in self._marked.items() if i == ifindex}
        # and a mark an earlier agent wrote for a record that still names this veth
        keys |= {r.key for r in self.by_ip.values() if r.host_ifindex == ifindex}
        for key in sorted(keys):
            registry.clear_mark(self.state_dir, key)
            self._marked.pop(key, None)
