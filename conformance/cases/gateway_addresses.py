"""Gateway address cases (GATEWAY-HTTP, the Gateway's extended features): a requested static
address, honoured only when usable (upstream GatewayStaticAddresses), and an address entry
without a value, which asks for any (upstream GatewayOptionalAddressValue, feature
GatewayAddressEmpty). Tulle's addresses come from LoadBalancerIPPools
(controlplane/lbipam): a usable address is a free one of a pool, an unusable one is outside
every pool."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from conformance.case import Case, CaseFailed
from conformance.cases.common import GATEWAY_API, GATEWAY_BASE, INFRA
from conformance.lab import Lab, eventually

PROFILE = "GATEWAY-HTTP"
STATIC = "gateway-static-addresses"
EMPTY = "gateway-without-address-value"
INVALID = {"type": "test/fake-invalid-type", "value": "fake address teehee!"}
UNUSABLE = {"type": "IPAddress", "value": "192.0.2.1"}  # TEST-NET-1: in no lab pool


def gateway(name: str, addresses: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": GATEWAY_API, "kind": "Gateway",
            "metadata": {"name": name, "namespace": INFRA},
            "spec": {"gatewayClassName": "tulle", "addresses": addresses,
                     "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}]}}


def _all(lab: Lab, kind: str) -> list[dict[str, Any]]:
    return list(json.loads(lab.tulle("get", kind, "-A", "-o", "json").stdout)["items"])


def usable_address(lab: Lab) -> str:
    """The highest address of the first pool that nothing holds (Services' and Gateways'
    statuses): one the allocator gives when asked."""
    used = {a.get("value") for g in _all(lab, "gateways")
            for a in (g.get("status") or {}).get("addresses") or []}
    used |= {i.get("ip") for s in _all(lab, "services")
             for i in ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []}
    for pool in sorted(_all(lab, "loadbalancerippools"), key=lambda p: p["metadata"]["name"]):
        if (pool.get("spec") or {}).get("serviceSelector") or pool["spec"].get("disabled"):
            continue
        for block in pool["spec"].get("blocks") or []:
            if "cidr" not in block:
                continue
            net = ipaddress.ip_network(block["cidr"])
            for host in reversed(list(net.hosts())[-64:]):
                if str(host) not in used:
                    return str(host)
    raise CaseFailed("no free address in the lab's LoadBalancerIPPools")


def _status(lab: Lab, name: str) -> dict[str, Any]:
    for g in lab.get("gateways", INFRA):
        if g["metadata"]["name"] == name:
            return dict(g.get("status") or {})
    raise CaseFailed(f"no Gateway {INFRA}/{name}")


def _expect(lab: Lab, name: str, want: dict[str, tuple[str, str]],
            addresses: list[dict[str, str]] | None = None) -> None:
    """Until the Gateway's conditions (type -> (status, reason)) and, when given, its
    status addresses are as wanted."""
    def once() -> None:
        status = _status(lab, name)
        got = {c["type"]: (c.get("status"), c.get("reason"))
               for c in status.get("conditions") or []}
        wrong = {t: got.get(t) for t, w in want.items() if got.get(t) != w}
        if wrong:
            raise CaseFailed(f"Gateway {name}: {wrong}, want {want}")
        seen = [{"type": a.get("type", "IPAddress"), "value": a.get("value")}
                for a in status.get("addresses") or []]
        if addresses is not None and seen != addresses:
            raise CaseFailed(f"Gateway {name} addresses {seen}, want {addresses}")

    eventually(once, timeout=45)


def _check_static(lab: Lab) -> None:
    """An address of a type Tulle does not support: Accepted False, UnsupportedAddress.
    Without it, an IPAddress no pool holds: Accepted, but Programmed False,
    AddressNotUsable. With only a usable one: Programmed, and exactly that address in the
    status (upstream GatewayStaticAddresses)."""
    usable = {"type": "IPAddress", "value": usable_address(lab)}
    lab.apply([gateway(STATIC, [INVALID, UNUSABLE, usable])])
    _expect(lab, STATIC, {"Accepted": ("False", "UnsupportedAddress")})
    lab.apply([gateway(STATIC, [UNUSABLE, usable])])
    _expect(lab, STATIC, {"Accepted": ("True", "Accepted"),
                          "Programmed": ("False", "AddressNotUsable")})
    lab.apply([gateway(STATIC, [usable])])
    _expect(lab, STATIC, {"Accepted": ("True", "Accepted"),
                          "Programmed": ("True", "Programmed")}, [usable])


def _check_empty(lab: Lab) -> None:
    """``addresses: [{type: IPAddress}]``: the Gateway is accepted and gets an address
    (upstream GatewayOptionalAddressValue)."""
    _expect(lab, EMPTY, {"Accepted": ("True", "Accepted"), "Programmed": ("True", "Programmed")})
    got = _status(lab, EMPTY).get("addresses") or []
    if not got or not got[0].get("value"):
        raise CaseFailed(f"Gateway {EMPTY} has no address: {got}")


CASES = [
    Case("GatewayStaticAddresses", PROFILE, ("Gateway", "GatewayStaticAddresses"),
         (*GATEWAY_BASE, gateway(STATIC, [INVALID, UNUSABLE])), _check_static),
    Case("GatewayOptionalAddressValue", PROFILE, ("Gateway", "GatewayAddressEmpty"),
         (*GATEWAY_BASE, gateway(EMPTY, [{"type": "IPAddress"}])), _check_empty),
]
