"""The conformance run applies every case's Gateways at once, and each Tulle Gateway takes
an address from the lab's LoadBalancerIPPool (``lab.topology.LB_POOL_CIDR``). Past the
pool's size some Gateway waits without an address and its cases fail in the root tier, far
from the cause; this says so in the unit tier, when a case module adds a Gateway."""

from __future__ import annotations

import ipaddress
from typing import Any

from agent.model.lbpool import PoolBlock
from conformance.cases import all_cases
from conformance.runner import plan_manifests
from lab.topology import LB_POOL_CIDR


def _takes_a_pool_address(gateway: dict[str, Any]) -> bool:
    """Like ``controlplane.lbipam.plan.requested_address``: the first IPAddress entry with
    a value is asked for (an address outside the pool is never given: it waits); none
    asks for any pool address."""
    values = [a.get("value") for a in gateway["spec"].get("addresses") or []
              if a.get("type") == "IPAddress" and a.get("value")]
    if not values:
        return True
    try:
        return ipaddress.IPv4Address(values[0]) in LB_POOL_CIDR
    except ValueError:
        return False


def test_the_suites_gateways_fit_the_lab_address_pool() -> None:
    first, last = PoolBlock(cidr=str(LB_POOL_CIDR)).bounds()
    usable = last - first + 1
    gateways = [o for o in plan_manifests(all_cases()) if o["kind"] == "Gateway"]
    pooled = [f"{g['metadata']['namespace']}/{g['metadata']['name']}"
              for g in gateways if _takes_a_pool_address(g)]
    assert len(pooled) <= usable, (
        f"{len(pooled)} Gateways need an address from {LB_POOL_CIDR} ({usable} usable): "
        f"share a Gateway between cases (one port each) or grow the lab's pool: {pooled}"
    )


def test_a_gateway_asking_for_an_address_outside_the_pool_takes_none() -> None:
    def gw(addresses: list[dict[str, str]]) -> dict[str, Any]:
        return {"spec": {"addresses": addresses}}

    inside = str(next(LB_POOL_CIDR.hosts()))
    assert _takes_a_pool_address(gw([]))
    assert _takes_a_pool_address(gw([{"type": "IPAddress"}]))
    assert _takes_a_pool_address(gw([{"type": "IPAddress", "value": inside}]))
    assert not _takes_a_pool_address(gw([{"type": "IPAddress", "value": "192.0.2.1"}]))
    assert not _takes_a_pool_address(gw([{"type": "IPAddress", "value": "not an address"}]))
