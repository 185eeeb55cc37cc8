"""The agent's datapath loop: cluster changes -> desired state -> maps; ring buffer -> flows.

The seam to the agent's event source (agent/daemon.py) is two calls, both taking
Kubernetes-shaped dicts as informers deliver them:

- ``apply_changes([ObjectChange(kind, namespace, name, old, new), ...])``: per-object deltas
  (``new`` None: deleted). Only the changed objects are decoded, and only the parts of the
  plan they reach are replanned (agent.datapath.planner): an EndpointSlice change rewrites
  that Service's map entries and nothing else.
- ``preplan(objects)``: before the first resync, a list page as it arrives: its Services
  are planned ahead (their Maglev tables) while the next page is on its way.
- ``resync(objects)``: the whole cluster (after a list or relist). Objects whose
  resourceVersion is unchanged cost a cache lookup; the rest go through the same deltas.
  ``sync`` is its old name.

Kinds the datapath does not read (``WATCHED_KINDS``) are ignored by both.

Planning needs no BPF object: a controller built without its ``Datapath`` (``dp=None``)
decodes and plans while the programs compile elsewhere (the agent's BCC thread), and its
first ``resync`` writes the maps once ``attach(dp)`` handed them over (or raises if
``attach_failed`` says they never will be).

Threads: `sync` runs on the watch thread after each change; `run_events` drains the ring
buffer into the flow ring (`agent.datapath.eventreader`); `run_gc` expires conntrack entries,
reports connections that ended without a close, and recounts each endpoint's live connections
for its conntrack quota (bpf/lib/quota.h). Both need the attached datapath.
"""

from __future__ import annotations

import gc
import ipaddress
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.cni.attachments import CniAttachments
from agent.cni.pods import CniPods
from agent.datapath import attach, maps
from agent.datapath.applier import Applier
from agent.datapath.conntrack_gc import plan_gc
from agent.datapath.desired import DesiredDatapath
from agent.datapath.eventreader import EventReader
from agent.datapath.fit import overflow_error, service_error
from agent.datapath.flow_index import endpoint_index
from agent.datapath.flowevents import EventDecoder
from agent.datapath.kinds import WATCHED_KINDS
from agent.datapath.planner import Change, Planner
from agent.flows.enrich import DEFAULT_TRUST_DOMAIN, EndpointIndex, enrich
from agent.flows.ingest import FlowIngest
from agent.kube import gcpause
from agent.model.cache import ModelCache
from agent.model.core import EndpointSlice, Pod, Service
from agent.model.resource import Resource

if TYPE_CHECKING:  # programs imports BCC (libbcc): not on the agent's import path
    from pathlib import Path

    from pyroute2 import IPRoute

    from agent.datapath.programs import Datapath
    from cni.record import EndpointRecord

log = logging.getLogger("tulle.datapath")


def _no_gc() -> AbstractContextManager[None]:
    """No cyclic collection while a resync allocates 100,000s of long-lived objects: each
    collection would walk them all, and a first sync spent a third of its time there."""
    return gcpause.paused()


@dataclass(frozen=True, slots=True)
class ObjectChange:
    """One object as an informer saw it change. ``new`` None: deleted; ``old`` None: added
    (``old`` is informational: the controller keeps its own copy of every object)."""

    kind: str
    namespace: str
    name: str
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None


class DatapathNotLoaded(RuntimeError):
    """The controller's maps are not there (yet, or ever: the load failed)."""


class DatapathController:
    def __init__(
        self,
        node: str,
        dp: Datapath | None,
        ring: FlowIngest,
        waypoint: tuple[ipaddress.IPv4Address, int] | None = None,
        ct_endpoint_quota: int = 0,
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
        cni_state_dir: Path | None = None,
    ) -> None:
        """``dp`` None: plan now, program the maps once ``attach`` hands them over.
        ``cni_state_dir``: tulle-cni's records (``cni_update``) give this node's pods their
        addresses and veths, and get the agent's marks (agent.cni)."""
        if ct_endpoint_quota < 0:  # before any compile: a bad flag fails at once
            raise ValueError(f"conntrack endpoint quota must be 0 or more, got {ct_endpoint_quota}")
        self.node = node
        self.waypoint = waypoint  # from the agent's configuration, never from the cluster
        self.ct_endpoint_quota = ct_endpoint_quota
        self.trust_domain = trust_domain  # of the pods' SPIFFE IDs in flows
        self.ring = ring
        self._ipr: IPRoute | None = None  # opened on first use (attach.netlink)
        self.models = ModelCache()
        self.planner = Planner(node, waypoint, trust_domain=trust_domain)
        self._frozen = False
        self.decoder = EventDecoder(node)
        self.index = EndpointIndex(local_node=node)
        self.lock = threading.Lock()
        self.last_sync_ms = 0.0
        self.errors: tuple[str, ...] = ()
        self.events = EventReader(self.decoder, ring, lambda: self.index)
        self._dp: Datapath | None = None
        self._applier: Applier | None = None
        self._load_error: BaseException | None = None
        self.cni_pods = CniPods(node) if cni_state_dir is not None else None
        self.cni = CniAttachments(cni_state_dir) if cni_state_dir is not None else None
        self.cni_pending = False  # records taken (cni_update) that no sync programmed yet
        self.attached = threading.Event()  # the maps are here (attach_maps, attach, or failed)
        self.loaded = threading.Event()  # the programs too (attach, or attach_failed)
        if dp is not None:
            self.attach(dp)

    def attach_maps(self, dp: Datapath) -> None:
        """A compile's maps, before its programs load: the first sync writes them while the
        verifier runs; ``attach`` hands over the loaded datapath after."""
        self._take(dp)

    def attach(self, dp: Datapath) -> None:
        """Hand over the loaded programs and maps: the applier adopts what they hold, or,
        after ``attach_maps``, serves the same maps through ``dp`` from now on."""
        if self._applier is None:
            self._take(dp)
        else:
            with self.lock:  # after the writes through the maps-only handles
                early, self._dp, self._applier.dp = self._dp, dp, dp
            if early is not None and early is not dp:
                early.close()  # its own fds; the maps live on in dp
        self.loaded.set()

    def _take(self, dp: Datapath) -> None:
        maps.write_ct_endpoint_quota(dp, self.ct_endpoint_quota)
        applier = Applier(dp, self.netlink, self.cni)
        # No lock: the first sync holds it while it plans, and reads these only once
        # ``attached`` is set.
        self._dp, self._applier = dp, applier
        self.attached.set()

    def attach_failed(self, err: BaseException) -> None:
        """The load failed: a sync waiting for the maps or the programs raises instead of
        waiting on."""
        self._load_error = err
        self.attached.set()
        self.loaded.set()

    @property
    def dp(self) -> Datapath:
        if self._dp is None or self._load_error is not None:
            raise DatapathNotLoaded(self._not_loaded())
        return self._dp

    @property
    def applier(self) -> Applier:
        if self._applier is None or self._load_error is not None:
            raise DatapathNotLoaded(self._not_loaded())
        return self._applier

    def _not_loaded(self) -> str:
        if self._load_error is not None:
            return f"the datapath failed to load: {self._load_error}"
        return "the datapath is not loaded yet"

    # -- desired state ---------------------------------------------------------------------
    def sync(self, objects: Iterable[Mapping[str, Any]]) -> None:
        self.resync(objects)

    def resync(self, objects: Iterable[Mapping[str, Any]]) -> None:
        """The whole cluster: what is not in ``objects`` is gone."""
        started = time.monotonic()
        with _no_gc():
            with self.lock:
                listed = self.models.decode_all(objects, WATCHED_KINDS)
                if self.cni_pods is not None:  # this node's Pods with their records' addresses
                    listed = self.cni_pods.patch_all(listed)
                self.planner.reset(listed)
            self._program(started)
            if not self._frozen:
                # What the first sync decoded and planned mostly stays for the agent's life:
                # out of the collector's generations, later collections do not walk it
                # again. Frozen before the collector is back on: its first collection
                # would walk all of it once more (0.5 s at 10,000 Services). Once only:
                # objects frozen are never collected as cycles.
                gc.freeze()
                self._frozen = True

    def preplan(self, objects: Iterable[Mapping[str, Any] | Resource]) -> int:
        """Before the first ``resync``: plan ahead the Services of what the lists delivered
        so far (their pages, as they arrive), so that the resync over the whole state finds
        these very objects planned and plans only the rest (Planner.reset, .prepare). What
        is not a model (a dict the converter refused) waits for the resync, which logs it.
        Returns how many Services it planned."""
        changes = []
        for obj in objects:
            if isinstance(obj, Service | EndpointSlice):
                meta = obj.metadata
                changes.append(Change(obj.kind, meta.namespace, meta.name, obj))
        with _no_gc(), self.lock:
            self.planner.update(changes)
            return self.planner.prepare()

    def apply_changes(self, changes: Iterable[ObjectChange]) -> None:
        started = time.monotonic()
        decoded = []
        with self.lock:
            for change in changes:
                if change.kind not in WATCHED_KINDS:
                    continue
                key = (change.kind, change.namespace, change.name)
                if change.new is None:
                    self.models.forget(key)
                    obj = None
                else:
                    obj = self.models.decode(change.new)  # None: invalid, counts as absent
                if self.cni_pods is not None and change.kind == "Pod":
                    if isinstance(obj, Pod):
                        obj = self.cni_pods.patch(obj)
                    else:
                        self.cni_pods.forget((change.namespace, change.name))
                decoded.append(Change(change.kind, change.namespace, change.name, obj))
            self.planner.update(decoded)
        self._program(started)

    def cni_update(self, records: list[EndpointRecord]) -> None:
        """This node's live tulle-cni records (agent.cni.watch, on its thread): the Pods
        they give an address are replanned, the applier learns their veths; the next sync
        (``program_pending``) writes and marks them."""
        if self.cni_pods is None or self.cni is None:
            return
        with self.lock:
            veths = self.cni.set_records(records)
            changed = self.cni_pods.set_records(records)
            self.planner.update(Change("Pod", p.metadata.namespace, p.metadata.name, p)
                                for p in changed)
            if veths or changed:  # the watch's periodic full read mostly finds neither
                self.cni_pending = True

    def program_pending(self) -> None:
        """Program what ``cni_update`` took in (the sync loop, when it has no change of its
        own to apply)."""
        self._program(time.monotonic())

    def _program(self, started: float) -> None:
        self.cni_pending = False
        if not self.attached.is_set():
            # The first sync, planned while the programs compile: what needs no maps is
            # done before its writes wait for them.
            with self.lock:
                self._refresh_index(self.planner.desired())
            self.attached.wait()
        with self.lock:
            desired = self.planner.desired()
            self.applier.apply(desired)
            self._refresh_index(desired)
        if not self.loaded.is_set():
            # Written while the verifier ran (attach_maps): the programs go onto the pods'
            # veths once loaded; the other parts, applied already, are not compared again.
            self.loaded.wait()
            with self.lock:
                self.applier.apply(desired)
        with self.lock:
            overflows = tuple(
                overflow_error(o, self.planner.view(), desired)
                for _, o in sorted(self.applier.overflows.items())
            ) + tuple(
                service_error(key, reason, desired)
                for key, reason in sorted(self.applier.refused_services.items())
            )
        errors = desired.errors + overflows
        if errors != self.errors:
            for error in errors:
                log.warning("datapath: %s", error)
            self.errors = errors
        self.last_sync_ms = (time.monotonic() - started) * 1000

    def _refresh_index(self, desired: DesiredDatapath) -> None:
        if self.planner.index_stale:  # Pods, Nodes, Services: not on endpoint changes
            self.index = endpoint_index(self.planner.view(), desired, self.node,
                                        self.trust_domain)
            self.planner.index_stale = False

    # -- events ----------------------------------------------------------------------------
    def run_events(self, stop: threading.Event) -> None:
        self.events.run(self.dp, stop)

    # -- conntrack garbage collection --------------------------------------------------------
    def gc_once(self, now_ns: int | None = None) -> int:
        """Expire idle and closed entries (see `plan_gc`), report connections that ended
        without a close, and recount each endpoint's connections for its quota."""
        now = now_ns if now_ns is not None else time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        table = self.dp.table("ct_v1")
        plan = plan_gc(table.items(), now)
        for key, entry in plan.expired:
            # Never closed by a FIN or RST: this is the connection's last word.
            flow = self.decoder.decode_expired(key, entry, now)
            self.ring.put(enrich(flow, self.index, self.node))
        for key in plan.doomed:
            try:
                del table[key]
            except KeyError:
                pass
        maps.write_ct_quota_counts(self.dp, plan.quota_counts)
        return len(plan.doomed)

    def run_gc(self, stop: threading.Event, interval: float = 10.0) -> None:
        while not stop.wait(interval):
            try:
                removed = self.gc_once()
                if removed:
                    log.info("conntrack gc removed %d entries", removed)
            except Exception:
                log.exception("conntrack gc failed")

    def map_fill(self) -> dict[str, tuple[int, int]]:
        """Entries and capacity of the maps that can fill up, for the metrics."""
        fill = {}
        for name in (
            "ct_v1",
            "lb_services_v1",
            "lb_backends_v1",
            "ipcache_v1",
            "policy_v1",
            "endpoints_v1",
            "l7_orig_dst_v1",
            "l7_clients_v1",
            "lb_affinity_v1",
            "mtls_v1",
            "authz_v1",
        ):
            table = self.dp.table(name)
            fill[name] = (sum(1 for _ in table.keys()), table.max_entries)
        return fill

    def netlink(self) -> IPRoute:
        if self._ipr is None:
            self._ipr = attach.netlink()
        return self._ipr

    def close_netlink(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    def close(self) -> None:
        self.close_netlink()
        if self._dp is not None:
            self._dp.close()
