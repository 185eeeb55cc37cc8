"""ipBlock peers as a longest-prefix-match table.

Each ipBlock that applies to one endpoint and direction is a ``CidrGrant``: allow ``ports``
to addresses in ``network`` but not in any of ``excepts``. The datapath cannot evaluate
"in A but not in B" directly, but it can do a longest-prefix match, so the grants become one
entry per prefix that any grant mentions (every network and every except):

    ports(p) = union of ports(g) over grants g with p inside g.network and p inside none
               of g.excepts

with ``CidrRule(deny=True)`` where that union is empty. For an address x, the longest
mentioned prefix containing x lies inside exactly the networks and excepts that contain x,
so the matched entry's ports are exactly the union of the grants that allow x; an address
that no prefix contains matches no entry (and no grant allows it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from agent.datapath.policy_ports import PortRule, normalise


@dataclass(frozen=True)
class CidrRule:
    """The value of one LPM entry: ``deny`` (no ports), or allow ``ports``."""

    deny: bool
    ports: tuple[PortRule, ...]


DENY = CidrRule(deny=True, ports=())


@dataclass(frozen=True)
class CidrGrant:
    """One ipBlock (or one pod address, for a named port) granting ``ports``."""

    network: IPv4Network
    excepts: tuple[IPv4Network, ...]
    ports: tuple[PortRule, ...]
    source: str = ""  # "namespace/name" of the NetworkPolicy

    def allows(self, address: IPv4Address) -> bool:
        return address in self.network and not any(address in e for e in self.excepts)

    def covers(self, prefix: IPv4Network) -> bool:
        """Whether every address of ``prefix`` (a prefix some grant mentions) is granted."""
        return prefix.subnet_of(self.network) and not any(prefix.subnet_of(e) for e in self.excepts)


def merge_grants(grants: Iterable[CidrGrant]) -> dict[IPv4Network, tuple[PortRule, ...]]:
    """The normalised allowed ports of every prefix the grants mention (empty: deny)."""
    grants = tuple(grants)
    prefixes = {g.network for g in grants} | {e for g in grants for e in g.excepts}
    table: dict[IPv4Network, tuple[PortRule, ...]] = {}
    for prefix in sorted(prefixes):
        table[prefix] = normalise(rule for g in grants if g.covers(prefix) for rule in g.ports)
    return table


def grants_of(grants: Iterable[CidrGrant], prefix: IPv4Network) -> list[tuple[str, PortRule]]:
    """(policy, rule) pairs behind ``merge_grants``' entry for ``prefix``."""
    return [(g.source, rule) for g in grants if g.covers(prefix) for rule in g.ports]


def longest_prefix_match(
    table: Mapping[IPv4Network, CidrRule], address: IPv4Address
) -> tuple[IPv4Network, CidrRule] | None:
    """The entry of ``table`` with the longest prefix containing ``address``, if any."""
    best: tuple[IPv4Network, CidrRule] | None = None
    for network, rule in table.items():
        if address in network and (best is None or network.prefixlen > best[0].prefixlen):
            best = (network, rule)
    return best
