"""Conntrack garbage collection, the pure part: which ct_v1 entries go, which connections
ended without a close, and how many live connections each endpoint keeps against its quota
(bpf/lib/quota.h). DatapathController.gc_once (agent/datapath/controller.py) reads the map,
applies the plan and reports the expired connections as flows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agent.datapath.cdefs import LIB_DIR, defines
from agent.datapath.flowevents import CT_F_TUNNEL

CT_EGRESS, CT_SERVICE, CT_F_CLOSED = 1, 3, 0x4  # bpf/lib/conntrack.h
_CT = defines(LIB_DIR / "conntrack.h", "CT_")
CT_NODEPORT, CT_F_SNAT = _CT["CT_NODEPORT"], _CT["CT_F_SNAT"]  # nodeport.h
CLOSED_GRACE_NS = 10 * 10**9
UDP_IDLE_NS = 60 * 10**9
TCP_IDLE_NS = 6 * 3600 * 10**9


@dataclass(frozen=True)
class GcPlan:
    doomed: list[Any]  # ct_v1 keys to delete
    expired: list[tuple[Any, Any]]  # (key, entry) of doomed connections never closed
    quota_counts: dict[int, int]  # be32 endpoint address -> CT_EGRESS entries it keeps


def plan_gc(entries: Iterable[tuple[Any, Any]], now: int) -> GcPlan:
    """Which conntrack entries go (pure). A client->VIP service entry lives exactly as long
    as the connection it steered: once that one is closed or gone, a reused source port must
    not be sent to the old (possibly removed) backend (a tunnelled connection, CT_F_TUNNEL in
    bpf/lib/mtls.h, names that backend in ``backend_*``). The open CT_EGRESS entries that stay
    are each endpoint's count against its quota (quota.h: live connections; BPF gives a closed
    one's back at once): a census, so entries the LRU evicted, connections that expired without
    a close, or tuples BPF re-opened and counted twice give their quota back too."""
    doomed, expired, services, kept = [], [], [], []
    live = set()
    for key, entry in entries:
        if key.dir == CT_SERVICE:
            services.append((key, entry))
            continue
        idle = now - entry.last_seen_ns
        closed = entry.flags & CT_F_CLOSED
        limit = UDP_IDLE_NS if key.tuple.proto != 6 else TCP_IDLE_NS
        if (closed and idle > CLOSED_GRACE_NS) or idle > limit:
            doomed.append(key)
            if not closed:
                expired.append((key, entry))
        elif key.dir == CT_EGRESS:
            t = key.tuple
            if not closed:  # a closed one (BPF gave its quota back) only waits to go
                kept.append(t.saddr)
                live.add((t.saddr, t.sport, t.daddr, t.dport, t.proto))
                if entry.flags & CT_F_TUNNEL:  # keyed on the waypoint: it went to a backend
                    live.add((t.saddr, t.sport, entry.backend_addr, entry.backend_port, t.proto))
        elif key.dir == CT_NODEPORT and not closed:  # from outside (nodeport.h): its client
            t = key.tuple  # is the source, or (SNAT) in backend_*, with its own port
            client = entry.backend_addr if entry.flags & CT_F_SNAT else t.saddr
            live.add((client, t.sport, t.daddr, t.dport, t.proto))
    for key, entry in services:
        t = key.tuple
        steered = (t.saddr, t.sport, entry.backend_addr, entry.backend_port, t.proto)
        if steered not in live and now - entry.last_seen_ns > CLOSED_GRACE_NS:
            doomed.append(key)
    return GcPlan(doomed, expired, dict(Counter(kept)))
