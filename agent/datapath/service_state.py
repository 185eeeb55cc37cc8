"""The service plan kept up to date one object at a time (pure).

``plan_services`` replans every Service on every change; ``ServiceState`` replans only the
Services a change touches: a Service change replans that Service, an EndpointSlice change
the Service(s) it is labelled for (before and after the change). What stays cluster-wide is
which Service wins a contested (ClusterIP, port, protocol): the first by namespace/name, as
in ``plan_services``, so a change also re-decides the keys its Service claimed or claims.
``prepare()`` plans ahead the touched Services whose objects are in (a first sync's list
pages), leaving less for ``plan()``. ``plan()`` always equals ``plan_services`` over the same
objects, whatever ``prepare`` did before it, and its ``changed`` names every key planned
since the plan before it (the property tests in tests/unit/datapath/test_planner.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from agent.datapath.services import (
    EntriesRequest,
    NodeSite,
    ServiceEntries,
    ServiceEntry,
    ServiceKey,
    ServicePlan,
    conflict_error,
    many_service_entries,
)
from agent.model.core import EndpointSlice, Service, ServiceType
from agent.model.frozen import EMPTY, FrozenMap

Name = tuple[str, str]  # (namespace, name)
_GENERATIONS = itertools.count(1)  # process-wide: no two plans share a generation
_NOTHING = ServiceEntries()


class ServiceState:
    def __init__(self) -> None:
        self.services: dict[Name, Service] = {}
        self.slices: dict[Name, EndpointSlice] = {}
        self._slices_of: dict[Name, dict[str, EndpointSlice]] = {}  # Service -> its slices
        self._wanted: dict[Name, ServiceEntries] = {}
        self._claims: dict[ServiceKey, set[Name]] = {}
        self._entries: dict[ServiceKey, ServiceEntry] = {}
        self._errors: dict[Name, tuple[str, ...]] = {}  # only Services with notes
        self._dirty: set[Name] = set()  # to plan
        self._touched: set[Name] = set()  # touched since the last prepare (or plan)
        self._changed: set[ServiceKey] = set()  # keys planned again since the last plan
        self._plan: ServicePlan | None = ServicePlan()
        self._generation = 0  # of the last plan made
        self.site: NodeSite | None = None  # this node, for NodePort/LoadBalancer entries

    def set_site(self, site: NodeSite | None) -> None:
        """This node's address and pod CIDR changed: its NodePort and LoadBalancer Services
        are planned again (``plan_services(..., site=)``)."""
        if site == self.site:
            return
        self.site = site
        self._plan = None  # the plan names its site
        for name, service in self.services.items():
            if service.spec.type is not ServiceType.CLUSTER_IP:
                self._touch(name)

    # -- changes (cheap; the work happens in plan()) ------------------------------------------
    def put_service(self, service: Service | None, name: Name) -> None:
        """Set (or with None, remove) the Service ``name``."""
        if service is None:
            self.services.pop(name, None)
        else:
            self.services[name] = service
        self._touch(name)

    def put_slice(self, endpoint_slice: EndpointSlice | None, name: Name) -> None:
        """Set (or with None, remove) the EndpointSlice ``name``."""
        old = self.slices.pop(name, None)
        if old is not None and old.service_name:
            owner = (name[0], old.service_name)
            self._slices_of[owner].pop(name[1], None)
            if not self._slices_of[owner]:
                del self._slices_of[owner]
            self._touch(owner)
        if endpoint_slice is not None:
            self.slices[name] = endpoint_slice
            if endpoint_slice.service_name:
                owner = (name[0], endpoint_slice.service_name)
                self._slices_of.setdefault(owner, {})[name[1]] = endpoint_slice
                self._touch(owner)

    def slices_of(self, name: Name) -> Iterable[EndpointSlice]:
        """The EndpointSlices labelled for the Service ``name``."""
        return self._slices_of.get(name, {}).values()

    def _touch(self, name: Name) -> None:
        self._dirty.add(name)
        self._touched.add(name)
        self._plan = None

    # -- planning -----------------------------------------------------------------------------
    def prepare(self) -> int:
        """Plan ahead the Services touched since the last ``prepare`` that have both their
        Service and an EndpointSlice, so that ``plan`` has less left to do (a first sync's
        list pages arrive over a second: each page's Services are planned while the next
        is on its way). ``plan`` is the same with or without it: a Service touched again
        is planned again. Returns how many Services it planned."""
        touched, self._touched = self._touched, set()
        ready = [n for n in touched if n in self._dirty and n in self.services
                 and n in self._slices_of]
        if ready:
            self._dirty.difference_update(ready)
            self._replan(ready)
        return len(ready)

    def plan(self) -> ServicePlan:
        """The plan (the same object until a change touches it)."""
        if self._plan is not None:
            return self._plan
        dirty, self._dirty = self._dirty, set()
        self._touched.clear()
        self._replan(dirty)
        changed, self._changed = self._changed, set()
        base, self._generation = self._generation, next(_GENERATIONS)
        self._plan = ServicePlan(
            entries=FrozenMap(self._entries),
            errors=tuple(e for name in sorted(self._errors) for e in self._errors[name]),
            site=self.site,
            generation=self._generation,
            base=base,
            changed=frozenset(changed),
        )
        return self._plan

    def _replan(self, names: Iterable[Name]) -> None:
        """Each named Service's entries and notes again, and the winners of the keys they
        claimed or claim; the keys are remembered as changed for the next plan."""
        wanted, claims = self._wanted, self._claims
        keys: set[ServiceKey] = set()  # keys whose winner may have changed
        requests: list[EntriesRequest] = []
        planned: list[Name] = []
        renote = set(names)
        for name in renote:
            before = wanted.pop(name, _NOTHING)
            for entry in before.entries:
                keys.add(entry.key)
                claimants = claims[entry.key]
                claimants.discard(name)
                if not claimants:
                    del claims[entry.key]
            service = self.services.get(name)
            if service is None:
                continue
            earlier = {e.key: e for e in before.entries} if before.entries else EMPTY
            requests.append((service, self._slices_of.get(name, {}).values(), earlier))
            planned.append(name)
        for name, now in zip(planned, many_service_entries(requests, self.site), strict=True):
            wanted[name] = now
            for entry in now.entries:
                key = entry.key
                keys.add(key)
                held = claims.get(key)
                if held is None:
                    claims[key] = {name}
                else:
                    held.add(name)
        for key in keys:
            held = claims.get(key)
            if held is None:
                self._entries.pop(key, None)
                continue
            winner = min(held)
            self._entries[key] = _first(wanted[winner].entries, key)
            renote |= held
        for name in renote:
            self._note(name)
        self._changed |= keys

    def _note(self, name: Name) -> None:
        """A Service's notes: its own, then one per port whose key it does not serve."""
        wanted = self._wanted.get(name)
        if wanted is not None and not wanted.errors and len(wanted.entries) == 1:
            if len(self._claims[wanted.entries[0].key]) == 1:  # the common case: no notes
                self._errors.pop(name, None)
                return
        service = self.services.get(name)
        notes = list(wanted.errors) if wanted else []
        if wanted is not None and service is not None:
            seen: set[ServiceKey] = set()
            for entry in wanted.entries:
                winner = min(self._claims[entry.key])
                if entry.key in seen or winner != name:
                    first = _first(self._wanted[winner].entries, entry.key)
                    notes.append(conflict_error(service, entry.key, first))
                seen.add(entry.key)
        if notes:
            self._errors[name] = tuple(notes)
        else:
            self._errors.pop(name, None)

    def reset(self, services: Iterable[Service], slices: Iterable[EndpointSlice]) -> None:
        """Start over from a full list (Maglev tables of unchanged backends are kept)."""
        fresh_services = {(s.metadata.namespace, s.metadata.name): s for s in services}
        fresh_slices = {(s.metadata.namespace, s.metadata.name): s for s in slices}
        for name in [n for n in self.slices if n not in fresh_slices]:
            self.put_slice(None, name)
        for name, endpoint_slice in fresh_slices.items():
            if self.slices.get(name) is not endpoint_slice:
                self.put_slice(endpoint_slice, name)
        for name in [n for n in self.services if n not in fresh_services]:
            self.put_service(None, name)
        for name, service in fresh_services.items():
            if self.services.get(name) is not service:
                self.put_service(service, name)


def _first(entries: tuple[ServiceEntry, ...], key: ServiceKey) -> ServiceEntry:
    if entries[0].key is key:  # mostly: a one-port Service's own key
        return entries[0]
    return next(e for e in entries if e.key == key)
