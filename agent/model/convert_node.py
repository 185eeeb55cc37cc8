"""Reader for Node."""

from __future__ import annotations

import ipaddress

from agent.model.convert_meta import read_conditions
from agent.model.meta import ObjectMeta
from agent.model.node import Node, NodeAddress, NodeSpec, NodeStatus
from agent.model.reader import REQUIRED, Reader


def _check_cidr(value: str) -> str | None:
    try:
        ipaddress.ip_network(value)
    except ValueError:
        return f"invalid CIDR {value!r}"
    return None


def read_node(r: Reader, metadata: ObjectMeta) -> Node:
    return Node(
        metadata=metadata,
        spec=r.obj("spec", _read_spec, NodeSpec()),
        status=r.obj("status", _read_status, NodeStatus()),
    )


def _read_spec(r: Reader) -> NodeSpec:
    return NodeSpec(
        pod_cidr=r.string("podCIDR", check=_check_cidr),
        pod_cidrs=r.string_list("podCIDRs"),
    )


def _read_status(r: Reader) -> NodeStatus:
    return NodeStatus(
        addresses=r.objects("addresses", _read_address),
        conditions=read_conditions(r),
    )


def _read_address(r: Reader) -> NodeAddress:
    return NodeAddress(type=r.string("type", REQUIRED), address=r.string("address", REQUIRED))
