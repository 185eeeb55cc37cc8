"""Istio's value matching for AuthorizationPolicy (pure): strings with one "*" at either end,
IP blocks, hosts with or without a port.

Istio's string match (its authorization-policy reference, "Source" and "Operation"): exact
("abc"), prefix ("abc*"), suffix ("*abc"), or presence ("*": any non-empty value). The
converter refuses a "*" anywhere else.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def string_matches(pattern: str, value: str) -> bool:
    """One Istio string match; an empty value never matches (it is "not present")."""
    if not value:
        return False
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return value == pattern


def any_string(patterns: Iterable[str], value: str | None) -> bool:
    return value is not None and any(string_matches(p, value) for p in patterns)


def host_matches(pattern: str, authority: str) -> bool:
    """Case-insensitive, as Istio's hosts are; a pattern without a port also matches the
    authority's host with a port ("web.shop" matches "web.shop:8080")."""
    authority = authority.lower()
    pattern = pattern.lower()
    if string_matches(pattern, authority):
        return True
    host, colon, port = authority.rpartition(":")
    return bool(colon) and port.isdigit() and "]" not in port and string_matches(pattern, host)


@lru_cache(maxsize=4096)
def network(text: str) -> Network:
    """An IP ("10.0.0.1") or CIDR ("10.0.0.0/8", host bits allowed as Istio allows them)."""
    return ipaddress.ip_network(text, strict=False)


def ip_in(blocks: Iterable[str], address: str | None) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip.version == (net := network(b)).version and ip in net for b in blocks)
