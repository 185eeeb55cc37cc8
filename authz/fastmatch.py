"""Istio's value matching (``match.py``), built once per policy change (pure): each field's
values become one test over one request attribute, so the waypoint does per request only the
work the values need.

- strings: exact values in a frozenset (its C ``__contains__`` is the whole test), ``prefix*``
  and ``*suffix`` as tuples for one ``startswith``/``endswith`` call, ``*`` as "non-empty";
- IP blocks: networks parsed once into (network, mask) integers per IP version; the caller's
  address is parsed once per request (and cached per address), not once per rule;
- hosts: patterns lower-cased once; the request's host lower-cased and split from its port
  once per request.

An attribute the request does not have is "" (strings) or None (addresses): an empty value
matches no pattern, as ``match.string_matches`` says, so "absent" and "empty" agree.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from operator import methodcaller
from typing import Any

Address = tuple[int, int]
"""An IP address as (version, integer)."""
Hit = Callable[[object], bool]
"""Whether a field's values match the attribute's value (one test's work)."""


Patterns = tuple[bool, frozenset[str], tuple[str, ...], tuple[str, ...]]
"""(any non-empty value, exact values, prefixes, suffixes)."""


def _patterns(patterns: Iterable[str], lower: bool) -> Patterns:
    exact: set[str] = set()
    prefixes: list[str] = []
    suffixes: list[str] = []
    for pattern in patterns:
        pattern = pattern.lower() if lower else pattern
        if pattern == "*":
            return True, frozenset(), (), ()
        if pattern.endswith("*"):  # checked first, as match.string_matches does
            prefixes.append(pattern[:-1])
        elif pattern.startswith("*"):
            suffixes.append(pattern[1:])
        elif pattern:  # an empty pattern matches nothing (an empty value never matches)
            exact.add(pattern)
    return False, frozenset(exact), tuple(prefixes), tuple(suffixes)


def string_test(patterns: Iterable[str], *, lower: bool = False) -> Callable[[str], bool]:
    """``match.any_string(patterns, value)`` for a value that is "" when absent."""
    return patterns_test(_patterns(patterns, lower))


def patterns_test(patterns: Patterns) -> Callable[[str], bool]:
    """``string_test`` of already parsed patterns (``patterns_of`` gives them back)."""
    anything, values, starts, ends = patterns
    if anything:
        return bool  # any non-empty value
    # No prefix, suffix or exact value is empty, so "" (absent) matches none of them. The
    # common shapes get a test that is one C call (a set's ``__contains__``, or
    # ``methodcaller``: no Python frame per request), the rest the general one.
    if not starts and not ends:
        return values.__contains__
    if not values and not ends:
        return methodcaller("startswith", starts)
    if not values and not starts:
        return methodcaller("endswith", ends)

    def hit(value: str) -> bool:
        return value in values or value.startswith(starts) or value.endswith(ends)

    hit.patterns = patterns  # type: ignore[attr-defined]  # for patterns_of
    return hit


_NOTHING: Patterns = (False, frozenset(), (), ())


def patterns_of(hit: object) -> Patterns | None:
    """The patterns a ``patterns_test`` (or ``string_test``, ``exact_test``) was built from,
    read back from the test itself (so the compiled tests need not carry them); None for
    any other test. ``authz.prefilter`` merges tests of several rules through them."""
    if hit is bool:
        return True, frozenset(), (), ()
    if isinstance(hit, methodcaller):
        reduced: tuple[Any, ...] = tuple(hit.__reduce__()[1])  # (name, *arguments)
        name, args = reduced[0], reduced[1:]
        found = args[0] if len(args) == 1 else None
        if not isinstance(found, tuple):
            return None
        if name == "startswith":
            return False, frozenset(), found, ()
        if name == "endswith":
            return False, frozenset(), (), found
        return None
    owner = getattr(hit, "__self__", None)
    if type(owner) is frozenset and getattr(hit, "__name__", "") == "__contains__":
        return False, owner, (), ()
    found = getattr(hit, "patterns", None)
    return found if isinstance(found, tuple) else None


def split_test(patterns: Patterns) -> list[Callable[[str], bool]]:
    """``patterns_test`` as parts, one C call each, that match a value when any does (so a
    caller tests only the parts that exist: no call for an empty prefix tuple)."""
    anything, values, starts, ends = patterns
    if anything:
        return [bool]
    parts: list[Callable[[str], bool]] = []
    if values:
        parts.append(values.__contains__)
    if starts:
        parts.append(methodcaller("startswith", starts))
    if ends:
        parts.append(methodcaller("endswith", ends))
    return parts


def merge_patterns(many: Iterable[Patterns]) -> Patterns:
    """Patterns matching a value when any of ``many`` does (Istio's strings: a union)."""
    anything, values, starts, ends = _NOTHING
    for p in many:
        if p[0]:
            return p
        values, starts, ends = values | p[1], starts + p[2], ends + p[3]
    return anything, values, starts, ends


def exact_test(values: Iterable[str]) -> Callable[[str], bool]:
    """Plain membership (ServiceAccounts "ns/name", ports): no patterns; "" never matches."""
    return frozenset(v for v in values if v).__contains__


def host_test(patterns: Iterable[str]) -> Callable[[tuple[str, str]], bool]:
    """``match.host_matches`` for any pattern, over ``host_fact`` (the authority, then the
    host without its port; "" matches nothing)."""
    anything, values, starts, ends = _patterns(patterns, True)
    if anything:
        return any  # either is non-empty

    def hit(host: tuple[str, str]) -> bool:
        for name in host:
            if name in values or name.startswith(starts) or name.endswith(ends):
                return True
        return False

    # A hit for an authority seen before is one C call (few distinct ones; bounded).
    return lru_cache(maxsize=1024)(hit)


@lru_cache(maxsize=1024)
def host_fact(authority: str) -> tuple[str, str]:
    """The authority lower-cased, and its host without the port ("" when it has none), as
    ``match.host_matches`` splits it. Cached: a waypoint sees few distinct authorities
    (a hit is one C call); bounded, so arbitrary Host values only evict."""
    authority = authority.lower()
    host, colon, port = authority.rpartition(":")
    with_port = bool(colon) and port.isdigit() and "]" not in port
    return authority, host if with_port else ""


def ip_test(blocks: Iterable[str]) -> Callable[[Address | None], bool]:
    """``match.ip_in(blocks, address)`` over an ``address_fact``."""
    nets: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
    for block in blocks:
        net = ipaddress.ip_network(block, strict=False)
        nets[net.version].append((int(net.network_address), int(net.netmask)))
    by_version = {version: tuple(found) for version, found in nets.items()}

    def hit(address: Address | None) -> bool:
        if address is not None:
            value = address[1]
            for net, mask in by_version[address[0]]:
                if value & mask == net:
                    return True
        return False

    return hit


@lru_cache(maxsize=4096)
def address_fact(text: str) -> Address | None:
    """(version, integer) of an IP address, None when it is none (it then matches no block,
    as ``match.ip_in`` says). Cached: the same callers come back."""
    if not text:
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return ip.version, int(ip)


def header_test(name: str, patterns: Iterable[str]) -> Callable[[Mapping[str, tuple[str, ...]]],
                                                                 bool]:
    """Whether any value of header ``name`` (lower-case) matches a pattern."""
    parsed = _patterns(patterns, False)
    test = patterns_test(parsed)

    def hit(headers: Mapping[str, tuple[str, ...]]) -> bool:
        for value in headers.get(name, ()):
            if test(value):
                return True
        return False

    hit.header = name, parsed  # type: ignore[attr-defined]  # for header_of
    return hit


def header_of(hit: object) -> tuple[str, Patterns] | None:
    """The header name and patterns a ``header_test`` was built from; None for any other."""
    found = getattr(hit, "header", None)
    return found if isinstance(found, tuple) else None


def never(_value: object) -> bool:
    """A condition key the evaluator does not know: its values never match."""
    return False
