"""kubectl-style tables for `tulle get`, computed from Kubernetes-shaped objects."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]
Column = tuple[str, Callable[[Obj], str]]


def age(obj: Obj, now: datetime | None = None) -> str:
    ts = obj.get("metadata", {}).get("creationTimestamp")
    if not ts:
        return "<unknown>"
    created = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    seconds = int(((now or datetime.now(UTC)) - created).total_seconds())
    if seconds < 120:
        return f"{max(seconds, 0)}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _condition(obj: Obj, ctype: str) -> str:
    for cond in obj.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == ctype:
            return str(cond.get("status", "Unknown"))
    return "Unknown"


def _pod_ready(obj: Obj) -> str:
    statuses = obj.get("status", {}).get("containerStatuses", []) or []
    total = len(obj.get("spec", {}).get("containers", []) or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _pod_status(obj: Obj) -> str:
    status = obj.get("status", {})
    for cs in status.get("containerStatuses", []) or []:
        waiting = cs.get("state", {}).get("waiting")
        if waiting and waiting.get("reason") not in (None, "ContainerCreating"):
            return str(waiting["reason"])
    return str(status.get("phase", "Pending"))


def _restarts(obj: Obj) -> str:
    statuses = obj.get("status", {}).get("containerStatuses", []) or []
    return str(sum(int(s.get("restartCount", 0)) for s in statuses))


def _svc_ports(obj: Obj) -> str:
    ports = obj.get("spec", {}).get("ports", []) or []
    return ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


def _parents(obj: Obj) -> str:
    refs = obj.get("spec", {}).get("parentRefs", []) or []
    return ",".join(f"{r.get('kind', 'Gateway')}/{r.get('name')}" for r in refs) or "<none>"


def _get(*path: str, default: str = "<none>") -> Callable[[Obj], str]:
    def read(obj: Obj) -> str:
        cur: Any = obj
        for key in path:
            if not isinstance(cur, dict) or key not in cur:
                return default
            cur = cur[key]
        if isinstance(cur, list):
            return ",".join(str(x) for x in cur) or default
        return str(cur)

    return read


def _gateway_address(obj: Obj) -> str:
    addrs = obj.get("status", {}).get("addresses", []) or []
    return ",".join(str(a.get("value")) for a in addrs) or "<none>"


def _deploy_ready(obj: Obj) -> str:
    status = obj.get("status", {})
    return f"{status.get('readyReplicas', 0)}/{obj.get('spec', {}).get('replicas', 1)}"


def _slice_endpoints(obj: Obj) -> str:
    addrs = [a for ep in obj.get("endpoints", []) or [] for a in ep.get("addresses", [])]
    return ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more" if len(addrs) > 3 else "") or "<none>"


# kind -> (normal columns, extra columns for -o wide)
COLUMNS: dict[str, tuple[list[Column], list[Column]]] = {
    "Pod": (
        [("READY", _pod_ready), ("STATUS", _pod_status), ("RESTARTS", _restarts)],
        [("IP", _get("status", "podIP")), ("NODE", _get("spec", "nodeName"))],
    ),
    "Service": (
        [
            ("TYPE", _get("spec", "type", default="ClusterIP")),
            ("CLUSTER-IP", _get("spec", "clusterIP")),
            ("PORT(S)", _svc_ports),
        ],
        [
            (
                "SELECTOR",
                lambda o: (
                    ",".join(
                        f"{k}={v}" for k, v in (o.get("spec", {}).get("selector") or {}).items()
                    )
                    or "<none>"
                ),
            )
        ],
    ),
    "Deployment": (
        [
            ("READY", _deploy_ready),
            ("UP-TO-DATE", _get("status", "updatedReplicas", default="0")),
            ("AVAILABLE", _get("status", "availableReplicas", default="0")),
        ],
        [],
    ),
    "EndpointSlice": (
        [
            ("ADDRESSTYPE", _get("addressType")),
            (
                "PORTS",
                lambda o: (
                    ",".join(str(p.get("port")) for p in o.get("ports", []) or []) or "<unset>"
                ),
            ),
            ("ENDPOINTS", _slice_endpoints),
        ],
        [],
    ),
    "Node": (
        [("STATUS", lambda o: "Ready" if _condition(o, "Ready") == "True" else "NotReady")],
        [
            (
                "INTERNAL-IP",
                lambda o: next(
                    (
                        a["address"]
                        for a in o.get("status", {}).get("addresses", [])
                        if a.get("type") == "InternalIP"
                    ),
                    "<none>",
                ),
            ),
            ("POD-CIDR", _get("spec", "podCIDR")),
        ],
    ),
    "GatewayClass": (
        [
            ("CONTROLLER", _get("spec", "controllerName")),
            ("ACCEPTED", lambda o: _condition(o, "Accepted")),
        ],
        [],
    ),
    "Gateway": (
        [
            ("CLASS", _get("spec", "gatewayClassName")),
            ("ADDRESS", _gateway_address),
            ("PROGRAMMED", lambda o: _condition(o, "Programmed")),
        ],
        [],
    ),
    "HTTPRoute": ([("HOSTNAMES", _get("spec", "hostnames", default=""))], [("PARENTS", _parents)]),
    "NetworkPolicy": (
        [
            (
                "POD-SELECTOR",
                lambda o: (
                    ",".join(
                        f"{k}={v}"
                        for k, v in (
                            o.get("spec", {}).get("podSelector", {}).get("matchLabels") or {}
                        ).items()
                    )
                    or "<none>"
                ),
            )
        ],
        [],
    ),
    "Secret": (
        [
            ("TYPE", _get("type", default="Opaque")),
            ("DATA", lambda o: str(len(o.get("data") or {}))),
        ],
        [],
    ),
    "Namespace": ([("STATUS", _get("status", "phase", default="Active"))], []),
}


def table(
    objs: Sequence[Obj], kind: str, *, all_namespaces: bool, wide: bool, namespaced: bool
) -> str:
    normal, extra = COLUMNS.get(kind, ([], []))
    cols: list[Column] = []
    if all_namespaces and namespaced:
        cols.append(("NAMESPACE", lambda o: str(o["metadata"].get("namespace", ""))))
    cols.append(("NAME", lambda o: str(o["metadata"]["name"])))
    cols += normal
    cols.append(("AGE", age))
    if wide:
        cols += extra
    rows = [[header for header, _ in cols]] + [[fn(o) for _, fn in cols] for o in objs]
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    return "\n".join(
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )
