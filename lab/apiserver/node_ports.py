"""NodePort allocation, as the Kubernetes API server does it (pkg/registry/core/service).

Every port of a NodePort or LoadBalancer Service gets a ``nodePort`` from the range
(kube-apiserver's ``--service-node-port-range``, the API server's flag of the same name here;
default 30000-32767), and a LoadBalancer Service with ``externalTrafficPolicy: Local`` also gets a
``healthCheckNodePort``. Requested ports are checked for the range and against every other
Service's ports, with the API server's messages. A port is held by the Service that has it
in its stored spec, so a delete or a type change releases it with no bookkeeping of its own.

On update (upstream's ``patchAllocatedValues``) a port that omits ``nodePort`` keeps the
one its same-named port had; on a change to a type without node ports (upstream's
``dropTypeDependentFields``) the node ports, health-check port, traffic policy and
load-balancer class the writer sent back unchanged are cleared, so a read-modify-write of
``type`` alone succeeds. Taken ports are found by one scan of the Services' ports in SQLite,
made only for a write that holds a NodePort or LoadBalancer Service, and kept in step
after it from the store's event log (``_HeldIndex``): a scan per write made creating N
NodePort Services cost O(N²) (the 2,500th took 14 ms of JSON decoding; 10,000 took well over
ten minutes).
"""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from lab.store import Expired, Store

NODE_PORT_RANGE = range(30000, 32768)  # kube-apiserver --service-node-port-range default
# This API server's range: a process-wide flag, set once at start (configure_range), as
# kube-apiserver's is.
_range = NODE_PORT_RANGE
_EXTERNAL_TYPES = ("NodePort", "LoadBalancer")


def parse_port_range(text: str) -> range:
    """kube-apiserver's forms (utilnet.ParsePortRange): ``LOW-HIGH``, ``BASE+SIZE`` or one
    port; ValueError with the reason otherwise."""
    raw = text.strip()
    try:
        if "-" in raw:
            low_text, _, high_text = raw.partition("-")
            low, high = int(low_text), int(high_text)
        elif "+" in raw:
            base_text, _, size_text = raw.partition("+")
            low = int(base_text)
            high = low + int(size_text)
        else:
            low = high = int(raw)
    except ValueError:
        raise ValueError(f"invalid port range {text!r}: expected LOW-HIGH, BASE+SIZE or PORT"
                         ) from None
    if not 1 <= low <= high <= 65535:
        raise ValueError(f"invalid port range {text!r}: ports must be 1-65535, low <= high")
    return range(low, high + 1)


def configure_range(ports: range) -> None:
    """Set the range this API server hands node ports from (its --service-node-port-range)."""
    global _range
    _range = ports


def port_range() -> range:
    return _range


def describe_range(ports: range) -> str:
    return f"{ports.start}-{ports.stop - 1}"


def needs_node_ports(spec: dict[str, Any]) -> bool:
    return spec.get("type") in _EXTERNAL_TYPES


def needs_health_check_port(spec: dict[str, Any]) -> bool:
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def drop_type_dependent_fields(doc: dict[str, Any], stored: dict[str, Any] | None) -> None:
    """Before conversion: a Service moved to a type (or policy) that no longer uses a field
    sheds the value it carried over unchanged from its stored self (a changed value stays,
    and conversion refuses it)."""
    spec, old = doc.get("spec"), (stored or {}).get("spec")
    if not isinstance(spec, dict) or not isinstance(old, dict):
        return
    ports = spec.get("ports")
    if not needs_node_ports(spec) and needs_node_ports(old) and isinstance(ports, list):
        if _same_node_ports(ports, old.get("ports") or []):
            for port in ports:
                if isinstance(port, dict):
                    port.pop("nodePort", None)
    unused = {
        "externalTrafficPolicy": not needs_node_ports(spec),
        "loadBalancerClass": spec.get("type") != "LoadBalancer",
        "healthCheckNodePort": not needs_health_check_port(spec),
    }
    for field, drop in unused.items():
        if drop and field in spec and spec[field] == old.get(field):
            del spec[field]


def _same_node_ports(ports: list[Any], old_ports: list[Any]) -> bool:
    def node_port(p: Any) -> Any:
        return p.get("nodePort") if isinstance(p, dict) else None

    if len(ports) != len(old_ports):
        return all(node_port(p) is None for p in ports)
    return all(node_port(p) in (None, node_port(o)) for p, o in zip(ports, old_ports, strict=True))


class _TakenPorts:
    """Node ports held by other Services (one scan, on first need) and by this batch."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._stored: dict[int, set[tuple[str, str]]] | None = None
        self.assigned: dict[int, tuple[str, str]] = {}

    def holders(self, port: int) -> set[tuple[str, str]]:
        if self._stored is None:
            self._stored = _INDEX.current(self._store)
        found = set(self._stored.get(port, ()))
        if port in self.assigned:
            found.add(self.assigned[port])
        return found

    def free_for(self, port: int, key: tuple[str, str]) -> bool:
        return not (self.holders(port) - {key})


Key = tuple[str, str]


class _HeldIndex:
    """Node ports held by stored Services, for one store: one scan, then the Service events
    since the revision it reflects (a rescan if they were compacted away). Shared by the API
    server's request threads, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._store: weakref.ref[Store] | None = None
        self._revision = -1
        self._by_key: dict[Key, set[int]] = {}
        self._held: dict[int, set[Key]] = {}

    def current(self, store: Store) -> dict[int, set[Key]]:
        """Port -> holders as of now (the caller must not change it)."""
        with self._lock:
            revision = store.revision()
            if self._store is None or self._store() is not store:
                self._rebuild(store, revision)
            elif revision != self._revision:
                try:
                    self._catch_up(store, revision)
                except Expired:
                    self._rebuild(store, revision)
            return self._held

    def _rebuild(self, store: Store, revision: int) -> None:
        self._store = weakref.ref(store)
        self._held = _stored_node_ports(store)
        self._by_key = {}
        for port, keys in self._held.items():
            for key in keys:
                self._by_key.setdefault(key, set()).add(port)
        self._revision = revision

    def _catch_up(self, store: Store, revision: int) -> None:
        seen = self._revision
        while events := store.events_since(seen, ("Service",)):
            for event in events:
                key = (event.namespace, event.name)
                alive = event.type != "DELETED"
                self._set(key, _ports_of(event.object) if alive else set())
            seen = events[-1].revision
        self._revision = max(seen, revision)

    def _set(self, key: Key, ports: set[int]) -> None:
        for port in self._by_key.pop(key, set()):
            holders = self._held.get(port)
            if holders is not None:
                holders.discard(key)
                if not holders:
                    del self._held[port]
        if ports:
            self._by_key[key] = ports
            for port in ports:
                self._held.setdefault(port, set()).add(key)


def _ports_of(service: dict[str, Any]) -> set[int]:
    spec = service.get("spec") or {}
    found = {p["nodePort"] for p in spec.get("ports") or ()
             if isinstance(p, dict) and isinstance(p.get("nodePort"), int)}
    if isinstance(spec.get("healthCheckNodePort"), int):
        found.add(spec["healthCheckNodePort"])
    return found


_INDEX = _HeldIndex()


def _stored_node_ports(store: Store) -> dict[int, set[tuple[str, str]]]:
    held: dict[int, set[tuple[str, str]]] = {}
    for ns, name, ports in store.field_values("Service", "$.spec.ports"):
        for port in json.loads(ports) if isinstance(ports, str) else ():
            if isinstance(port, dict) and isinstance(port.get("nodePort"), int):
                held.setdefault(port["nodePort"], set()).add((ns, name))
    for ns, name, port in store.field_values("Service", "$.spec.healthCheckNodePort"):
        if isinstance(port, int):
            held.setdefault(port, set()).add((ns, name))
    return held


def assign_node_ports(store: Store, objs: Sequence[dict[str, Any]], describe: Any) -> list[str]:
    """Fill and check ``nodePort``/``healthCheckNodePort`` of each admitted Service in place;
    returns the errors (none: every Service in the batch has its ports)."""
    services = [o for o in objs if o["kind"] == "Service" and needs_node_ports(o["spec"])]
    if not services:
        return []
    taken = _TakenPorts(store)
    errors: list[str] = []
    for obj in services:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        stored = store.get("Service", *key)
        old = (stored or {}).get("spec") or {}
        errors += _assign_one(obj, old, key, taken, describe)
    return errors


def _assign_one(
    obj: dict[str, Any], old: dict[str, Any], key: tuple[str, str], taken: _TakenPorts,
    describe: Any,
) -> list[str]:
    spec = obj["spec"]
    errors: list[str] = []
    ports: list[dict[str, Any]] = spec["ports"]
    kept = _kept_ports(spec, old)
    seen: set[tuple[int, str]] = set()
    for i, port in enumerate(ports):
        field = f"spec.ports[{i}].nodePort"
        wanted = port.get("nodePort") or kept.get(port.get("name") or "")
        if wanted is None:
            continue
        # One number may serve a TCP and a UDP port of the same Service, as upstream allows.
        protocol = port.get("protocol", "TCP")
        if (wanted, protocol) in seen:
            problem = f"Duplicate value: {wanted}"
        else:
            problem = _check(wanted, key, taken, own=())
        if problem:
            errors.append(f"{describe(obj)}: {field}: {problem}")
            continue
        seen.add((wanted, protocol))
        port["nodePort"] = wanted
        taken.assigned[wanted] = key
    for i, port in enumerate(ports):  # then the unrequested ones, around those requested
        if port.get("nodePort") is None:
            port["nodePort"] = _allocate(f"{key[0]}/{key[1]}/{i}", key, taken)
            taken.assigned[port["nodePort"]] = key
    if needs_health_check_port(spec):
        wanted = spec.get("healthCheckNodePort")
        if wanted is None and needs_health_check_port(old):
            wanted = old.get("healthCheckNodePort")
        own = {p["nodePort"] for p in ports}
        if wanted is None:
            wanted = _allocate(f"{key[0]}/{key[1]}/hc", key, taken, own)
        elif problem := _check(wanted, key, taken, own):
            errors.append(f"{describe(obj)}: spec.healthCheckNodePort: {problem}")
            return errors
        spec["healthCheckNodePort"] = wanted
        taken.assigned[wanted] = key
    return errors


def _kept_ports(spec: dict[str, Any], old: dict[str, Any]) -> dict[str, int]:
    """Upstream's patchAllocatedValues: by port name, the stored node ports that no port of
    the new spec names explicitly."""
    if not needs_node_ports(old):
        return {}
    requested = {p.get("nodePort") for p in spec["ports"]}
    return {
        p.get("name") or "": p["nodePort"]
        for p in old.get("ports") or []
        if isinstance(p.get("nodePort"), int) and p["nodePort"] not in requested
    }


def _check(port: int, key: tuple[str, str], taken: _TakenPorts, own: Iterable[int]) -> str:
    if port not in _range:
        return (
            f"Invalid value: {port}: provided port is not in the valid range. The range of "
            f"valid ports is {describe_range(_range)}"
        )
    if port in set(own) or not taken.free_for(port, key):
        return f"Invalid value: {port}: provided port is already allocated"
    return ""


def _allocate(
    seed: str, key: tuple[str, str], taken: _TakenPorts, own: Iterable[int] = ()
) -> int:
    """From a hash of the name, so a re-created lab gives a Service the same ports."""
    mine = set(own)
    size = len(_range)
    start = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:4], "big") % size
    for step in range(size):
        port = _range.start + (start + step) % size
        if port not in mine and not taken.holders(port):
            return port
    raise RuntimeError(f"node port range {describe_range(_range)} is full")
