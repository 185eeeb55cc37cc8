"""Applies a DesiredDatapath to the node's maps and veths (thin I/O over agent.datapath.maps).

It keeps what it applied, so each round writes only the differences, and on start it adopts
what the pinned maps already hold: a restarted agent changes nothing that is still right.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent.datapath import attach, authz_maps, maps, maps_bulk, mtls_maps
from agent.datapath.authz_l4 import AuthzEntry, AuthzKey
from agent.datapath.desired import DesiredDatapath
from agent.datapath.fit import CIDR_TABLE, IDENTITY_TABLE, Overflow, Unit, fit_policy
from agent.datapath.mtls_plan import MtlsEntry, MtlsKey
from agent.datapath.policy_plan import CidrKey, CidrRule, Direction, IdentityKey, PortRule
from agent.datapath.services import NodeSite, ServiceKey, ServicePlan

if TYPE_CHECKING:  # programs imports BCC: loaded on the agent's BCC thread only
    from collections.abc import Callable

    from pyroute2 import IPRoute

    from agent.cni.attachments import CniAttachments
    from agent.datapath.endpoints_part import LocalEndpoint
    from agent.datapath.programs import Datapath
    from cni.record import EndpointRecord

log = logging.getLogger("tulle.datapath")
IPv4 = ipaddress.IPv4Address
_UNKNOWN_CIDR = CidrRule(deny=True, ports=())
OVERFLOW_FLAG = {
    Direction.INGRESS: maps.EP_F_INGRESS_OVERFLOW,
    Direction.EGRESS: maps.EP_F_EGRESS_OVERFLOW,
}


def _order(key: ServiceKey) -> tuple[int, int, int]:
    """ServiceKey's own order, compared as ints (not IPv4Address objects): 10x faster."""
    return int(key.vip), key.port, key.protocol


def _refused_by_kernel(err: Exception) -> bool:
    """BCC reports a failed map update as a bare Exception with the errno's text."""
    return str(err).startswith("Could not update table")


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
    mtls: dict[MtlsKey, MtlsEntry] = field(default_factory=dict)
    authz: dict[AuthzKey, tuple[AuthzEntry, ...]] = field(default_factory=dict)
    site: NodeSite | None = None  # the node addresses written and the uplink attached for
    uplink: int | None = None  # its ifindex


class Applier:
    def __init__(self, dp: Datapath, netlink: Callable[[], IPRoute],
                 cni: CniAttachments | None = None) -> None:
        self.dp = dp
        self.netlink = netlink  # opened on the first pod veth: not on the first sync's path
        # tulle-cni's records (--cni-state-dir): each pod's host veth, and the marks its ADD
        # waits for. None: every veth is found by route.
        self.cni = cni
        self.applied = self._adopt()
        self.overflows: dict[Unit, Overflow] = {}  # policy units left out (fail closed)
        self.refused_services: dict[ServiceKey, str] = {}  # service ports the lb maps refused
        # The parts of the last DesiredDatapath each pass applied in full. The planner hands
        # over the very same object for a part no change reached, so a pass whose part is
        # that object has nothing to compare (agent.datapath.planner).
        self._done: dict[str, object] = {}

    def _adopt(self) -> Applied:
        """What the pinned maps hold from a previous agent (entries are rewritten only when
        they differ; programs are re-attached everywhere so the new code takes over)."""
        applied = Applied(
            endpoints=maps.read_endpoints(self.dp),
            ipcache=maps.read_ipcache(self.dp),
            l7_clients=maps.read_l7_clients(self.dp),
            mtls=mtls_maps.read_mtls(self.dp),
            authz=authz_maps.read_authz(self.dp),
        )
        for (vip, port, proto), slot in maps_bulk.read_service_slots(self.dp).items():
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
        self._mtls(desired)
        self._authz(desired)
        self._policy(desired)
        self._endpoints(desired)
        self._services(desired)
        self._uplink(desired.services.site)

    def _unchanged(self, part: str, *values: object) -> bool:
        done = self._done.get(part)
        return (
            isinstance(done, tuple)
            and len(done) == len(values)
            and all(a is b for a, b in zip(done, values, strict=True))
        )

    def _veth(self, ep: LocalEndpoint) -> tuple[int | None, EndpointRecord | None]:
        """The pod's host veth, and the tulle-cni record it came from: the pod's own record's
        while that interface is there, else the one that routes to it. None when a record
        gives the address to another pod: that veth is never policed as this one."""
        rec = None
        if self.cni is not None:
            rec, other = self.cni.match(ep.ip, ep.namespace, ep.name)
            if other:
                return None, None
            if rec is not None:
                if attach.link_name(self.netlink(), rec.host_ifindex) == rec.host_ifname:
                    return rec.host_ifindex, rec
                rec = None  # its veth is gone (no DEL came): not a reason to stop the node
        ifindex = attach.veth_for(self.netlink(), ep.ip)
        if self.cni is not None:
            self.cni.routed(ep.ip, ifindex)
        return ifindex, rec

    def _endpoints(self, desired: DesiredDatapath) -> None:
        overflowed = frozenset(self.overflows)
        generation = self.cni.generation if self.cni is not None else 0
        if (
            self._unchanged("endpoints", desired.endpoints)
            and self._done.get("overflowed") == overflowed
            and self._done.get("records") == generation
        ):
            return
        self._done.pop("endpoints", None)
        wanted: dict[int, tuple[IPv4, int, int]] = {}
        records: dict[int, EndpointRecord] = {}
        missing = False
        for ep in desired.endpoints.values():
            ifindex, rec = self._veth(ep)
            if ifindex is None:
                missing = True
                continue  # the sandbox is not wired yet; the next round finds it
            if rec is not None:
                records[ifindex] = rec
            flags = ep.flags
            for direction, flag in OVERFLOW_FLAG.items():
                flags |= flag if (ep.ip, direction) in self.overflows else 0
            wanted[ifindex] = (ep.ip, ep.identity, flags)
        for ifindex, entry in wanted.items():
            if self.applied.endpoints.get(ifindex) != entry:
                maps.write_endpoint(self.dp, ifindex, *entry)
                self.applied.endpoints[ifindex] = entry
            if ifindex not in self.applied.attached:
                if not self.dp.programs_loaded:  # a compile's maps, its programs not yet
                    missing = True
                    continue
                # Endpoint entry first: the programs drop traffic from unknown veths.
                try:
                    attach.attach(self.netlink(), ifindex, self.dp.from_pod_fd,
                                  self.dp.to_pod_fd)
                except Exception as err:
                    if not attach.is_gone(err):
                        raise
                    # Gone since it was found (its pod's netns went): the other pods go on.
                    log.warning("datapath: ifindex %d (%s) is gone", ifindex, entry[0])
                    missing = True
                    continue
                self.applied.attached.add(ifindex)
                log.info("datapath attached to ifindex %d (%s)", ifindex, entry[0])
            if self.cni is not None and ifindex in records:  # entry written, programs on:
                self.cni.attached(records[ifindex], ifindex)  # the pod's ADD may return
        for ifindex in [i for i in self.applied.endpoints if i not in wanted]:
            maps.delete_endpoint(self.dp, ifindex)
            self.applied.endpoints.pop(ifindex)
            self.applied.attached.discard(ifindex)
            if self.cni is not None:
                self.cni.detached(ifindex)
        if not missing:  # else look again next round, for the veths not found yet
            self._done["endpoints"] = (desired.endpoints,)
            self._done["overflowed"] = overflowed
            self._done["records"] = generation

    def _ipcache(self, desired: DesiredDatapath) -> None:
        if self._unchanged("ipcache", desired.ipcache):
            return
        changed = {ip: i for ip, i in desired.ipcache.items() if self.applied.ipcache.get(ip) != i}
        gone = [ip for ip in self.applied.ipcache if ip not in desired.ipcache]
        if changed:
            maps.write_ipcache(self.dp, changed)
        if gone:
            maps.delete_ipcache(self.dp, gone)
        self.applied.ipcache = dict(desired.ipcache)
        self._done["ipcache"] = (desired.ipcache,)

    def _mtls(self, desired: DesiredDatapath) -> None:
        """Enrolment and modes before the endpoints' EP_F_MTLS: a newly enrolled pod finds
        its peers' entries in place."""
        if self._unchanged("mtls", desired.mtls):
            return
        applied = self.applied.mtls
        changed = {k: v for k, v in desired.mtls.items() if applied.get(k) != v}
        gone = [k for k in applied if k not in desired.mtls]
        if changed or gone:
            mtls_maps.write_mtls(self.dp, changed, gone)
        self.applied.mtls = dict(desired.mtls)
        self._done["mtls"] = (desired.mtls,)

    def _authz(self, desired: DesiredDatapath) -> None:
        """AuthorizationPolicy verdicts before the endpoints' flags and the services'
        steering: a destination leaves the waypoint only once the kernel judges it."""
        if self._unchanged("authz", desired.authz):
            return
        applied = self.applied.authz
        changed = {k: v for k, v in desired.authz.items() if applied.get(k) != v}
        gone = [k for k in applied if k not in desired.authz]
        if changed or gone:
            authz_maps.write_authz(self.dp, changed, gone)
        self.applied.authz = dict(desired.authz)
        self._done["authz"] = (desired.authz,)

    def _policy(self, desired: DesiredDatapath) -> None:
        """Write what fits (see agent.datapath.fit); stale entries go first, so old and new
        never together overrun a map. A unit the kernel refuses part of is taken out whole."""
        if self._unchanged("policy", desired.identity_rules, desired.cidr_rules):
            return
        self._done.pop("policy", None)
        capacity = {t: self.dp.table(t).max_entries for t in (IDENTITY_TABLE, CIDR_TABLE)}
        fit = fit_policy(desired.identity_rules, desired.cidr_rules, capacity)
        rules = self.applied.identity_rules
        cidrs = self.applied.cidr_rules
        for key in [k for k in rules if k not in fit.identity_rules]:
            maps.delete_policy_rule(self.dp, key[0], key[1], int(key[2]))
            del rules[key]
        for ckey in [k for k in cidrs if k not in fit.cidr_rules]:
            maps.delete_cidr_rule(self.dp, ckey[0], int(ckey[1]), ckey[2])
            del cidrs[ckey]
        refused: dict[Unit, str] = {}
        for key, wanted in fit.identity_rules.items():
            unit = (key[0], key[2])
            if unit in refused or (key in rules and rules[key] == wanted):
                continue
            try:
                maps.write_policy_rule(self.dp, key[0], key[1], int(key[2]), wanted)
                rules[key] = wanted
            except Exception as err:
                if not _refused_by_kernel(err):
                    raise
                refused[unit] = f"the kernel refused a {IDENTITY_TABLE} entry: {err}"
        for ckey, rule in fit.cidr_rules.items():
            unit = (ckey[0], ckey[1])
            if unit in refused or (cidrs.get(ckey) == rule and cidrs[ckey] is not _UNKNOWN_CIDR):
                continue
            try:
                maps.write_cidr_rule(self.dp, ckey[0], int(ckey[1]), ckey[2], rule.deny, rule.ports)
                cidrs[ckey] = rule
            except Exception as err:
                if not _refused_by_kernel(err):
                    raise
                refused[unit] = f"the kernel refused a {CIDR_TABLE} entry: {err}"
        for key in [k for k in rules if (k[0], k[2]) in refused]:
            maps.delete_policy_rule(self.dp, key[0], key[1], int(key[2]))
            del rules[key]
        for ckey in [k for k in cidrs if (k[0], k[1]) in refused]:
            maps.delete_cidr_rule(self.dp, ckey[0], int(ckey[1]), ckey[2])
            del cidrs[ckey]
        self.overflows = dict(fit.overflows)
        for (ip, direction), reason in refused.items():
            self.overflows[(ip, direction)] = Overflow(ip, direction, reason)
        if not refused:  # a refused unit is tried again next round
            self._done["policy"] = (desired.identity_rules, desired.cidr_rules)

    def _uplink(self, site: NodeSite | None) -> None:
        """nodeport.h's view of this node, and its programs on the uplink, once the node's
        address is known (its Node object). After the service entries: a packet from outside
        finds them written. Attached again on each start, as the veths are: new code takes
        over (the filters are replaced in place)."""
        if site is None or site.address is None or site == self.applied.site:
            return
        if not self.dp.programs_loaded:  # a compile's maps, its programs not yet
            return
        maps.write_node_addresses(self.dp, site.address, site.pod_cidr)
        uplink = None
        if self.dp.from_netdev_fd < 0:  # compiled without the uplink's sources (tests)
            pass
        elif (uplink := attach.uplink_for(self.netlink(), site.address)) is None:
            log.warning("datapath: no interface holds the node address %s: NodePort and "
                        "LoadBalancer Services are not served from outside", site.address)
        else:
            attach.attach_uplink(self.netlink(), uplink, self.dp.from_netdev_fd,
                                 self.dp.to_netdev_fd)
            log.info("datapath: uplink %d (%s) serves NodePort and LoadBalancer Services",
                     uplink, site.address)
        self.applied.site, self.applied.uplink = site, uplink

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
        plan, new = desired.services, desired.services.entries
        old = self.applied.services.entries
        slots = self.applied.slots
        gateway_keys = {k for k in desired.l7 if k not in new}  # listeners: always L7
        flags_as_applied = self._done.get("flags") == (desired.l7, desired.l7_some)
        quiet = flags_as_applied and not self.refused_services
        if quiet and plan.base and plan.base == self.applied.services.generation:
            # The plan says what changed since the applied one: O(changes) at any size.
            stale = [k for k in plan.changed if k in slots and k not in new]
            todo = {k for k in plan.changed if k in new or k in gateway_keys}
        else:
            stale = [k for k in slots if k not in new and k not in gateway_keys]
            if quiet:  # only entries the planner replaced can differ
                todo = {k for k, entry in new.items() if old.get(k) is not entry or k not in slots}
            else:
                todo = set(new) | gateway_keys
        # Removed services first: their slots make room for the new ones.
        for key in stale:
            if key in gateway_keys:
                continue
            slot = self.applied.slots.pop(key)
            self.applied.flags.pop(key, None)
            maps.delete_service(self.dp, key.vip, key.port, key.protocol, slot)
        refused: dict[ServiceKey, str] = {}
        self._done.pop("flags", None)
        keys, writes = [], []
        for key in sorted(todo, key=_order):
            entry = new.get(key)
            flags = (
                maps.LB_F_L7
                if key in desired.l7
                else maps.LB_F_L7_CLIENTS
                if key in desired.l7_some
                else 0
            ) | (entry.flags if entry else 0)  # LB_F_EXTERNAL/LOCAL: agent.datapath.external
            if key in gateway_keys:  # served from outside too: nodeport.h hands it to the waypoint
                flags |= maps.LB_F_EXTERNAL
            unchanged = old.get(key) == entry and self.applied.flags.get(key) == flags
            if unchanged and key in self.applied.slots and key not in self.refused_services:
                continue
            keys.append((key, flags))
            writes.append(maps_bulk.ServiceWrite(
                key.vip, key.port, key.protocol,
                entry.backends if entry else (),
                entry.table if entry else (),
                entry.affinity_timeout if entry else 0,
                self.applied.slots.get(key),
                flags,
            ))
        # All of them in a few batch calls (maps_bulk); each one's result in order.
        for (key, flags), result in zip(keys, maps_bulk.write_services(self.dp, writes),
                                        strict=True):
            if isinstance(result, Exception):
                if not _refused_by_kernel(result):
                    raise result
                # It keeps what it had (or stays unserved: its VIP then fails fast), and
                # every other service still syncs.
                refused[key] = str(result)
                continue
            self.applied.slots[key] = result
            self.applied.flags[key] = flags
        self.refused_services = refused
        self.applied.services = desired.services
        self._done["flags"] = (desired.l7, desired.l7_some)
