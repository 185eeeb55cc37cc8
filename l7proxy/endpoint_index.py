"""The waypoint's endpoint map kept up to date one object at a time (pure).

``(namespace, service, service port) -> ready backends``, by the datapath's own rules: the
plan comes from ``ServiceState`` (the agent's incremental planner, held equal to
``plan_services``), so an EndpointSlice change replans its Service alone. Replanning every
Service on every change cost the waypoint ~1.4 s of CPU per change at 10,000 Services.

A headless Service (``clusterIP: None``, with a selector or with EndpointSlices managed by
hand) has no entry in that plan (the kernel has no VIP to balance), yet as an HTTPRoute
backend the waypoint dials its endpoints itself: they are picked by the same rules
(``direct_backends``: ready, else serving terminating; IPv4 slices only) and kept beside.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from agent.datapath.service_state import ServiceState
from agent.datapath.services import ServiceEntry, ServiceKey, direct_backends
from agent.model.core import EndpointSlice, Service

Address = tuple[str, int]
PortKey = tuple[str, str, int]  # (namespace, service, service port)
Name = tuple[str, str]


class EndpointIndex:
    def __init__(self) -> None:
        self.state = ServiceState()
        self._generation = -1  # of the plan the map was last brought up to
        self._map: dict[PortKey, tuple[Address, ...]] = {}
        # A Service may serve one port number over two protocols: one PortKey, two keys. The
        # lowest key (TCP before UDP: the waypoint proxies TCP) names the map's value.
        self._keys_of: dict[PortKey, dict[ServiceKey, tuple[Address, ...]]] = {}
        self._port_of: dict[ServiceKey, PortKey] = {}
        self._headless: dict[Name, tuple[PortKey, ...]] = {}  # the map's keys per Service
        self._stale: set[Name] = set()  # Services whose headless ports to look at again

    def put_service(self, service: Service | None, name: Name) -> None:
        self.state.put_service(service, name)
        self._stale.add(name)

    def put_slice(self, endpoint_slice: EndpointSlice | None, name: Name) -> None:
        old = self.state.slices.get(name)
        self.state.put_slice(endpoint_slice, name)
        for owner in (old, endpoint_slice):
            if owner is not None and owner.service_name:
                self._stale.add((name[0], owner.service_name))

    def reset(self, services: Iterable[Service], slices: Iterable[EndpointSlice]) -> None:
        self.state.reset(services, slices)
        self._stale |= set(self._headless) | set(self.state.services)

    def endpoints(self) -> Mapping[PortKey, tuple[Address, ...]]:
        """The current map (read-only: the next change updates it in place)."""
        plan = self.state.plan()
        if plan.generation != self._generation:
            incremental = plan.base == self._generation and plan.base != 0
            keys = plan.changed if incremental else set(self._port_of) | set(plan.entries)
            for key in keys:
                self._set(key, plan.entries.get(key))
            self._generation = plan.generation
        if self._stale:  # after the plan: a Service that stopped being headless keeps its keys
            self._replan_headless()
        return self._map

    def _replan_headless(self) -> None:
        stale, self._stale = self._stale, set()
        for name in stale:
            for held in self._headless.pop(name, ()):
                if held not in self._keys_of:  # else the plan's (now a ClusterIP Service)
                    self._map.pop(held, None)
            service = self.state.services.get(name)
            if service is None or not service.spec.headless:
                continue
            ports = []
            for port, backends in direct_backends(service, self.state.slices_of(name)):
                if port.protocol != "TCP":  # the waypoint proxies TCP
                    continue
                key = (name[0], name[1], port.port)
                self._map[key] = tuple((str(b.ip), b.port) for b in backends)
                ports.append(key)
            self._headless[name] = tuple(ports)

    def _set(self, key: ServiceKey, entry: ServiceEntry | None) -> None:
        old = self._port_of.pop(key, None)
        if old is not None:
            self._drop(old, key)
        if entry is None:
            return
        port = (entry.namespace, entry.name, key.port)
        self._port_of[key] = port
        backends = tuple((str(b.ip), b.port) for b in entry.backends)
        self._keys_of.setdefault(port, {})[key] = backends
        self._refresh(port)

    def _drop(self, port: PortKey, key: ServiceKey) -> None:
        held = self._keys_of.get(port)
        if held is None:
            return
        held.pop(key, None)
        if held:
            self._refresh(port)
        else:
            del self._keys_of[port]
            self._map.pop(port, None)

    def _refresh(self, port: PortKey) -> None:
        held = self._keys_of[port]
        self._map[port] = held[min(held, key=_order)]


def _order(key: ServiceKey) -> tuple[int, int, int]:
    return int(key.vip), key.port, key.protocol
