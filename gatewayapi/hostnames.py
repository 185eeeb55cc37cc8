"""Gateway API hostnames: wildcard matching, listener/route intersection and specificity.

Spec (HTTPRouteSpec.hostnames, Listener.hostname): a hostname prefixed with ``*.`` is a
suffix match of at least one label, so ``*.example.com`` matches ``a.example.com`` and
``a.b.example.com`` but not ``example.com``. Exact beats wildcard; among wildcards the
longer (more labels) is more specific; a missing hostname matches everything and is the
least specific.
"""

from __future__ import annotations

from collections.abc import Iterator

HostKey = tuple[int, int]
"""Specificity of a hostname, larger is more specific: (1, len) exact, (0, len) wildcard,
(0, 0) none."""


def is_wildcard(pattern: str) -> bool:
    return pattern.startswith("*.")


def specificity(pattern: str | None) -> HostKey:
    if not pattern:
        return (0, 0)
    return (0, len(pattern)) if is_wildcard(pattern) else (1, len(pattern))


def matches(pattern: str | None, host: str) -> bool:
    """Whether the request ``host`` (lowercase, no port) falls under ``pattern``."""
    if pattern is None:
        return True
    if is_wildcard(pattern):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def _covers(general: str, specific: str) -> bool:
    """Whether every host matched by ``specific`` is matched by ``general`` (both set)."""
    if not is_wildcard(general):
        return general == specific
    if is_wildcard(specific):
        return specific[1:].endswith(general[1:])
    return matches(general, specific)


def intersect(listener: str | None, route: str) -> str | None:
    """The hostnames served when a listener hostname meets one route hostname: the more
    specific of the two when one covers the other, else None (no intersection)."""
    if listener is None:
        return route
    if _covers(listener, route):
        return route
    if _covers(route, listener):
        return listener
    return None


def effective_hostnames(
    listener: str | None, route_hostnames: tuple[str, ...]
) -> list[tuple[str | None, HostKey]]:
    """The (pattern, precedence key) pairs a route serves on a listener.

    The key is the specificity of the route's own hostname (GatewayRouteHostnameIntersection
    Precedence: precedence comes from the hostnames configured on the Route, not from the
    intersection). An empty result means no intersection (NoMatchingListenerHostname).
    """
    if not route_hostnames:
        return [(listener, (0, 0))]
    best: dict[str, HostKey] = {}
    for hostname in route_hostnames:
        pattern = intersect(listener, hostname)
        if pattern is not None:
            best[pattern] = max(best.get(pattern, (0, 0)), specificity(hostname))
    return list(best.items())


def wildcard_suffixes(host: str) -> Iterator[str]:
    """The suffixes under which a wildcard could match ``host``, longest first:
    "a.b.example.com" gives "b.example.com", "example.com", "com"."""
    i = host.find(".")
    while i >= 0:
        yield host[i + 1 :]
        i = host.find(".", i + 1)
