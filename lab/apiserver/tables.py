"""``Table`` responses: the columns ``kubectl get`` prints, computed server-side as on a
cluster (priority 1 columns show with ``-o wide``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from lab.apiserver import event_columns, jsonpath, pod_columns
from lab.apiserver.routing import Target

Obj = Mapping[str, Any]
Column = tuple[str, str, int, Callable[[Obj], Any]]  # name, type, priority, cell


def human_duration(seconds: float) -> str:
    """Kubernetes' ``duration.HumanDuration``: "45s", "3m12s", "5h", "12d"..."""
    s = int(seconds)
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    years, days = hours // (24 * 365), (hours // 24) % 365
    return f"{years}y{days}d" if years < 8 and days else f"{years}y"


def age(obj: Obj) -> str:
    stamp = obj.get("metadata", {}).get("creationTimestamp")
    if not stamp:
        return "<unknown>"
    then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return human_duration((datetime.now(UTC) - then).total_seconds())


def _get(obj: Obj, path: str, default: Any = None) -> Any:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return default if value is None else value


def _name(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def _pod_ready(obj: Obj) -> str:
    statuses = _get(obj, "status.containerStatuses", [])
    total = len(_get(obj, "spec.containers", [])) or len(statuses)
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _ports(obj: Obj) -> str:
    out = []
    for p in _get(obj, "spec.ports", []):
        node = f":{p['nodePort']}" if p.get("nodePort") else ""
        out.append(f"{p.get('port')}{node}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _selector(obj: Obj, path: str = "spec.selector") -> str:
    sel = _get(obj, path, {})
    labels = sel.get("matchLabels", sel) if isinstance(sel, Mapping) else {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if isinstance(v, str)) or "<none>"


def _condition(obj: Obj, type_: str) -> str:
    for c in _get(obj, "status.conditions", []):
        if c.get("type") == type_:
            return str(c.get("status", "Unknown"))
    return "Unknown"


def _node_status(obj: Obj) -> str:
    ready = _condition(obj, "Ready")
    text = "Ready" if ready == "True" else "NotReady"
    return f"{text},SchedulingDisabled" if _get(obj, "spec.unschedulable") else text


def _node_ip(obj: Obj, type_: str) -> str:
    for a in _get(obj, "status.addresses", []):
        if a.get("type") == type_:
            return str(a.get("address"))
    return "<none>"


def _containers(path: str, field: str) -> Callable[[Obj], str]:
    return lambda o: ",".join(str(c.get(field, "")) for c in _get(o, path, []))


def _data(obj: Obj) -> int:
    return len(obj.get("data") or {}) + len(obj.get("binaryData") or obj.get("stringData") or {})


def _names(path: str) -> Callable[[Obj], str]:
    return lambda o: ",".join(str(x) for x in _get(o, path, [])) or "*"


_AGE: Column = ("Age", "string", 0, age)
_NAME: Column = ("Name", "string", 0, _name)

_COLUMNS: dict[str, list[Column]] = {
    "Pod": [
        _NAME,
        ("Ready", "string", 0, _pod_ready),
        ("Status", "string", 0, pod_columns.pod_status_reason),
        ("Restarts", "integer", 0, pod_columns.pod_restarts),
        _AGE,
        ("IP", "string", 1, lambda o: _get(o, "status.podIP", "<none>")),
        ("Node", "string", 1, lambda o: _get(o, "spec.nodeName", "<none>")),
        ("Nominated Node", "string", 1, lambda o: _get(o, "status.nominatedNodeName", "<none>")),
        ("Readiness Gates", "string", 1, lambda o: "<none>"),
    ],
    "Service": [
        _NAME,
        ("Type", "string", 0, lambda o: _get(o, "spec.type", "ClusterIP")),
        ("Cluster-IP", "string", 0, lambda o: _get(o, "spec.clusterIP", "<none>")),
        (
            "External-IP",
            "string",
            0,
            lambda o: ",".join(_get(o, "spec.externalIPs", [])) or "<none>",
        ),
        ("Port(s)", "string", 0, _ports),
        _AGE,
        ("Selector", "string", 1, _selector),
    ],
    "Deployment": [
        _NAME,
        (
            "Ready",
            "string",
            0,
            lambda o: f"{_get(o, 'status.readyReplicas', 0)}/{_get(o, 'spec.replicas', 1)}",
        ),
        ("Up-to-date", "integer", 0, lambda o: _get(o, "status.updatedReplicas", 0)),
        ("Available", "integer", 0, lambda o: _get(o, "status.availableReplicas", 0)),
        _AGE,
        ("Containers", "string", 1, _containers("spec.template.spec.containers", "name")),
        ("Images", "string", 1, _containers("spec.template.spec.containers", "image")),
        ("Selector", "string", 1, _selector),
    ],
    # kubectl's DaemonSet columns (kubernetes pkg/printers/internalversion)
    "DaemonSet": [
        _NAME,
        ("Desired", "integer", 0, lambda o: _get(o, "status.desiredNumberScheduled", 0)),
        ("Current", "integer", 0, lambda o: _get(o, "status.currentNumberScheduled", 0)),
        ("Ready", "integer", 0, lambda o: _get(o, "status.numberReady", 0)),
        ("Up-to-date", "integer", 0, lambda o: _get(o, "status.updatedNumberScheduled", 0)),
        ("Available", "integer", 0, lambda o: _get(o, "status.numberAvailable", 0)),
        ("Node Selector", "string", 0, lambda o: _selector(o, "spec.template.spec.nodeSelector")),
        _AGE,
        ("Containers", "string", 1, _containers("spec.template.spec.containers", "name")),
        ("Images", "string", 1, _containers("spec.template.spec.containers", "image")),
        ("Selector", "string", 1, _selector),
    ],
    "Namespace": [
        _NAME,
        ("Status", "string", 0, lambda o: _get(o, "status.phase", "Active")),
        _AGE,
    ],
    "Node": [
        _NAME,
        ("Status", "string", 0, _node_status),
        ("Roles", "string", 0, lambda o: "<none>"),
        _AGE,
        ("Version", "string", 0, lambda o: _get(o, "status.nodeInfo.kubeletVersion", "")),
        ("Internal-IP", "string", 1, lambda o: _node_ip(o, "InternalIP")),
        ("External-IP", "string", 1, lambda o: _node_ip(o, "ExternalIP")),
    ],
    "ConfigMap": [_NAME, ("Data", "integer", 0, _data), _AGE],
    "Secret": [
        _NAME,
        ("Type", "string", 0, lambda o: o.get("type", "Opaque")),
        ("Data", "integer", 0, _data),
        _AGE,
    ],
    "ServiceAccount": [
        _NAME,
        ("Secrets", "integer", 0, lambda o: len(o.get("secrets") or [])),
        _AGE,
    ],
    "EndpointSlice": [
        _NAME,
        ("AddressType", "string", 0, lambda o: o.get("addressType", "")),
        (
            "Ports",
            "string",
            0,
            lambda o: ",".join(str(p.get("port")) for p in o.get("ports") or []) or "<unset>",
        ),
        (
            "Endpoints",
            "string",
            0,
            lambda o: (
                ",".join(a for e in o.get("endpoints") or [] for a in e.get("addresses", []))
                or "<unset>"
            ),
        ),
        _AGE,
    ],
    "NetworkPolicy": [
        _NAME,
        ("Pod-Selector", "string", 0, lambda o: _selector(o, "spec.podSelector")),
        _AGE,
    ],
    # kubectl's columns for Ingress and IngressClass (kubernetes pkg/printers/internalversion)
    "Ingress": [
        _NAME,
        ("Class", "string", 0, lambda o: _get(o, "spec.ingressClassName", None) or "<none>"),
        (
            "Hosts",
            "string",
            0,
            lambda o: ",".join(r.get("host") or "*" for r in _get(o, "spec.rules", [])) or "*",
        ),
        (
            "Address",
            "string",
            0,
            lambda o: ",".join(
                i.get("ip") or i.get("hostname") or ""
                for i in _get(o, "status.loadBalancer.ingress", [])
            ),
        ),
        ("Ports", "string", 0, lambda o: "80, 443" if _get(o, "spec.tls", []) else "80"),
        _AGE,
    ],
    "IngressClass": [
        _NAME,
        ("Controller", "string", 0, lambda o: _get(o, "spec.controller", "")),
        ("Parameters", "string", 0, lambda o: "<none>" if not _get(o, "spec.parameters") else
         f"{_get(o, 'spec.parameters.kind', '')}/{_get(o, 'spec.parameters.name', '')}"),
        _AGE,
    ],
    "GatewayClass": [
        _NAME,
        ("Controller", "string", 0, lambda o: _get(o, "spec.controllerName", "")),
        ("Accepted", "string", 0, lambda o: _condition(o, "Accepted")),
        _AGE,
    ],
    "Gateway": [
        _NAME,
        ("Class", "string", 0, lambda o: _get(o, "spec.gatewayClassName", "")),
        (
            "Address",
            "string",
            0,
            lambda o: ",".join(a.get("value", "") for a in _get(o, "status.addresses", [])) or "",
        ),
        ("Programmed", "string", 0, lambda o: _condition(o, "Programmed")),
        _AGE,
    ],
    "HTTPRoute": [_NAME, ("Hostnames", "string", 0, _names("spec.hostnames")), _AGE],
    "Event": event_columns.columns(human_duration),
    "Lease": [_NAME, ("Holder", "string", 0, lambda o: _get(o, "spec.holderIdentity", "")), _AGE],
    "ClusterRoleBinding": [
        _NAME,
        (
            "Role",
            "string",
            0,
            lambda o: f"{_get(o, 'roleRef.kind', '')}/{_get(o, 'roleRef.name', '')}",
        ),
        _AGE,
    ],
    "RoleBinding": [
        _NAME,
        (
            "Role",
            "string",
            0,
            lambda o: f"{_get(o, 'roleRef.kind', '')}/{_get(o, 'roleRef.name', '')}",
        ),
        _AGE,
    ],
}


def columns(kind: str) -> list[Column]:
    return _COLUMNS.get(kind, [_NAME, _AGE])


def _row_object(obj: Obj, include: str, target: Target) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return {**obj, "apiVersion": target.api_version}
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    }


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _custom_cell(type_: str, path: str) -> Callable[[Obj], Any]:
    """A CRD column's cell, as the apiextensions table convertor fills it: one value in the
    column's type (a ``date`` as an age), several joined by spaces, none as null."""
    steps = jsonpath.parse(path)

    def cell(obj: Obj) -> Any:
        found = [v for v in jsonpath.find(obj, steps) if v is not None]
        if not found:
            return None
        if len(found) > 1 or type_ == "string":
            return " ".join(_json_text(v) for v in found)
        value = found[0]
        if type_ == "date" and isinstance(value, str):
            try:
                then = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            except ValueError:
                return "<invalid>"
            return human_duration((datetime.now(UTC) - then).total_seconds())
        if type_ == "integer" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if type_ == "number" and isinstance(value, int | float) and not isinstance(value, bool):
            return value
        if type_ == "boolean" and isinstance(value, bool):
            return value
        return None

    return cell


def _printer_columns(target: Target) -> list[Column]:
    """A CRD's additionalPrinterColumns, with Age added if it has none, as a cluster does."""
    cols: list[Column] = [_NAME]
    for name, type_, path, priority in target.resource.printer_columns:
        kind = type_ if type_ in ("integer", "number", "boolean") else "string"
        cols.append((name, kind, priority, _custom_cell(type_, path)))
    if not any(c[0] == "Age" for c in cols):
        cols.append(_AGE)
    return cols


def table(
    target: Target, objs: list[dict[str, Any]], list_meta: Mapping[str, Any], include: str
) -> dict[str, Any]:
    if target.resource.custom:
        cols = _printer_columns(target)
    else:
        cols = columns(target.resource.kind)
    rows = []
    for obj in objs:
        row: dict[str, Any] = {"cells": [cell(obj) for _, _, _, cell in cols]}
        embedded = _row_object(obj, include or "Metadata", target)
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": dict(list_meta),
        "columnDefinitions": [
            {
                "name": name,
                "type": type_,
                "format": "name" if name == "Name" else "",
                "description": name,
                "priority": priority,
            }
            for name, type_, priority, _ in cols
        ],
        "rows": rows,
    }
