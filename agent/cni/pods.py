"""A local pod's address from tulle-cni's record, before the API server has it (pure).

A kubelet writes ``status.podIP`` only after CNI ADD returned, and tulle-cni's ADD returns
only once this agent polices the pod's host veth. An agent that took pod addresses from the
API alone would wait for the kubelet while the kubelet waits for it, until ``attachTimeout``
failed every pod (error 11). So for a pod of this node whose status has no address yet, the
planner is handed the Pod with the address its record holds: the Pod (scheduled before its
sandbox exists) gives the identity, the record the address. A record is a Pod's only when its
namespace and name match and its UID (when the runtime passed one) is the Pod's: a stale
record of an earlier pod under the same name never blocks or stands in for the new one. An
address the API reports is kept, unless a record with the Pod's own UID says otherwise (a
sandbox made again, with a new address, before the kubelet reported it).

``CniPods`` keeps, per local pod, the Pod as the API serves it, so that a record that comes
or goes hands the planner the right Pod again; it returns the same patched object while
neither changed, so a resync sees no change.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
from collections.abc import Iterable
from typing import Any, TypeVar

from agent.model.core import Pod
from cni.record import EndpointRecord

log = logging.getLogger("tulle.cni")
Name = tuple[str, str]  # (namespace, name)
T = TypeVar("T", bound=Any)


def record_ipv4(rec: EndpointRecord) -> str | None:
    """The record's first IPv4 address (the datapath is IPv4), without its prefix; its
    addresses parse (``cni.record.decode_record`` refuses a record whose do not)."""
    for text in rec.ips:
        iface = ipaddress.ip_interface(text)
        if isinstance(iface, ipaddress.IPv4Interface):
            return str(iface.ip)
    return None


def records_by_pod(records: Iterable[EndpointRecord]) -> dict[Name, tuple[EndpointRecord, ...]]:
    """Each pod's records with an IPv4 address, by namespace and name (several when a stale
    one of an earlier pod under that name is left: ``record_of`` picks by UID)."""
    found: dict[Name, list[EndpointRecord]] = {}
    for rec in records:
        if rec.pod is not None and record_ipv4(rec) is not None:
            found.setdefault((rec.pod.namespace, rec.pod.name), []).append(rec)
    return {name: tuple(recs) for name, recs in found.items()}


def record_of(pod: Pod, records: Iterable[EndpointRecord]) -> EndpointRecord | None:
    """The one record of ``pod`` among those under its name: same UID, or no UID on either
    side; None when there is none, or several (two sandboxes, one never deleted)."""
    uid = pod.metadata.uid
    mine = [r for r in records
            if r.pod is not None and (not r.pod.uid or not uid or r.pod.uid == uid)]
    return mine[0] if len(mine) == 1 else None


def with_record_address(pod: Pod, rec: EndpointRecord | None) -> Pod:
    """``pod`` with its record's address when its status has none, or when the record has
    the Pod's own UID and another address (pure). A record of another pod under the same
    name (a different UID) is not this pod's."""
    if rec is None or rec.pod is None or pod.spec.host_network:
        return pod
    uid = pod.metadata.uid
    if rec.pod.uid and uid and rec.pod.uid != uid:
        return pod
    address = record_ipv4(rec)
    if address is None or address == pod.status.pod_ip:
        return pod
    if pod.status.pod_ip and not (rec.pod.uid and rec.pod.uid == uid):
        return pod  # the kubelet's word against a record that cannot prove it is this pod's
    return dataclasses.replace(pod, status=dataclasses.replace(pod.status, pod_ip=address))


class CniPods:
    """The planner's view of this node's pods with their records' addresses."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.records: dict[Name, tuple[EndpointRecord, ...]] = {}
        self._served: dict[Name, Pod] = {}  # this node's pods as the API serves them
        self._patched: dict[Name, tuple[Pod, EndpointRecord, Pod]] = {}
        self._ambiguous: set[Name] = set()  # named in the log already

    def patch(self, pod: Pod) -> Pod:
        """The Pod the planner gets for ``pod`` (an API object, set or listed)."""
        name = (pod.metadata.namespace, pod.metadata.name)
        if pod.spec.node_name != self.node:
            self._served.pop(name, None)
            self._patched.pop(name, None)
            return pod
        self._served[name] = pod
        rec = self._record(name, pod)
        held = self._patched.get(name)
        if held is not None and held[0] is pod and held[1] == rec:
            return held[2]
        out = with_record_address(pod, rec)
        if out is pod:
            self._patched.pop(name, None)
        elif rec is not None:
            self._patched[name] = (pod, rec, out)
        return out

    def patch_all(self, objects: list[T]) -> list[T]:
        """A resync's objects, the Pods patched; the node's Pods not among them forgotten."""
        listed = {(o.metadata.namespace, o.metadata.name) for o in objects if isinstance(o, Pod)}
        for name in [n for n in self._served if n not in listed]:
            self.forget(name)
        return [self.patch(o) if isinstance(o, Pod) else o for o in objects]  # type: ignore[misc]

    def _record(self, name: Name, pod: Pod) -> EndpointRecord | None:
        recs = self.records.get(name, ())
        rec = record_of(pod, recs)
        if rec is None and len(recs) > 1 and name not in self._ambiguous:
            self._ambiguous.add(name)
            log.warning("pod %s/%s has several tulle-cni records that could be its own (a "
                        "sandbox that got no DEL?): its address waits for the API server", *name)
        elif rec is not None:
            self._ambiguous.discard(name)
        return rec

    def forget(self, name: Name) -> None:
        """A deleted Pod."""
        self._served.pop(name, None)
        self._patched.pop(name, None)

    def set_records(self, records: Iterable[EndpointRecord]) -> list[Pod]:
        """Take the node's records; returns the Pods the planner must be handed again (their
        records came, went or changed)."""
        fresh = records_by_pod(records)
        changed = {n for n in fresh.keys() | self.records.keys()
                   if fresh.get(n) != self.records.get(n)}
        self.records = fresh
        return [self.patch(self._served[n]) for n in sorted(changed) if n in self._served]
