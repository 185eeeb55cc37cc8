"""authz_v1 (bpf/lib/authz.h) from ``agent.datapath.authz_l4``'s entries: thin I/O.

``write_authz`` writes each destination's fallback entry (``UNKNOWN_CLIENT``: deny
everything) before the clients' own entries, and removes it after them, so a destination
is never judged by half its entries: a client without its own entry is denied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from agent.datapath.authz_l4 import UNKNOWN_CLIENT, AuthzEntry, AuthzKey
from agent.datapath.byteorder import be32, from_be32

if TYPE_CHECKING:  # programs imports BCC: loaded on the agent's BCC thread only
    from agent.datapath.programs import Datapath

TABLE = "authz_v1"


def _key(table: Any, key: AuthzKey) -> Any:
    k = table.Key()
    k.client_ip, k.identity = be32(key[0]), key[1]
    return k


def write_authz(
    dp: Datapath, changed: Mapping[AuthzKey, tuple[AuthzEntry, ...]], gone: Iterable[AuthzKey]
) -> None:
    """Set ``changed`` and delete ``gone`` (see the module docstring for the order)."""
    table = dp.table(TABLE)
    for key in sorted(changed, key=lambda k: (k[0] != UNKNOWN_CLIENT, int(k[0]), k[1])):
        entries = changed[key]
        leaf = table.Leaf()
        if len(entries) > len(leaf.ranges):  # authz_l4 fits them; never write half
            raise ValueError(f"{TABLE}: {len(entries)} ranges for {key}, room for "
                             f"{len(leaf.ranges)}")
        leaf.count = len(entries)
        for slot, (first, last, flags, policy) in zip(leaf.ranges, entries, strict=False):
            slot.first, slot.last, slot.flags, slot.policy = first, last, flags, policy
        table[_key(table, key)] = leaf
    for key in sorted(gone, key=lambda k: (k[0] == UNKNOWN_CLIENT, int(k[0]), k[1])):
        try:
            del table[_key(table, key)]
        except KeyError:
            pass


def read_authz(dp: Datapath) -> dict[AuthzKey, tuple[AuthzEntry, ...]]:
    return {
        (from_be32(k.client_ip), k.identity): tuple(
            (r.first, r.last, r.flags, r.policy) for r in v.ranges[: v.count]
        )
        for k, v in dp.table(TABLE).items()
    }
