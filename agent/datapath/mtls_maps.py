"""mtls_v1 (bpf/lib/mtls.h) from ``agent.datapath.mtls_plan``'s entries: thin I/O.

``write_mtls`` orders its writes so that a packet never sees a pod's MTLS_F_PORTS without the
port entries it announces: new port entries before the own entries that announce them, and
stale port entries removed only after the own entries that stopped announcing them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from agent.datapath.byteorder import be16, be32, from_be16, from_be32
from agent.datapath.mtls_plan import OWN_PORT, MtlsEntry, MtlsKey

if TYPE_CHECKING:  # programs imports BCC: loaded on the agent's BCC thread only
    from agent.datapath.programs import Datapath

TABLE = "mtls_v1"


def _key(table: Any, key: MtlsKey) -> Any:
    k = table.Key()
    k.addr, k.port = be32(key[0]), be16(key[1])
    return k


def write_mtls(dp: Datapath, changed: Mapping[MtlsKey, MtlsEntry], gone: Iterable[MtlsKey]) -> None:
    """Set ``changed`` and delete ``gone`` (see the module docstring for the order)."""
    table = dp.table(TABLE)
    ports_first = sorted(changed, key=lambda k: k[1] == OWN_PORT)
    for key in ports_first:
        leaf = table.Leaf()
        leaf.mode, leaf.flags = changed[key]
        table[_key(table, key)] = leaf
    for key in sorted(gone, key=lambda k: k[1] != OWN_PORT):  # own entries first
        try:
            del table[_key(table, key)]
        except KeyError:
            pass


def read_mtls(dp: Datapath) -> dict[MtlsKey, MtlsEntry]:
    return {
        (from_be32(k.addr), from_be16(k.port)): (v.mode, v.flags)
        for k, v in dp.table(TABLE).items()
    }
