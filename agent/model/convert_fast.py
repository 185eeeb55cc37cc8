"""A fast path for the two bulky kinds of a first sync (Services, EndpointSlices): a list
page's JSON decodes in C (msgspec) straight into typed wire structs, and the builders here
make the model objects from them with the same checks and defaults as the general converter
(convert_core, convert_meta).

The general path stays the authority: a builder returns None for anything it does not take
on itself (an invalid value, a shape it does not cover: session affinity, say), and a page
whose JSON does not fit the wire types (a wrong type anywhere, a number with a fraction)
does not decode here at all. Both then go through ``convert.from_dict``, which names the
field that is wrong. So the fast path may refuse more than the general path, never less,
and what it builds equals what ``from_dict`` builds (tests/unit/model/test_convert_fast.py,
Hypothesis).

At 10,000 Services and 100,000 endpoints (JSON and models): 1.35 s CPU through dicts and the
Reader, 0.32 s here (bench/results/decode-2026-12-05.md).
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import msgspec
from msgspec import Struct

from agent.model.convert_core import SHARED_CONDITIONS, shared_conditions
from agent.model.core import (
    AddressType,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Service,
    ServicePort,
    ServiceSpec,
    ServiceType,
    SessionAffinity,
)
from agent.model.frozen import EMPTY, FrozenMap
from agent.model.jsonvalue import parse_timestamp
from agent.model.meta import ObjectMeta, OwnerReference, Protocol
from agent.model.validation import (
    SPECIAL_V4_FIRST_OCTETS,
    Check,
    dns1035_label,
    dns1123_label,
    dns1123_subdomain,
    endpoint_ipv4,
    endpoint_ipv6,
    iana_svc_name,
    ip_address,
    label_value,
    qualified_name,
)
from agent.model.wire import (
    EndpointSliceList,
    ServiceList,
    WireEndpoint,
    WireEndpointSlice,
    WireListMeta,
    WireMeta,
    WireObjectReference,
    WireOwnerReference,
    WireService,
    WireServicePort,
)

# --- checks, remembered for values that repeat across objects ----------------------------


def _ok(check: Check) -> Callable[[str], bool]:
    """``check`` as a predicate, remembered for the values a cluster repeats (node names,
    label keys, namespaces); bounded, so hostile input cannot grow it."""
    return lru_cache(maxsize=4096)(lambda value: check(value) is None)


_label_ok = _ok(dns1123_label)
_subdomain_ok = _ok(dns1123_subdomain)
_key_ok = _ok(qualified_name)
_svc_name_ok = _ok(iana_svc_name)
_timestamp = lru_cache(maxsize=1024)(parse_timestamp)
_inet_pton, _AF_INET = socket.inet_pton, socket.AF_INET
_intern = sys.intern
_PROTOCOLS = {p.value: p for p in Protocol}
_SERVICE_TYPES = {t.value: t for t in ServiceType}
_ADDRESS_TYPES = {t.value: t for t in AddressType}
_ADDRESS_CHECKS: dict[AddressType, Check] = {
    AddressType.IPV4: endpoint_ipv4,
    AddressType.IPV6: endpoint_ipv6,
    AddressType.FQDN: dns1123_subdomain,
}
MIN_PORT, MAX_PORT = 1, 65535


def _port_ok(value: int | None) -> bool:
    return value is None or MIN_PORT <= value <= MAX_PORT


def _labels(values: dict[str, str] | None) -> FrozenMap[str, str] | None:
    """A label map (keys qualified names, values label values), None when one is not."""
    if not values:
        return EMPTY
    for key, value in values.items():
        if not _key_ok(key) or (value and label_value(value) is not None):
            return None
    return FrozenMap(values)


def _meta(meta: WireMeta | None, name_check: Check) -> ObjectMeta | None:
    if meta is None or not meta.name or name_check(meta.name) is not None:
        return None
    namespace = meta.namespace
    if namespace is not None and not _label_ok(namespace):
        return None
    generation = meta.generation
    if generation is not None and generation < 0:
        return None
    created = None
    if meta.creation_timestamp is not None:
        created = _timestamp(meta.creation_timestamp)
        if created is None:
            return None
    labels = _labels(meta.labels)
    if labels is None:
        return None
    annotations = EMPTY
    if meta.annotations:
        if not all(_key_ok(k) for k in meta.annotations):
            return None
        annotations = FrozenMap(meta.annotations)
    owners = _owners(meta.owner_references)
    if owners is None:
        return None
    return ObjectMeta(
        name=meta.name,
        namespace=_intern(namespace) if namespace else "default",
        uid=meta.uid or "",
        resource_version=meta.resource_version or "",
        generation=generation,
        creation_timestamp=created,
        labels=labels,
        annotations=annotations,
        owner_references=owners,
    )


def _owners(refs: list[WireOwnerReference] | None) -> tuple[OwnerReference, ...] | None:
    if not refs:
        return ()
    owners = []
    for ref in refs:
        if ref.api_version is None or ref.kind is None or ref.name is None or not ref.uid:
            return None
        owners.append(OwnerReference(_intern(ref.api_version), _intern(ref.kind), ref.name,
                                     ref.uid, ref.controller, ref.block_owner_deletion))
    if len({o.uid for o in owners}) < len(owners) or sum(bool(o.controller) for o in owners) > 1:
        return None
    return tuple(owners)


# --- Service -----------------------------------------------------------------------------


def _cluster_ip_ok(value: str) -> bool:
    if value in ("", "None"):
        return True
    try:
        _inet_pton(_AF_INET, value)
        return True
    except OSError:
        return ip_address(value) is None


def _has_lb_status(status: object) -> bool:
    if not isinstance(status, dict):
        return status is not None
    lb = status.get("loadBalancer")
    return bool(lb.get("ingress")) if isinstance(lb, dict) else lb is not None


def build_service(wire: WireService) -> Service | None:
    """The model of a listed Service, or None: let ``from_dict`` read it."""
    metadata, spec = _meta(wire.metadata, dns1035_label), wire.spec
    if metadata is None or spec is None:
        return None
    if spec.sessionAffinityConfig is not None or spec.sessionAffinity not in (None, "None"):
        return None  # rare: the general path applies affinity's rules
    if (
        spec.externalTrafficPolicy is not None
        or spec.healthCheckNodePort is not None
        or spec.loadBalancerClass is not None
        or spec.loadBalancerIP is not None
        or _has_lb_status(wire.status)
    ):
        return None  # rare: the general path reads and checks the external fields
    service_type = ServiceType.CLUSTER_IP
    if spec.type is not None:
        found = _SERVICE_TYPES.get(spec.type)
        if found is None or found is ServiceType.EXTERNAL_NAME:  # rare: the general path
            return None
        service_type = found
    if service_type is not ServiceType.CLUSTER_IP:
        return None  # NodePort/LoadBalancer: the general path defaults externalTrafficPolicy
    cluster_ip = spec.cluster_ip
    if cluster_ip is not None and not _cluster_ip_ok(cluster_ip):
        return None
    headless = cluster_ip == "None"
    if headless and service_type is not ServiceType.CLUSTER_IP:
        return None
    wire_ports = spec.ports or ()
    if not wire_ports and not headless:
        return None
    ports = []
    for p in wire_ports:
        port = _service_port(p, service_type)
        if port is None or (port.name is None and len(wire_ports) > 1):
            return None
        ports.append(port)
    if len({(p.port, p.protocol) for p in ports}) < len(ports):
        return None
    names = [p.name for p in ports if p.name is not None]
    if len(set(names)) < len(names):
        return None
    selector = _labels(spec.selector)
    if selector is None:
        return None
    return Service(
        metadata=metadata,
        spec=ServiceSpec(
            type=service_type,
            cluster_ip=cluster_ip or None,
            ports=tuple(ports),
            selector=selector,
            session_affinity=SessionAffinity.NONE,
        ),
    )


def _service_port(p: WireServicePort, service_type: ServiceType) -> ServicePort | None:
    port, target = p.port, p.target_port
    if port is None or not MIN_PORT <= port <= MAX_PORT or not _port_ok(p.node_port):
        return None
    if p.node_port is not None and service_type is ServiceType.CLUSTER_IP:
        return None
    if target is None:
        target = port
    elif isinstance(target, str):
        if not _svc_name_ok(target):
            return None
    elif not MIN_PORT <= target <= MAX_PORT:
        return None
    if p.name is not None and not _label_ok(p.name):
        return None
    protocol = Protocol.TCP if p.protocol is None else _PROTOCOLS.get(p.protocol)
    if protocol is None:
        return None
    return ServicePort(port, target, p.name, protocol, p.app_protocol, p.node_port)


# --- EndpointSlice -----------------------------------------------------------------------


def build_endpoint_slice(wire: WireEndpointSlice) -> EndpointSlice | None:
    """The model of a listed EndpointSlice, or None: let ``from_dict`` read it."""
    metadata = _meta(wire.metadata, dns1123_subdomain)
    address_type = _ADDRESS_TYPES.get(wire.address_type) if wire.address_type else None
    if metadata is None or address_type is None:
        return None
    wire_ports = wire.ports or ()
    if len(wire_ports) > 100:
        return None
    ports = []
    for p in wire_ports:
        name = p.name or ""
        protocol = Protocol.TCP if p.protocol is None else _PROTOCOLS.get(p.protocol)
        if (name and not _label_ok(name)) or not _port_ok(p.port) or protocol is None:
            return None
        ports.append(EndpointPort(name, p.port, protocol, p.app_protocol))
    if len({p.name for p in ports}) < len(ports):
        return None
    endpoints = _endpoints(wire.endpoints or [], _ADDRESS_CHECKS[address_type])
    if endpoints is None:
        return None
    return EndpointSlice(metadata, address_type, endpoints, tuple(ports))


def _endpoints(wires: list[WireEndpoint], address_check: Check) -> tuple[Endpoint, ...] | None:
    """The endpoints, checked here, then made in C (msgspec.convert reads the wire
    structs' attributes: one call for the slice instead of a dataclass __init__ per
    endpoint). Each wire endpoint gets its shared conditions and interned strings first."""
    if len(wires) > 1000:
        return None
    unset = shared_conditions((None, None, None))
    known = SHARED_CONDITIONS.get
    ipv4 = address_check is endpoint_ipv4
    for e in wires:
        addresses = e.addresses
        if not addresses or len(addresses) > 100:
            return None
        for address in addresses:
            if ipv4:  # endpoint_ipv4's own fast path, without the call (100,000s of them)
                try:
                    if _inet_pton(_AF_INET, address)[0] not in SPECIAL_V4_FIRST_OCTETS:
                        continue
                except OSError:
                    return None
            if address_check(address) is not None:
                return None
        c = e.conditions
        if c is None:
            e.conditions = unset  # type: ignore[assignment]
        else:
            key = (c.ready, c.serving, c.terminating)
            e.conditions = known(key) or shared_conditions(key)  # type: ignore[assignment]
        node, hostname = e.node_name, e.hostname
        if node is not None:
            if not _subdomain_ok(node):
                return None
            e.node_name = _intern(node)
        if hostname is not None and not _label_ok(hostname):
            return None
        if e.zone is not None:
            e.zone = _intern(e.zone)
        ref = e.target_ref
        if ref is not None and not _reference_ok(ref):
            return None
    return msgspec.convert(wires, _ENDPOINTS, from_attributes=True)  # type: ignore[no-any-return]


_ENDPOINTS = tuple[Endpoint, ...]


def _reference_ok(ref: WireObjectReference) -> bool:
    """Whether a targetRef is valid; interns its kind and namespace (a few values)."""
    if ref.namespace is not None:
        if not _label_ok(ref.namespace):
            return False
        ref.namespace = _intern(ref.namespace)
    if ref.kind is not None:
        ref.kind = _intern(ref.kind)
    return True


# --- pages -------------------------------------------------------------------------------

Builder = Callable[[Any], Any]
_PAGES: dict[str, tuple[msgspec.json.Decoder[Any], Builder]] = {
    "Service": (msgspec.json.Decoder(ServiceList), build_service),
    "EndpointSlice": (msgspec.json.Decoder(EndpointSliceList), build_endpoint_slice),
}


class Page(Struct):
    """A decoded list page: a model per item, or None where the general path must read
    the item (at the same index of the page's plain JSON decode)."""

    models: list[Any]
    revision: Any
    more: Any


def decode_page(kind: str, raw: bytes) -> Page | None:
    """A list page of ``kind`` through the fast path; None when the kind has none or the
    page does not fit the wire types (the general path then decodes all of it)."""
    entry = _PAGES.get(kind)
    if entry is None:
        return None
    decoder, build = entry
    try:
        body = decoder.decode(raw)
    except msgspec.MsgspecError:
        return None
    meta = body.metadata or WireListMeta()
    return Page([build(item) for item in body.items or ()], meta.resourceVersion, meta.continue_)
