"""ListenerSet cases (GEP-1713, standard since v1.5): upstream ListenerSetHTTPRouting (routes
attach to a ListenerSet and its sections only; a parentRef to the Gateway never reaches a
ListenerSet's listeners) and ListenerSetDefaultNotAllowed (a Gateway without
allowedListeners refuses every ListenerSet), with their status."""

from __future__ import annotations

from typing import Any

from conformance.case import Case, CaseFailed
from conformance.cases.common import (
    GATEWAY_API,
    GATEWAY_BASE,
    INFRA,
    Expect,
    backend,
    expect_all,
    gateway_address,
    http_route,
    prefix,
)
from conformance.lab import Lab, eventually

PROFILE = "GATEWAY-HTTP"
FEATURES = ("Gateway", "ListenerSet", "HTTPRoute")
KINDS = ("HTTPRoute", "ListenerSet")
GW = "gateway-with-listener-sets-http-routing"
GW_NONE = "gateway-default-does-not-allow-listenerset"
LS1, LS2 = "listener-set-http-routing-1", "listener-set-http-routing-2"
GW_HOSTS = ("gateway-listener-1.com", "gateway-listener-2.com")
LS1_HOSTS = (f"{LS1}-listener-1.com", f"{LS1}-listener-2.com")
LS2_HOSTS = (f"{LS2}-listener-1.com", f"{LS2}-listener-2.com")
ALL = {"namespaces": {"from": "All"}}


def _listener(name: str, hostname: str) -> dict[str, Any]:
    return {"name": name, "port": 80, "protocol": "HTTP", "hostname": hostname,
            "allowedRoutes": ALL}


def _gateway(name: str, allowed: dict[str, Any] | None, hosts: tuple[str, ...]) -> dict[str, Any]:
    spec: dict[str, Any] = {"gatewayClassName": "tulle", "listeners": [
        _listener(f"gateway-listener-{i}", h) for i, h in enumerate(hosts, 1)]}
    if allowed is not None:
        spec["allowedListeners"] = {"namespaces": allowed}
    return {"apiVersion": GATEWAY_API, "kind": "Gateway",
            "metadata": {"name": name, "namespace": INFRA}, "spec": spec}


def _listener_set(name: str, parent: str, hosts: tuple[str, ...]) -> dict[str, Any]:
    return {"apiVersion": GATEWAY_API, "kind": "ListenerSet",
            "metadata": {"name": name, "namespace": INFRA},
            "spec": {"parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                   "name": parent, "namespace": INFRA},
                     "listeners": [_listener(f"{name}-listener-{i}", h)
                                   for i, h in enumerate(hosts, 1)]}}


def _gw_ref(section: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": GW, "namespace": INFRA}
    if section:
        ref["sectionName"] = section
    return ref


def _ls_ref(name: str, section: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"group": "gateway.networking.k8s.io", "kind": "ListenerSet",
                           "name": name, "namespace": INFRA}
    if section:
        ref["sectionName"] = section
    return ref


def _rules(path: str, to: str) -> list[dict[str, Any]]:
    return [{"matches": [prefix(path)], "backendRefs": [backend(to)]}]


ROUTES = (
    http_route(INFRA, "attaches-to-all-listeners", _gw_ref(), _rules("/route", "infra-backend-v1")),
    http_route(INFRA, "gateway-route", _gw_ref(), _rules("/gateway-route", "infra-backend-v2")),
    http_route(INFRA, "gateway-section-route", _gw_ref("gateway-listener-1"),
               _rules("/gateway-section-route", "infra-backend-v3")),
    http_route(INFRA, f"{LS1}-route", _ls_ref(LS1), _rules(f"/{LS1}-route", "infra-backend-v2")),
    http_route(INFRA, f"{LS1}-section-route", _ls_ref(LS1, f"{LS1}-listener-1"),
               _rules(f"/{LS1}-section-route", "infra-backend-v3")),
    http_route(INFRA, f"{LS2}-route", _ls_ref(LS2), _rules(f"/{LS2}-route", "infra-backend-v2")),
)
ROUTES[0]["spec"]["parentRefs"] = [_gw_ref(), _ls_ref(LS1), _ls_ref(LS2)]


def _expects() -> list[Expect]:
    """Upstream's table: each path answered on exactly the hosts its parents give it."""
    every = (*GW_HOSTS, *LS1_HOSTS, *LS2_HOSTS)
    served = {
        "/route": (every, "infra-backend-v1"),
        "/gateway-route": (GW_HOSTS, "infra-backend-v2"),
        "/gateway-section-route": (GW_HOSTS[:1], "infra-backend-v3"),
        f"/{LS1}-route": (LS1_HOSTS, "infra-backend-v2"),
        f"/{LS1}-section-route": (LS1_HOSTS[:1], "infra-backend-v3"),
        f"/{LS2}-route": (LS2_HOSTS, "infra-backend-v2"),
    }
    return [
        Expect(path=path, host=host, backend=to) if host in hosts
        else Expect(path=path, host=host, status=404)
        for path, (hosts, to) in served.items() for host in every
    ]


def _status(lab: Lab, kind: str, name: str) -> dict[str, Any]:
    for obj in lab.get(kind, INFRA):
        if obj["metadata"]["name"] == name:
            return dict(obj.get("status") or {})
    raise CaseFailed(f"{kind} {INFRA}/{name} not found")


def _condition(status: dict[str, Any], type_: str) -> tuple[str, str]:
    for c in status.get("conditions") or []:
        if c.get("type") == type_:
            return (c.get("status"), c.get("reason"))
    return ("", "")


def _http_routing(lab: Lab) -> None:
    want_counts = {LS1: {f"{LS1}-listener-1": 3, f"{LS1}-listener-2": 2},
                   LS2: {f"{LS2}-listener-1": 2, f"{LS2}-listener-2": 2}}

    def status_once() -> None:
        gw = _status(lab, "gateways", GW)
        if gw.get("attachedListenerSets") != 2:
            raise CaseFailed(f"Gateway attachedListenerSets {gw.get('attachedListenerSets')}")
        for name, counts in want_counts.items():
            ls = _status(lab, "listenersets", name)
            for type_, reason in (("Accepted", "Accepted"), ("Programmed", "Programmed")):
                if _condition(ls, type_) != ("True", reason):
                    raise CaseFailed(f"ListenerSet {name} {type_}: {_condition(ls, type_)}")
            got = {e["name"]: e.get("attachedRoutes") for e in ls.get("listeners") or []}
            if got != counts:
                raise CaseFailed(f"ListenerSet {name} attachedRoutes {got}, want {counts}")

    eventually(status_once, timeout=30)
    expect_all(lab, INFRA, "client", f"http://{gateway_address(lab, INFRA, GW)}", _expects())


def _default_not_allowed(lab: Lab) -> None:
    def once() -> None:
        gw = _status(lab, "gateways", GW_NONE)
        if gw.get("attachedListenerSets", 0) != 0:
            raise CaseFailed(f"attachedListenerSets {gw.get('attachedListenerSets')}")
        ls = _status(lab, "listenersets", "listenerset-default-not-allowed")
        for type_ in ("Accepted", "Programmed"):
            if _condition(ls, type_) != ("False", "NotAllowed"):
                raise CaseFailed(f"ListenerSet {type_}: {_condition(ls, type_)}")

    eventually(once, timeout=30)


CASES = [
    Case("ListenerSetHTTPRouting", PROFILE, FEATURES, (
        *GATEWAY_BASE, _gateway(GW, {"from": "All"}, GW_HOSTS),
        _listener_set(LS1, GW, LS1_HOSTS), _listener_set(LS2, GW, LS2_HOSTS), *ROUTES,
    ), _http_routing, kinds=KINDS),
    Case("ListenerSetDefaultNotAllowed", PROFILE, FEATURES, (
        *GATEWAY_BASE, _gateway(GW_NONE, None, ("not-allowed-gateway.com",)),
        _listener_set("listenerset-default-not-allowed", GW_NONE, ("not-allowed-ls.com",)),
    ), _default_not_allowed, kinds=KINDS),
]
