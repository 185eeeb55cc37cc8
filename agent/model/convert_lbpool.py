"""Reader for networking.tulle.io/v1alpha1 LoadBalancerIPPool: 1-1024 blocks, each exactly
one of ``cidr`` or ``start`` (with an optional ``stop`` not below it), IPv4 only (an IPv6
block is refused by name: Tulle's datapath is IPv4), and no two blocks overlapping."""

from __future__ import annotations

import ipaddress

from agent.model.convert_meta import read_label_selector
from agent.model.lbpool import LoadBalancerIPPool, LoadBalancerIPPoolSpec, PoolBlock
from agent.model.meta import ObjectMeta
from agent.model.reader import REQUIRED, Reader

MAX_BLOCKS = 1024
_IPV6 = "IPv6 is not supported: Tulle announces IPv4 LoadBalancer addresses only"


def read_load_balancer_ip_pool(r: Reader, metadata: ObjectMeta) -> LoadBalancerIPPool:
    return LoadBalancerIPPool(metadata=metadata, spec=r.obj("spec", _read_spec, REQUIRED))


def _read_spec(r: Reader) -> LoadBalancerIPPoolSpec:
    blocks = r.objects("blocks", _read_block, min_items=1, max_items=MAX_BLOCKS)
    spans = sorted((b.bounds(), i) for i, b in enumerate(blocks))
    for ((_, last), i), ((first, _), j) in zip(spans, spans[1:], strict=False):
        if first <= last:
            r.fail(f"blocks[{max(i, j)}]", f"overlaps blocks[{min(i, j)}]")
    return LoadBalancerIPPoolSpec(
        blocks=blocks,
        service_selector=r.obj("serviceSelector", read_label_selector),
        disabled=bool(r.boolean("disabled", False)),
    )


def _address(r: Reader, key: str) -> str | None:
    text = r.string(key)
    if text is None:
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        r.fail(key, f"invalid IP address {text!r}")
    if ip.version != 4:
        r.fail(key, _IPV6)
    return str(ip)


def _read_block(r: Reader) -> PoolBlock:
    cidr = r.string("cidr")
    start, stop = _address(r, "start"), _address(r, "stop")
    if cidr is not None:
        if start is not None or stop is not None:
            r.fail(None, "a block is either a cidr or a start/stop range, not both")
        try:
            net = ipaddress.ip_network(cidr, strict=True)
        except ValueError as err:
            r.fail("cidr", f"invalid CIDR {cidr!r}: {err}")
        if net.version != 4:
            r.fail("cidr", _IPV6)
        return PoolBlock(cidr=str(net))
    if start is None:
        r.fail(None, "a block needs a cidr or a start address")
    if stop is not None and ipaddress.IPv4Address(stop) < ipaddress.IPv4Address(start):
        r.fail("stop", f"{stop} is below start {start}")
    return PoolBlock(start=start, stop=stop)
