"""Field matchers of Hubble's flow filters: one predicate builder per `FlowFilter` field,
each raising `FilterError` for a value it cannot understand (`agent.flows.filters`
composes them)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from agent.flows.flow import TCP, UDP, Endpoint, Flow, ICMPv4, ICMPv6, TCPFlags
from agent.flows.labels import LabelSelector, parse_selector
from agent.flows.names import DROP_REASONS, Verdict
from agent.model.regex import RegexError, compile_linear

Predicate = Callable[[Flow], bool]


@dataclass(frozen=True)
class EventTypeFilter:
    type: int
    sub_type: int | None = None  # None: any sub type


class FilterError(ValueError):
    """A filter value that cannot be understood; the message names the field and value."""


def src_ip(f: Flow) -> str:
    return f.ip.source if f.ip is not None else ""


def dst_ip(f: Flow) -> str:
    return f.ip.destination if f.ip is not None else ""


@lru_cache(maxsize=65536)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def match_ips(values: Sequence[str], get: Callable[[Flow], str], name: str) -> Predicate:
    exact: set[str] = set()
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for v in values:
        try:
            if "/" in v:
                nets.append(ipaddress.ip_network(v, strict=False))
            else:
                exact.add(str(ipaddress.ip_address(v)))
        except ValueError:
            raise FilterError(f"{name}: {v!r} is not an IP address or CIDR") from None

    def match(f: Flow) -> bool:
        ip = get(f)
        if not ip:
            return False
        if ip in exact:
            return True
        if nets:
            addr = _address(ip)
            return addr is not None and any(addr in n for n in nets)
        return False

    return match


def parse_namespaced(value: str, field: str) -> tuple[str, str]:
    """ "ns/prefix" -> (ns, prefix); "prefix" -> ("default", prefix), as Hubble does."""
    if value.count("/") > 1:
        raise FilterError(f"{field}: {value!r} must be [namespace/][name-prefix]")
    ns, sep, name = value.partition("/")
    if not sep:
        ns, name = "default", value
    if not ns and not name:
        raise FilterError(f"{field}: empty value, expected [namespace/][name-prefix]")
    return ns, name


def match_names(
    values: Sequence[str], get: Callable[[Flow], tuple[str, str]], field: str
) -> Predicate:
    wanted = [parse_namespaced(v, field) for v in values]

    def match(f: Flow) -> bool:
        ns, name = get(f)
        if not ns and not name:
            return False
        return any(ns == w_ns and name.startswith(w_name) for w_ns, w_name in wanted)

    return match


def pod_ref(ep: Endpoint | None) -> tuple[str, str]:
    return ("", "") if ep is None else (ep.namespace, ep.pod_name)


def match_labels(values: Sequence[str], get: Callable[[Flow], Endpoint | None]) -> Predicate:
    selectors: list[LabelSelector] = []
    for v in values:
        try:
            selectors.append(parse_selector(v))
        except ValueError as e:
            raise FilterError(f"label selector {v!r}: {e}") from None

    def match(f: Flow) -> bool:
        ep = get(f)
        labels = ep.labels if ep is not None else ()
        return any(s.matches(labels) for s in selectors)

    return match


def _ports(f: Flow) -> tuple[int, int] | None:
    l4 = f.l4
    if isinstance(l4, TCP | UDP):
        return l4.source_port, l4.destination_port
    return None


def match_ports(values: Sequence[str], index: int, field: str) -> Predicate:
    wanted: set[int] = set()
    for v in values:
        try:
            port = int(v)
        except ValueError:
            port = -1
        if not 0 <= port <= 65535:
            raise FilterError(f"{field}: {v!r} is not a port number")
        wanted.add(port)

    def match(f: Flow) -> bool:
        ports = _ports(f)
        return ports is not None and ports[index] in wanted

    return match


_PROTOCOLS = {"tcp", "udp", "icmp", "icmpv4", "icmpv6", "http", "dns", "kafka"}


def match_protocol(values: Sequence[str]) -> Predicate:
    wanted = {v.lower() for v in values}
    bad = wanted - _PROTOCOLS
    if bad:
        raise FilterError(f"protocol: unknown {sorted(bad)[0]!r} (known: tcp, udp, icmp, http)")

    def match(f: Flow) -> bool:
        l4 = f.l4
        if isinstance(l4, TCP):
            if "tcp" in wanted:
                return True
        elif isinstance(l4, UDP):
            if "udp" in wanted:
                return True
        elif isinstance(l4, ICMPv4):
            if "icmp" in wanted or "icmpv4" in wanted:
                return True
        elif isinstance(l4, ICMPv6):
            if "icmp" in wanted or "icmpv6" in wanted:
                return True
        return "http" in wanted and f.l7 is not None and f.l7.http is not None

    return match


_STATUS_FULL = re.compile(r"^[1-5][0-9]{2}$")
_STATUS_PREFIX = re.compile(r"^[1-5][0-9]?\+$")


def match_http_status(values: Sequence[str]) -> Predicate:
    full: set[str] = set()
    prefixes: list[str] = []
    for v in values:
        if _STATUS_FULL.match(v):
            full.add(v)
        elif _STATUS_PREFIX.match(v):
            prefixes.append(v[:-1])
        else:
            raise FilterError(f"http status: {v!r} must be a code (404) or a prefix (5+, 40+)")

    def match(f: Flow) -> bool:
        http = f.l7.http if f.l7 is not None else None
        if http is None or not http.code:
            return False
        code = f"{http.code:03d}"
        return code in full or any(code.startswith(p) for p in prefixes)

    return match


def match_http_path(values: Sequence[str]) -> Predicate:
    # RE2: paths come from clients and patterns from anyone with observer access, so
    # matching must stay linear (a backtracking pattern would stall the agent).
    patterns = []
    for v in values:
        try:
            patterns.append(compile_linear(v))
        except RegexError as e:
            raise FilterError(f"http path: regular expression {v[:80]!r} {e}") from None

    def match(f: Flow) -> bool:
        http = f.l7.http if f.l7 is not None else None
        if http is None or not http.url:
            return False
        path = _url_path(http.url)
        return any(p.search(path) for p in patterns)

    return match


@lru_cache(maxsize=4096)
def _url_path(url: str) -> str:
    return urlsplit(url).path if "://" in url else url.split("?", 1)[0]


def match_event_type(values: Sequence[EventTypeFilter]) -> Predicate:
    wanted = list(values)

    def match(f: Flow) -> bool:
        ev = f.event_type
        if ev is None:
            return False
        return any(
            (not w.type or w.type == ev.type) and (w.sub_type is None or w.sub_type == ev.sub_type)
            for w in wanted
        )

    return match


def match_tcp_flags(values: Sequence[TCPFlags]) -> Predicate:
    wanted = [frozenset(v.names()) for v in values]

    def match(f: Flow) -> bool:
        if not isinstance(f.l4, TCP):
            return False
        have = set(f.l4.flags.names())
        return any(w <= have for w in wanted)

    return match


def match_workloads(
    values: Sequence[tuple[str, str]], get: Callable[[Flow], Endpoint | None]
) -> Predicate:
    def match(f: Flow) -> bool:
        ep = get(f)
        if ep is None:
            return False
        return any(
            (not kind or w.kind.lower() == kind.lower()) and (not name or w.name == name)
            for w in ep.workloads
            for kind, name in values
        )

    return match


def one_of(values: Sequence[object], get: Callable[[Flow], object]) -> Predicate:
    wanted = frozenset(values)
    return lambda f: get(f) in wanted


def verdicts(values: Sequence[str]) -> list[str]:
    known = {v.value for v in Verdict}
    out = [v.upper() for v in values]
    bad = [v for v in out if v not in known]
    if bad:
        raise FilterError(f"verdict: unknown {bad[0]!r} (known: {', '.join(sorted(known))})")
    return out


def drop_reasons(values: Sequence[str]) -> list[str]:
    return [DROP_REASONS.get(int(v), v) if v.isdigit() else v.upper() for v in values]


def directions(values: Sequence[str]) -> list[str]:
    out = [v.upper() for v in values]
    for v in out:
        if v not in ("INGRESS", "EGRESS"):
            raise FilterError(f"traffic direction: {v.lower()!r}, expected ingress or egress")
    return out


def ip_versions(values: Sequence[str]) -> list[str]:
    table = {"4": "IPv4", "v4": "IPv4", "ipv4": "IPv4", "6": "IPv6", "v6": "IPv6", "ipv6": "IPv6"}
    try:
        return [table[v.lower()] for v in values]
    except KeyError as e:
        raise FilterError(f"ip version: {e.args[0]!r}, expected ipv4 or ipv6") from None


def service_ref(f: Flow, source: bool) -> tuple[str, str]:
    svc = f.source_service if source else f.destination_service
    return ("", "") if svc is None else (svc.namespace, svc.name)
