"""The one translation from plans (pure Python values) to datapath map entries.

Struct layouts come from C through BCC's ctypes (`table.Key`, `table.Leaf`); this module only
fills them. Addresses and ports are stored in network byte order, as the packets carry them.
"""

from __future__ import annotations

import ctypes
import ipaddress
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.datapath.byteorder import be16, be32, from_be16, from_be32  # noqa: F401 (re-exported)
from agent.datapath.cdefs import LIB_DIR, enum_values
from agent.datapath.flags import (  # noqa: F401  (re-exported for the map writers' callers)
    EP_F_EGRESS_ENFORCED,
    EP_F_EGRESS_OVERFLOW,
    EP_F_INGRESS_ENFORCED,
    EP_F_INGRESS_OVERFLOW,
    LB_F_EXTERNAL,
    LB_F_L7,
    LB_F_L7_CLIENTS,
    LB_F_LOCAL,
)
from agent.datapath.native import update_batch

if TYPE_CHECKING:  # programs imports BCC: loaded on the agent's BCC thread only
    from agent.datapath.programs import Datapath

_CONFIG = enum_values(LIB_DIR / "common.h", "tulle_config")
CFG_WAYPOINT = _CONFIG["TULLE_CFG_WAYPOINT"]
CFG_CT_ENDPOINT_QUOTA = _CONFIG["TULLE_CFG_CT_ENDPOINT_QUOTA"]
CFG_NODE_ADDR = _CONFIG["TULLE_CFG_NODE_ADDR"]
CFG_POD_CIDR = _CONFIG["TULLE_CFG_POD_CIDR"]
BACKEND_GENERATION_SPAN = 1 << 15  # backend indices alternate between two halves per update
SERVICE_TABLES = ("lb_backends_v1", "lb_maglev_v1", "lb_services_v1")  # a service's maps


# -- endpoints and identities --------------------------------------------------------------


def write_endpoint(
    dp: Datapath, ifindex: int, ip: ipaddress.IPv4Address, identity: int, flags: int
) -> None:
    table = dp.table("endpoints_v1")
    leaf = table.Leaf()
    leaf.ip, leaf.identity, leaf.flags = be32(ip), identity, flags
    table[table.Key(ifindex)] = leaf


def delete_endpoint(dp: Datapath, ifindex: int) -> None:
    _delete(dp.table("endpoints_v1"), dp.table("endpoints_v1").Key(ifindex))


def read_endpoints(dp: Datapath) -> dict[int, tuple[ipaddress.IPv4Address, int, int]]:
    return {
        k.value: (from_be32(v.ip), v.identity, v.flags) for k, v in dp.table("endpoints_v1").items()
    }


def write_ipcache(dp: Datapath, entries: Mapping[ipaddress.IPv4Address, int]) -> None:
    table = dp.table("ipcache_v1")
    for ip, identity in entries.items():
        leaf = table.Leaf()
        leaf.identity = identity
        table[table.Key(be32(ip))] = leaf


def delete_ipcache(dp: Datapath, ips: Iterable[ipaddress.IPv4Address]) -> None:
    table = dp.table("ipcache_v1")
    for ip in ips:
        _delete(table, table.Key(be32(ip)))


def read_ipcache(dp: Datapath) -> dict[ipaddress.IPv4Address, int]:
    return {from_be32(k.value): v.identity for k, v in dp.table("ipcache_v1").items()}


# -- policy ------------------------------------------------------------------------------


def _fill_rules(leaf: Any, rules: Iterable[Any], deny: bool = False) -> None:
    items = list(rules)
    leaf.count = len(items)
    leaf.deny = 1 if deny else 0
    for slot, rule in zip(leaf.rules, items, strict=False):
        slot.proto, slot.first, slot.last = rule.protocol, rule.first, rule.last
        slot.policy = rule.policy  # policy set id (policy_names), handed back on a match


def policy_key(dp: Datapath, ep_ip: ipaddress.IPv4Address, identity: int, direction: int) -> Any:
    key = dp.table("policy_v1").Key()
    key.ep_ip, key.identity, key.dir = be32(ep_ip), identity, direction
    return key


def write_policy_rule(
    dp: Datapath, ep_ip: ipaddress.IPv4Address, identity: int, direction: int, rules: Iterable[Any]
) -> None:
    table = dp.table("policy_v1")
    leaf = table.Leaf()
    _fill_rules(leaf, rules)
    table[policy_key(dp, ep_ip, identity, direction)] = leaf


def delete_policy_rule(
    dp: Datapath, ep_ip: ipaddress.IPv4Address, identity: int, direction: int
) -> None:
    _delete(dp.table("policy_v1"), policy_key(dp, ep_ip, identity, direction))


def read_policy_keys(dp: Datapath) -> list[tuple[ipaddress.IPv4Address, int, int]]:
    """(endpoint ip, identity, direction) of every rule in policy_v1."""
    return [(from_be32(k.ep_ip), k.identity, k.dir) for k in dp.table("policy_v1").keys()]


def read_cidr_keys(
    dp: Datapath,
) -> list[tuple[ipaddress.IPv4Address, int, ipaddress.IPv4Network]]:
    """(endpoint ip, direction, prefix) of every entry in policy_cidr_v1."""
    out = []
    for k in dp.table("policy_cidr_v1").keys():
        net = ipaddress.IPv4Network(f"{from_be32(k.addr)}/{k.prefixlen - 64}")
        out.append((from_be32(k.ep_ip), k.dir, net))
    return out


def cidr_key(
    dp: Datapath, ep_ip: ipaddress.IPv4Address, direction: int, cidr: ipaddress.IPv4Network
) -> Any:
    key = dp.table("policy_cidr_v1").Key()
    key.prefixlen = 64 + cidr.prefixlen
    key.ep_ip, key.dir, key.addr = be32(ep_ip), direction, be32(cidr.network_address)
    return key


def write_cidr_rule(
    dp: Datapath,
    ep_ip: ipaddress.IPv4Address,
    direction: int,
    cidr: ipaddress.IPv4Network,
    deny: bool,
    rules: Iterable[Any],
) -> None:
    table = dp.table("policy_cidr_v1")
    leaf = table.Leaf()
    _fill_rules(leaf, rules, deny)
    table[cidr_key(dp, ep_ip, direction, cidr)] = leaf


def delete_cidr_rule(
    dp: Datapath, ep_ip: ipaddress.IPv4Address, direction: int, cidr: ipaddress.IPv4Network
) -> None:
    _delete(dp.table("policy_cidr_v1"), cidr_key(dp, ep_ip, direction, cidr))


# -- services ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceSlot:
    """What a service occupies in the maps, so the next update knows what to free."""

    generation: int
    backend_count: int


def lb_key(dp: Datapath, vip: ipaddress.IPv4Address, port: int, protocol: int) -> Any:
    key = dp.table("lb_services_v1").Key()
    key.vip, key.port, key.proto = be32(vip), be16(port), protocol
    return key


def write_service(
    dp: Datapath,
    vip: ipaddress.IPv4Address,
    port: int,
    protocol: int,
    backends: list[tuple[ipaddress.IPv4Address, int]],
    table: Iterable[int],
    affinity_timeout: int,
    previous: ServiceSlot | None,
    flags: int = 0,
) -> ServiceSlot:
    """Backends at fresh indices, then the Maglev table in one update, then the count;
    finally free the previous generation. Readers never see a slot without its backend.

    When a map refuses an insert (full), what this call wrote is taken back and the error
    raised: the service keeps its previous generation, or stays absent if it was new."""
    generation = 0 if previous is None else 1 - previous.generation
    base = generation * BACKEND_GENERATION_SPAN
    key = lb_key(dp, vip, port, protocol)
    backends_map = dp.table("lb_backends_v1")
    maglev = dp.table("lb_maglev_v1")
    try:
        _write_backends(backends_map, key, base, backends)
        if backends:
            maglev[key] = _maglev_leaf(maglev, table, base)
        else:
            _delete(maglev, key)
        services = dp.table("lb_services_v1")
        svc = services.Leaf()
        svc.backend_count, svc.affinity_timeout, svc.flags = len(backends), affinity_timeout, flags
        services[key] = svc
    except Exception:
        _free_backends(dp, key, ServiceSlot(generation, len(backends)))
        if previous is None:
            _delete(maglev, key)
        raise
    if previous is not None:
        _free_backends(dp, key, previous)
    return ServiceSlot(generation, len(backends))


def _write_backends(
    backends_map: Any, key: Any, base: int, backends: list[tuple[ipaddress.IPv4Address, int]]
) -> None:
    """A service's backends at ``base`` + their index: one BPF_MAP_UPDATE_BATCH call on a
    kernel map (one bpf(2) call per entry made 100,000 of them in a first sync), one write
    per entry on a stand-in map. A refused batch raises as BCC's single update would."""
    if not backends:
        return
    fd = getattr(backends_map, "map_fd", None)
    if fd is None:
        for index, (ip, bport) in enumerate(backends):
            leaf = backends_map.Leaf()
            leaf.addr, leaf.port = be32(ip), be16(bport)
            backends_map[_backend_key(backends_map, key, base + index)] = leaf
        return
    keys = (backends_map.Key * len(backends))()
    leaves = (backends_map.Leaf * len(backends))()
    for index, (ip, bport) in enumerate(backends):
        bkey, leaf = keys[index], leaves[index]
        bkey.svc.vip, bkey.svc.port, bkey.svc.proto = key.vip, key.port, key.proto
        bkey.index = base + index
        leaf.addr, leaf.port = be32(ip), be16(bport)
    try:
        update_batch(fd, keys, leaves)
    except OSError as err:
        # The applier tells a full map (a refusal it reports) from a bug by BCC's words.
        raise Exception(f"Could not update table: {err.strerror}") from err


def _maglev_leaf(maglev: Any, table: Iterable[int], base: int) -> Any:
    """The table's slots offset by ``base``, copied into the leaf in one memmove: setting
    1,021 ctypes elements one by one was most of a first sync's map-write time."""
    leaf = maglev.Leaf()
    slots = array("I", map(base.__add__, table) if base else table)
    if not isinstance(leaf.slots, ctypes.Array):  # a stand-in map (unit tests)
        for i, value in enumerate(slots):
            leaf.slots[i] = value
        return leaf
    size = min(len(slots) * slots.itemsize, ctypes.sizeof(leaf.slots))
    ctypes.memmove(ctypes.addressof(leaf.slots), slots.buffer_info()[0], size)
    return leaf


def delete_service(
    dp: Datapath, vip: ipaddress.IPv4Address, port: int, protocol: int, previous: ServiceSlot | None
) -> None:
    key = lb_key(dp, vip, port, protocol)
    _delete(dp.table("lb_services_v1"), key)
    _delete(dp.table("lb_maglev_v1"), key)
    if previous is not None:
        _free_backends(dp, key, previous)


def _free_backends(dp: Datapath, key: Any, slot: ServiceSlot) -> None:
    backends_map = dp.table("lb_backends_v1")
    base = slot.generation * BACKEND_GENERATION_SPAN
    for index in range(slot.backend_count):
        _delete(backends_map, _backend_key(backends_map, key, base + index))


def read_service_slots(dp: Datapath) -> dict[tuple[ipaddress.IPv4Address, int, int], ServiceSlot]:
    """Rebuild what the pinned maps hold after an agent restart."""
    slots: dict[tuple[ipaddress.IPv4Address, int, int], ServiceSlot] = {}
    for key, svc in dp.table("lb_services_v1").items():
        ident = (from_be32(key.vip), from_be16(key.port), key.proto)
        generation = 0
        backends_map = dp.table("lb_backends_v1")
        probe = _backend_key(backends_map, key, BACKEND_GENERATION_SPAN)
        if svc.backend_count and backends_map.get(probe) is not None:
            generation = 1
        slots[ident] = ServiceSlot(generation, svc.backend_count)
    return slots


L7Client = tuple[ipaddress.IPv4Address, int, int, ipaddress.IPv4Address]  # vip, port, proto, client


def _l7_client_key(dp: Datapath, entry: L7Client) -> Any:
    key = dp.table("l7_clients_v1").Key()
    vip, port, proto, client = entry
    key.vip, key.client, key.port, key.proto = be32(vip), be32(client), be16(port), proto
    return key


def write_l7_client(dp: Datapath, entry: L7Client) -> None:
    """This client's connections to (vip, port, proto) go to the waypoint (LB_F_L7_CLIENTS)."""
    table = dp.table("l7_clients_v1")
    table[_l7_client_key(dp, entry)] = table.Leaf(1)


def delete_l7_client(dp: Datapath, entry: L7Client) -> None:
    _delete(dp.table("l7_clients_v1"), _l7_client_key(dp, entry))


def read_l7_clients(dp: Datapath) -> set[L7Client]:
    return {
        (from_be32(k.vip), from_be16(k.port), k.proto, from_be32(k.client))
        for k in dp.table("l7_clients_v1").keys()
    }


# -- conntrack quota -----------------------------------------------------------------------


def write_ct_quota_counts(dp: Datapath, counts: Mapping[int, int]) -> None:
    """Set each endpoint's live-connection count (keys: be32 source addresses) from the CT
    GC's census; endpoints with none left lose their slot. BPF only ever counts up, so this
    census is also what returns quota after LRU evictions."""
    table = dp.table("ct_quota_v1")
    for key in list(table.keys()):
        if key.value not in counts:
            _delete(table, key)
    for addr, count in counts.items():
        table[table.Key(addr)] = table.Leaf(count)


def write_ct_endpoint_quota(dp: Datapath, quota: int) -> None:
    """Live connections one endpoint may open (0: the default, an eighth of ct_v1)."""
    if quota < 0:
        raise ValueError(f"conntrack endpoint quota must be 0 or more, got {quota}")
    config = dp.table("tulle_config_v1")
    config[config.Key(CFG_CT_ENDPOINT_QUOTA)] = config.Leaf(quota)


def write_waypoint(dp: Datapath, target: tuple[ipaddress.IPv4Address, int] | None) -> None:
    """Where L7 connections go on this node (None: nowhere, L7 services act as plain L4)."""
    config = dp.table("tulle_config_v1")
    value = 0 if target is None else be32(target[0]) | (be16(target[1]) << 32)
    config[config.Key(CFG_WAYPOINT)] = config.Leaf(value)


def write_node_addresses(
    dp: Datapath, node: ipaddress.IPv4Address | None, pod_cidr: ipaddress.IPv4Network | None
) -> None:
    """nodeport.h's view of this node: its uplink address (the SNAT source) and pod CIDR
    (which backends are local; a packet from it arriving on the uplink is spoofed)."""
    config = dp.table("tulle_config_v1")
    config[config.Key(CFG_NODE_ADDR)] = config.Leaf(0 if node is None else be32(node))
    cidr = 0 if pod_cidr is None else be32(pod_cidr.network_address) | (pod_cidr.prefixlen << 32)
    config[config.Key(CFG_POD_CIDR)] = config.Leaf(cidr)


def _backend_key(backends_map: Any, svc_key: Any, index: int) -> Any:
    # BCC gives each table its own ctypes classes: copy the service key field by field.
    key = backends_map.Key()
    key.svc.vip, key.svc.port, key.svc.proto = svc_key.vip, svc_key.port, svc_key.proto
    key.index = index
    return key


def _delete(table: Any, key: Any) -> None:
    try:
        del table[key]
    except KeyError:
        pass
