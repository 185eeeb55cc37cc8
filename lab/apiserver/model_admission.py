"""What the Kubernetes API server does before storing: validate, default, admit.

Every write from `tulle apply` passes through `admit`: the one converter validates and
defaults each object, namespaces must exist, and Services get a ClusterIP. A batch is
all-or-nothing: one invalid object and nothing is stored.

`status` is a subresource: admission drops whatever status a user sends (the store keeps the
stored one on update and starts without one on create), so only controllers, the kubelet and
node agents write it, through ``Store.update_status``. Nodes are registered by the lab's
kubelet (``registrar``, the lab API server's node registrar identity): apply edits their
labels and annotations, never creates one or moves its pod CIDR (which decides the node's
waypoint address and node identity). NodePort and LoadBalancer Services get their node ports
(lab.apiserver.node_ports). Gateway addresses count as
allocated ClusterIPs. Objects over the 1.5 MiB limit are refused by name before they are
converted.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from typing import Any

from agent.model.convert import ConversionError, from_dict, to_dict
from agent.model.kinds import resolve_kind
from lab.apiserver.node_ports import assign_node_ports, drop_type_dependent_fields
from lab.ipam import allocate_cluster_ip
from lab.store import ObjectTooLarge, Store
from lab.store.objects import MAX_OBJECT_BYTES
from lab.topology import SERVICE_CIDR


class AdmissionError(ValueError):
    def __init__(self, errors: Sequence[str]):
        super().__init__("\n".join(errors))
        self.errors = list(errors)


def admit(
    store: Store, docs: Sequence[tuple[str, dict[str, Any]]], *, registrar: bool = False
) -> list[dict[str, Any]]:
    """``registrar``: the writer is the lab's kubelet, which registers Nodes."""
    errors: list[str] = []
    admitted: list[dict[str, Any]] = []
    for source, doc in docs:
        user_part = {k: v for k, v in doc.items() if k != "status"}
        try:
            size_problem = _size_problem(user_part)
            if size_problem:
                errors.append(f"{source}: {size_problem}")
                continue
            if user_part.get("kind") == "Service":
                drop_type_dependent_fields(user_part, _stored(store, user_part))
            admitted.append(to_dict(from_dict(user_part)))
        except ConversionError as err:
            errors.append(f"{source}: {err}")
    errors += _check_namespaces(store, admitted)
    errors += _guard_nodes(store, admitted, registrar)
    if not errors:
        errors += _assign_cluster_ips(store, admitted)
        errors += assign_node_ports(store, admitted, describe)
    if errors:
        raise AdmissionError(errors)
    return admitted


_NODE_CIDR_FIELDS = ("podCIDR", "podCIDRs")


def _stored(store: Store, doc: dict[str, Any]) -> dict[str, Any] | None:
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        return None  # conversion names the problem
    namespace = meta.get("namespace")
    # The converter's default namespace, so a manifest without one finds its stored self.
    return store.get("Service", namespace if isinstance(namespace, str) else "default",
                     meta["name"])


def _guard_nodes(
    store: Store, objs: Sequence[dict[str, Any]], registrar: bool = False
) -> list[str]:
    """Nodes are registered by the lab, as kubelets register themselves; apply may edit
    their labels and annotations but not create one nor move its pod CIDR, which decides
    the node's waypoint address (where its L7 connections go, which address has waypoint
    identity) and gives its first address node (host or remote-node) identity. An
    omitted pod CIDR keeps the stored one (Kubernetes: podCIDR may only be set once)."""
    errors = []
    for obj in objs:
        if obj["kind"] != "Node":
            continue
        stored = store.get("Node", "", obj["metadata"]["name"])
        if stored is None and registrar:
            continue
        if stored is None:
            errors.append(
                f"{describe(obj)}: Nodes are registered by the lab (tulle lab up), not "
                "created by apply"
            )
            continue
        spec = obj.setdefault("spec", {})
        owned = stored.get("spec") or {}
        for field in _NODE_CIDR_FIELDS:
            if field in spec and spec[field] != owned.get(field):
                errors.append(
                    f"{describe(obj)}: spec.{field}: field is immutable (is {owned.get(field)})"
                )
            elif field in owned:
                spec[field] = owned[field]
    return errors


def _size_problem(doc: dict[str, Any]) -> str | None:
    """Refuse, by name, an object over the store's size limit before converting it."""
    try:
        size = len(json.dumps(doc, separators=(",", ":")).encode())
    except (TypeError, ValueError) as err:
        return f"{describe(doc)}: not representable as JSON: {err}"
    if size > MAX_OBJECT_BYTES:
        return str(ObjectTooLarge(describe(doc), size, MAX_OBJECT_BYTES))
    return None


def describe(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    ns = meta.get("namespace")
    return f"{obj.get('kind')} {ns + '/' if ns else ''}{meta.get('name')}"


def _check_namespaces(store: Store, objs: Sequence[dict[str, Any]]) -> list[str]:
    # One lookup per namespace named, not a list of every Namespace per write.
    known = {o["metadata"]["name"] for o in objs if o["kind"] == "Namespace"}
    present: dict[str, bool] = {}
    errors = []
    for obj in objs:
        ns = obj["metadata"].get("namespace", "")
        if not resolve_kind(obj["kind"]).namespaced or ns in known:
            continue
        if ns not in present:
            present[ns] = store.get("Namespace", "", ns) is not None
        if not present[ns]:
            errors.append(
                f"{describe(obj)}: metadata.namespace: namespace {ns!r} not found "
                f"(create it first, or add a Namespace to the same apply)"
            )
    return errors


class _TakenIPs:
    """Service addresses in use, looked up per address: the store's ClusterIP index (one
    B-tree search, whatever the number of Services), Gateway addresses (the Gateway
    controller allocates them from the same range: a Service on one would share the VIP with
    the Gateway's listeners), and addresses assigned earlier in the same batch."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._gateways: set[Any] | None = None
        self.assigned: dict[Any, tuple[str, str]] = {}

    def holders(self, ip: Any) -> set[tuple[str, str]]:
        """The Services (namespace, name) holding ``ip``; a Gateway as ("", "")."""
        found = set(self._store.holders("Service", CLUSTER_IP, str(ip)))
        if ip in self.assigned:
            found.add(self.assigned[ip])
        if self._gateways is None:
            self._gateways = _gateway_addresses(self._store)
        if ip in self._gateways:
            found.add(("", ""))
        return found

    def __contains__(self, ip: object) -> bool:
        return bool(self.holders(ip))


CLUSTER_IP = "$.spec.clusterIP"


def _assign_cluster_ips(store: Store, objs: Sequence[dict[str, Any]]) -> list[str]:
    taken = _TakenIPs(store)
    errors = []
    for obj in objs:
        if obj["kind"] != "Service":
            continue
        spec = obj.setdefault("spec", {})
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        stored = store.get("Service", *key)
        current = ((stored or {}).get("spec") or {}).get("clusterIP") or None
        wanted = spec.get("clusterIP")
        if wanted == "None" or spec.get("type") == "ExternalName":  # no ClusterIP to hold
            continue
        if wanted:
            if current and current != wanted:
                errors.append(f"{describe(obj)}: spec.clusterIP: field is immutable (is {current})")
                continue
            ip = ipaddress.ip_address(wanted)
            if ip not in SERVICE_CIDR:
                errors.append(
                    f"{describe(obj)}: spec.clusterIP: {wanted} is not in the service range "
                    f"{SERVICE_CIDR}"
                )
                continue
            if taken.holders(ip) - {key}:
                errors.append(f"{describe(obj)}: spec.clusterIP: {wanted} is already allocated")
                continue
        else:
            ip = ipaddress.ip_address(current) if current else allocate_cluster_ip(key, taken)
        taken.assigned[ip] = key
        spec["clusterIP"] = str(ip)
        spec["clusterIPs"] = [str(ip)]
    return errors


def _gateway_addresses(store: Store) -> set[Any]:
    """Gateways' addresses and IngressClasses' (announced in their Ingresses' status)."""
    found: set[Any] = set()
    texts = [
        address.get("value", "")
        for gateway in store.list("Gateway")[0]
        for address in (gateway.get("status") or {}).get("addresses") or []
    ]
    texts += [
        lb.get("ip") or ""
        for ingress in store.list("Ingress")[0]
        for lb in ((ingress.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    ]
    for text in texts:
        try:
            found.add(ipaddress.ip_address(text))
        except ValueError:
            continue  # a hostname address: nothing to collide with
    return found
