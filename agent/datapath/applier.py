"""Applies a DesiredDatapath to the node's maps and veths (thin I/O over agent.datapath.maps).

It keeps what it applied, so each round writes only the differences, and on start it adopts
what the pinned maps already hold: a restarted agent changes nothing that is still right.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field

from pyroute2 import IPRoute

from agent.datapath import attach, maps
from agent.datapath.desired import DesiredDatapath
from agent.datapath.policy_plan import CidrKey, CidrRule, Direction, IdentityKey, PortRule
from agent.datapath.programs import Datapath
from agent.datapath.services import ServiceKey, ServicePlan

log = logging.getLogger("tulle.datapath")
IPv4 = ipaddress.IPv4Address
_UNKNOWN_CIDR = CidrRule(deny=True, ports=())


@dataclass
class Applied:
    endpoints: dict[int, tuple[IPv4, int, int]] = field(default_factory=dict)  # ifindex ->
    attached: set[int] = field(default_factory=set)
    ipcache: dict[IPv4, int] = field(default_factory=dict)
    identity_rules: dict[IdentityKey, tuple[PortRule, ...]] = field(default_factory=dict)
    cidr_rules: dict[CidrKey, CidrRule] = field(default_factory=dict)
    services: ServicePlan = field(default_factory=ServicePlan)
    slots: dict[ServiceKey, maps.ServiceSlot] = field(default_factory=dict)
    flags: dict[ServiceKey, int] = field(default_factory=dict)
    l7_clients: set[maps.L7Client] = field(default_factory=set)
    waypoint: tuple[IPv4, int] | None | bool = False  # False: never written by this agent


class Applier:
    def __init__(self, dp: Datapath, ipr: IPRoute) -> None:
        self.dp = dp
        self.ipr = ipr
        self.applied = self._adopt()

    def _adopt(self) -> Applied:
        """What the pinned maps hold from a previous agent (entries are rewritten only when
        they differ; programs are re-attached everywhere so the new code takes over)."""
        applied = Applied(
            endpoints=maps.read_endpoints(self.dp),
            ipcache=maps.read_ipcache(self.dp),
            l7_clients=maps.read_l7_clients(self.dp),
        )
        for (vip, port, proto), slot in maps.read_service_slots(self.dp).items():
            applied.slots[ServiceKey(vip, port, proto)] = slot
        # Unknown values: every adopted rule is rewritten once, and stale ones deleted.
        for ip, identity, direction in maps.read_policy_keys(self.dp):
            applied.identity_rules[(ip, identity, Direction(direction))] = ()
        for ip, direction, net in maps.read_cidr_keys(self.dp):
            applied.cidr_rules[(ip, Direction(direction), net)] = _UNKNOWN_CIDR
        if applied.endpoints or applied.slots:
            log.info(
                "adopted pinned state: %d endpoints, %d ipcache entries, %d services",
                len(applied.endpoints),
                len(applied.ipcache),
                len(applied.slots),
            )
        return applied

    def apply(self, desired: DesiredDatapath) -> None:
        self._ipcache(desired)
        self._policy(desired)
        self._endpoints(desired)
        self._services(desired)

    def _endpoints(self, desired: DesiredDatapath) -> None:
        wanted: dict[int, tuple[IPv4, int, int]] = {}
        for ep in desired.endpoints.values():
            ifindex = attach.veth_for(self.ipr, ep.ip)
            if ifindex is None:
                continue  # the sandbox is not wired yet; the next round finds it
            wanted[ifindex] = (ep.ip, ep.identity, ep.flags)
        for ifindex, entry in wanted.items():
            if self.applied.endpoints.get(ifindex) != entry:
                maps.write_endpoint(self.dp, ifindex, *entry)
                self.applied.endpoints[ifindex] = entry
            if ifindex not in self.applied.attached:
                # Endpoint entry first: the programs drop traffic from unknown veths.
                attach.attach(self.ipr, ifindex, self.dp.from_pod_fd, self.dp.to_pod_fd)
                self.applied.attached.add(ifindex)
                log.info("datapath attached to ifindex %d (%s)", ifindex, entry[0])
        for ifindex in [i for i in self.applied.endpoints if i not in wanted]:
            maps.delete_endpoint(self.dp, ifindex)
            self.applied.endpoints.pop(ifindex)
            self.applied.attached.discard(ifindex)

    def _ipcache(self, desired: DesiredDatapath) -> None:
        changed = {ip: i for ip, i in desired.ipcache.items() if self.applied.ipcache.get(ip) != i}
        gone = [ip for ip in self.applied.ipcache if ip not in desired.ipcache]
        if changed:
            maps.write_ipcache(self.dp, changed)
        if gone:
            maps.delete_ipcache(self.dp, gone)
        self.applied.ipcache = dict(desired.ipcache)

    def _policy(self, desired: DesiredDatapath) -> None:
        old = self.applied.identity_rules
        for key, rules in desired.identity_rules.items():
            if old.get(key) != rules:
                maps.write_policy_rule(self.dp, key[0], key[1], int(key[2]), rules)
        for key in [k for k in old if k not in desired.identity_rules]:
            maps.delete_policy_rule(self.dp, key[0], key[1], int(key[2]))
        self.applied.identity_rules = dict(desired.identity_rules)
        old_cidr = self.applied.cidr_rules
        for ckey, rule in desired.cidr_rules.items():
            if old_cidr.get(ckey) != rule or old_cidr.get(ckey) is _UNKNOWN_CIDR:
                maps.write_cidr_rule(self.dp, ckey[0], int(ckey[1]), ckey[2], rule.deny, rule.ports)
        for ckey in [k for k in old_cidr if k not in desired.cidr_rules]:
            maps.delete_cidr_rule(self.dp, ckey[0], int(ckey[1]), ckey[2])
        self.applied.cidr_rules = dict(desired.cidr_rules)

    def _services(self, desired: DesiredDatapath) -> None:
        if desired.waypoint != self.applied.waypoint:
            maps.write_waypoint(self.dp, desired.waypoint)
            self.applied.waypoint = desired.waypoint
        wanted = {(k.vip, k.port, k.protocol, ip) for k, ip in desired.l7_clients}
        for client in wanted - self.applied.l7_clients:  # before the flag that reads them
            maps.write_l7_client(self.dp, client)
        for client in self.applied.l7_clients - wanted:
            maps.delete_l7_client(self.dp, client)
        self.applied.l7_clients = wanted
        new = desired.services.entries
        old = self.applied.services.entries
        gateway_keys = desired.l7 - set(new)  # Gateway listeners: no backends, always L7
        for key in sorted(set(new) | gateway_keys):
            entry = new.get(key)
            flags = (
                maps.LB_F_L7
                if key in desired.l7
                else maps.LB_F_L7_CLIENTS
                if key in desired.l7_some
                else 0
            )
            unchanged = old.get(key) == entry and self.applied.flags.get(key) == flags
            if unchanged and key in self.applied.slots:
                continue
            self.applied.slots[key] = maps.write_service(
                self.dp,
                key.vip,
                key.port,
                key.protocol,
                [(b.ip, b.port) for b in entry.backends] if entry else [],
                entry.table if entry else (),
                entry.affinity_timeout if entry else 0,
                self.applied.slots.get(key),
                flags,
            )
            self.applied.flags[key] = flags
        for key in [k for k in self.applied.slots if k not in new and k not in gateway_keys]:
            slot = self.applied.slots.pop(key)
            self.applied.flags.pop(key, None)
            maps.delete_service(self.dp, key.vip, key.port, key.protocol, slot)
        self.applied.services = desired.services
