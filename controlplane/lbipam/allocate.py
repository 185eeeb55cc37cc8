"""The pool allocator, pure: claims (an object's labels, the address it asks for, the one it
has) and pools in, an address or the reason it waits out.

- *Stable.* A claim keeps the address it has while a pool that may serve it holds it; a new
  claim starts its search at a hash of its key, so a re-created lab gives the same object the
  same address when that one is free (as the lab's ClusterIPs do).
- *Requested* (Service ``spec.loadBalancerIP``, Gateway ``spec.addresses``): honoured when a
  pool serving the object holds it and nobody else has it; else the claim waits with a reason
  saying which.
- *Never outside a pool.* A held address no pool serves any more is given up, and the claim
  is served afresh.
- *Exhausted.* The claim waits with a reason; addresses released by others are reused.

Pools are visited in name order; a disabled pool keeps what it gave and gives nothing new.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from agent.model.lbpool import LoadBalancerIPPool

Key = tuple[str, str, str]  # (kind, namespace, name)


@dataclass(frozen=True, slots=True)
class Claim:
    key: Key
    labels: Mapping[str, str] = field(default_factory=dict)
    requested: str | None = None
    current: str | None = None


@dataclass(frozen=True, slots=True)
class Allocation:
    addresses: dict[Key, str]  # claim -> address
    waiting: dict[Key, str]  # claim -> why it has none


def _serves(pool: LoadBalancerIPPool, labels: Mapping[str, str]) -> bool:
    selector = pool.spec.service_selector
    return selector is None or selector.matches(labels)


def _holds(pool: LoadBalancerIPPool, ip: int) -> bool:
    return any(first <= ip <= last for first, last in (b.bounds() for b in pool.spec.blocks))


def _as_int(text: str | None) -> int | None:
    try:
        ip = ipaddress.ip_address(text or "")
    except ValueError:
        return None
    return int(ip) if ip.version == 4 else None


def _start(key: Key, size: int) -> int:
    return int.from_bytes(hashlib.sha256("/".join(key).encode()).digest()[:8], "big") % size


def _free_in(pools: Sequence[LoadBalancerIPPool], key: Key, taken: set[int]) -> int | None:
    """The first free address of the pools' blocks (in order), searched from the claim's
    hash; block arithmetic, so a /8 costs nothing until it fills."""
    spans = [b.bounds() for p in pools for b in p.spec.blocks]
    size = sum(last - first + 1 for first, last in spans)
    if size == 0:
        return None
    start = _start(key, size)
    for step in range(min(size, len(taken) + 1)):  # more steps than taken cannot be needed
        index = (start + step) % size
        for first, last in spans:
            width = last - first + 1
            if index < width:
                if first + index not in taken:
                    return first + index
                break
            index -= width
    return None


def allocate(pools: Iterable[LoadBalancerIPPool], claims: Iterable[Claim]) -> Allocation:
    ordered_pools = sorted(pools, key=lambda p: p.metadata.name)
    ordered = sorted(claims, key=lambda c: c.key)
    result = Allocation({}, {})
    taken: dict[int, Key] = {}
    fresh: list[Claim] = []
    # First every address already held (and still wanted), so newcomers never take one.
    for claim in ordered:
        current = _as_int(claim.current)
        requested = _as_int(claim.requested)
        kept = (
            current is not None
            and (claim.requested is None or requested == current)
            and current not in taken
            and any(_serves(p, claim.labels) and _holds(p, current) for p in ordered_pools)
        )
        if kept and current is not None:
            taken[current] = claim.key
            result.addresses[claim.key] = str(ipaddress.IPv4Address(current))
        else:
            fresh.append(claim)
    for claim in fresh:
        eligible = [p for p in ordered_pools if _serves(p, claim.labels)]
        if not eligible:
            result.waiting[claim.key] = "no LoadBalancerIPPool selects it"
            continue
        if claim.requested is not None:
            wanted = _as_int(claim.requested)
            reason = _refusal(claim, wanted, eligible, taken)
            if reason is not None:
                result.waiting[claim.key] = reason
                continue
            assert wanted is not None
            chosen = wanted
        else:
            giving = [p for p in eligible if not p.spec.disabled]
            free = _free_in(giving, claim.key, set(taken))
            if free is None:
                names = ", ".join(p.metadata.name for p in eligible)
                result.waiting[claim.key] = f"no free address in pool(s) {names}"
                continue
            chosen = free
        taken[chosen] = claim.key
        result.addresses[claim.key] = str(ipaddress.IPv4Address(chosen))
    return result


def _refusal(
    claim: Claim, wanted: int | None, eligible: Sequence[LoadBalancerIPPool],
    taken: Mapping[int, Key],
) -> str | None:
    if wanted is None:
        return f"requested address {claim.requested} is not an IPv4 address"
    holders = [p for p in eligible if _holds(p, wanted)]
    if not holders:
        return f"requested address {claim.requested} is in no pool that selects it"
    if all(p.spec.disabled for p in holders):
        return f"requested address {claim.requested} is in a disabled pool"
    if wanted in taken:
        kind, ns, name = taken[wanted]
        return f"requested address {claim.requested} is already used by {kind} {ns}/{name}"
    return None
