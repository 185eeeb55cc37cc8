"""Hubble's flow filter semantics, as pure functions over `Flow`.

A `FlowFilter` holds lists of accepted values per field. Within one filter the fields
that are set are AND-ed and the values of one field are OR-ed. A list of filters is OR-ed.
A flow is selected when it matches any allow-list (whitelist) filter, or there are none,
and no deny-list (blacklist) filter: `compile_filters(whitelist, blacklist)`.

Field syntax follows Hubble's FlowFilter: pods and services as "[namespace/][name-prefix]"
(no namespace means "default"), IPs exact or CIDR, label selectors in Kubernetes syntax
("app=web", "k8s:app in (a,b)", "!canary"), HTTP status codes exact ("404") or as prefixes
("5+", "40+"), HTTP paths as regular expressions searched in the request path (RE2
syntax, matched in linear time, patterns up to 1024 bytes).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from urllib.parse import urlsplit

from agent.flows import tracefilters
from agent.flows.flow import TCP, UDP, Endpoint, Flow, ICMPv4, ICMPv6, TCPFlags
from agent.flows.httpfilters import HttpFilterError, match_http_header, match_http_url
from agent.flows.labels import LabelSelector, parse_selector
from agent.flows.names import DROP_REASONS, Verdict
from agent.model.regex import RegexError, compile_linear

Predicate = Callable[[Flow], bool]


class FilterError(ValueError):
    """A filter value that cannot be understood; the message names the field and value."""


@dataclass(frozen=True)
class EventTypeFilter:
    type: int
    sub_type: int | None = None  # None: any sub type


@dataclass(frozen=True, repr=False)
class FlowFilter:
    uuid: tuple[str, ...] = ()
    source_ip: tuple[str, ...] = ()
    source_pod: tuple[str, ...] = ()
    source_label: tuple[str, ...] = ()
    source_service: tuple[str, ...] = ()
    source_workload: tuple[tuple[str, str], ...] = ()  # (kind, name); "" matches any
    source_identity: tuple[int, ...] = ()
    destination_ip: tuple[str, ...] = ()
    destination_pod: tuple[str, ...] = ()
    destination_label: tuple[str, ...] = ()
    destination_service: tuple[str, ...] = ()
    destination_workload: tuple[tuple[str, str], ...] = ()
    destination_identity: tuple[int, ...] = ()
    # Tulle: workload identities (Endpoint.spiffe_id), exact SPIFFE IDs
    source_spiffe_id: tuple[str, ...] = ()
    destination_spiffe_id: tuple[str, ...] = ()
    source_port: tuple[str, ...] = ()
    destination_port: tuple[str, ...] = ()
    protocol: tuple[str, ...] = ()
    tcp_flags: tuple[TCPFlags, ...] = ()
    verdict: tuple[str, ...] = ()
    drop_reason_desc: tuple[str, ...] = ()
    event_type: tuple[EventTypeFilter, ...] = ()
    http_status_code: tuple[str, ...] = ()
    http_method: tuple[str, ...] = ()
    http_path: tuple[str, ...] = ()
    http_url: tuple[str, ...] = ()  # regular expressions searched in the full URL
    http_header: tuple[tuple[str, str], ...] = ()  # (key, value); key case-insensitive
    node_name: tuple[str, ...] = ()
    traffic_direction: tuple[str, ...] = ()
    reply: tuple[bool, ...] = ()
    ip_version: tuple[str, ...] = ()
    encrypted: tuple[bool, ...] = ()  # IP.encrypted (a flow without IP: not encrypted)
    # kernel connection trace (agent/flows/tracefilters.py)
    tcp_retransmits: tuple[str, ...] = ()
    tcp_rtt_over: tuple[str, ...] = ()
    tcp_connect_over: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self))

    def __repr__(self) -> str:
        set_ = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                         if getattr(self, f.name))
        return f"FlowFilter({set_})"


# -- field matchers ------------------------------------------------------------------------


def _src_ip(f: Flow) -> str:
    return f.ip.source if f.ip is not None else ""


def _dst_ip(f: Flow) -> str:
    return f.ip.destination if f.ip is not None else ""


@lru_cache(maxsize=65536)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _match_ips(values: Sequence[str], get: Callable[[Flow], str], name: str) -> Predicate:
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


def _match_names(
    values: Sequence[str], get: Callable[[Flow], tuple[str, str]], field: str
) -> Predicate:
    wanted = [parse_namespaced(v, field) for v in values]

    def match(f: Flow) -> bool:
        ns, name = get(f)
        if not ns and not name:
            return False
        return any(ns == w_ns and name.startswith(w_name) for w_ns, w_name in wanted)

    return match


def _pod(ep: Endpoint | None) -> tuple[str, str]:
    return ("", "") if ep is None else (ep.namespace, ep.pod_name)


def _match_labels(values: Sequence[str], get: Callable[[Flow], Endpoint | None]) -> Predicate:
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


def _match_ports(values: Sequence[str], index: int, field: str) -> Predicate:
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


def _match_protocol(values: Sequence[str]) -> Predicate:
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


def _match_http_status(values: Sequence[str]) -> Predicate:
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


def _match_http_path(values: Sequence[str]) -> Predicate:
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


def _match_event_type(values: Sequence[EventTypeFilter]) -> Predicate:
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


def _match_tcp_flags(values: Sequence[TCPFlags]) -> Predicate:
    wanted = [frozenset(v.names()) for v in values]

    def match(f: Flow) -> bool:
        if not isinstance(f.l4, TCP):
            return False
        have = set(f.l4.flags.names())
        return any(w <= have for w in wanted)

    return match


def _match_workloads(
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


def _one_of(values: Sequence[object], get: Callable[[Flow], object]) -> Predicate:
    wanted = frozenset(values)
    return lambda f: get(f) in wanted


def _verdicts(values: Sequence[str]) -> list[str]:
    known = {v.value for v in Verdict}
    out = [v.upper() for v in values]
    bad = [v for v in out if v not in known]
    if bad:
        raise FilterError(f"verdict: unknown {bad[0]!r} (known: {', '.join(sorted(known))})")
    return out


def _drop_reasons(values: Sequence[str]) -> list[str]:
    return [DROP_REASONS.get(int(v), v) if v.isdigit() else v.upper() for v in values]


def _directions(values: Sequence[str]) -> list[str]:
    out = [v.upper() for v in values]
    for v in out:
        if v not in ("INGRESS", "EGRESS"):
            raise FilterError(f"traffic direction: {v.lower()!r}, expected ingress or egress")
    return out


def _ip_versions(values: Sequence[str]) -> list[str]:
    table = {"4": "IPv4", "v4": "IPv4", "ipv4": "IPv4", "6": "IPv6", "v6": "IPv6", "ipv6": "IPv6"}
    try:
        return [table[v.lower()] for v in values]
    except KeyError as e:
        raise FilterError(f"ip version: {e.args[0]!r}, expected ipv4 or ipv6") from None


# -- compilation ---------------------------------------------------------------------------


def compile_filter(ff: FlowFilter) -> Predicate:
    """One filter as a predicate; raises FilterError naming a bad value."""
    checks: list[Predicate] = []
    add = checks.append
    if ff.event_type:  # cheapest and most selective first, as Hubble orders it
        add(_match_event_type(ff.event_type))
    if ff.verdict:
        add(_one_of(_verdicts(ff.verdict), lambda f: f.verdict))
    if ff.uuid:
        add(_one_of(ff.uuid, lambda f: f.uuid))
    if ff.source_ip:
        add(_match_ips(ff.source_ip, _src_ip, "source ip"))
    if ff.destination_ip:
        add(_match_ips(ff.destination_ip, _dst_ip, "destination ip"))
    if ff.source_pod:
        add(_match_names(ff.source_pod, lambda f: _pod(f.source), "source pod"))
    if ff.destination_pod:
        add(_match_names(ff.destination_pod, lambda f: _pod(f.destination), "destination pod"))
    if ff.source_service:
        add(_match_names(ff.source_service, lambda f: _svc(f, True), "source service"))
    if ff.destination_service:
        add(_match_names(ff.destination_service, lambda f: _svc(f, False), "destination service"))
    if ff.source_label:
        add(_match_labels(ff.source_label, lambda f: f.source))
    if ff.destination_label:
        add(_match_labels(ff.destination_label, lambda f: f.destination))
    if ff.source_workload:
        add(_match_workloads(ff.source_workload, lambda f: f.source))
    if ff.destination_workload:
        add(_match_workloads(ff.destination_workload, lambda f: f.destination))
    if ff.source_identity:
        add(_one_of(ff.source_identity, lambda f: f.source.identity if f.source else None))
    if ff.destination_identity:
        add(_one_of(
            ff.destination_identity, lambda f: f.destination.identity if f.destination else None
        ))
    if ff.source_spiffe_id:
        add(_one_of(ff.source_spiffe_id, lambda f: f.source.spiffe_id if f.source else None))
    if ff.destination_spiffe_id:
        add(_one_of(ff.destination_spiffe_id,
                    lambda f: f.destination.spiffe_id if f.destination else None))
    if ff.source_port:
        add(_match_ports(ff.source_port, 0, "source port"))
    if ff.destination_port:
        add(_match_ports(ff.destination_port, 1, "destination port"))
    if ff.protocol:
        add(_match_protocol(ff.protocol))
    if ff.tcp_flags:
        add(_match_tcp_flags(ff.tcp_flags))
    if ff.drop_reason_desc:
        add(_one_of(_drop_reasons(ff.drop_reason_desc), lambda f: f.drop_reason_desc))
    if ff.http_status_code:
        add(_match_http_status(ff.http_status_code))
    if ff.http_method:
        methods = frozenset(m.upper() for m in ff.http_method)
        add(lambda f: f.l7 is not None and f.l7.http is not None
            and f.l7.http.method.upper() in methods)
    if ff.http_path:
        add(_match_http_path(ff.http_path))
    try:
        if ff.http_url:
            add(match_http_url(ff.http_url))
        if ff.http_header:
            add(match_http_header(ff.http_header))
    except HttpFilterError as e:
        raise FilterError(str(e)) from None
    if ff.node_name:
        patterns = list(ff.node_name)
        add(lambda f: any(fnmatch.fnmatchcase(f.node_name, p) for p in patterns))
    if ff.traffic_direction:
        add(_one_of(_directions(ff.traffic_direction), lambda f: f.traffic_direction))
    if ff.reply:
        add(_one_of(ff.reply, lambda f: bool(f.is_reply)))
    if ff.ip_version:
        add(_one_of(_ip_versions(ff.ip_version), lambda f: f.ip.ip_version if f.ip else None))
    if ff.encrypted:
        add(_one_of(ff.encrypted, lambda f: f.ip is not None and f.ip.encrypted))
    checks.extend(_trace_checks(ff))

    if not checks:
        return lambda f: True
    if len(checks) == 1:
        return checks[0]
    return lambda f: all(c(f) for c in checks)


def _trace_checks(ff: FlowFilter) -> list[Predicate]:
    try:
        return [make(values) for values, make in (
            (ff.tcp_retransmits, tracefilters.match_retransmits),
            (ff.tcp_rtt_over, tracefilters.match_rtt_over),
            (ff.tcp_connect_over, tracefilters.match_connect_over),
        ) if values]
    except tracefilters.TraceFilterError as e:
        raise FilterError(str(e)) from None


def _svc(f: Flow, source: bool) -> tuple[str, str]:
    svc = f.source_service if source else f.destination_service
    return ("", "") if svc is None else (svc.namespace, svc.name)


def compile_filters(
    whitelist: Sequence[FlowFilter] = (), blacklist: Sequence[FlowFilter] = ()
) -> Predicate:
    """any(whitelist) and not any(blacklist); an empty whitelist accepts every flow."""
    allow = [compile_filter(ff) for ff in whitelist]
    deny = [compile_filter(ff) for ff in blacklist]
    if not allow and not deny:
        return lambda f: True
    if not deny:
        return lambda f: any(p(f) for p in allow)
    if not allow:
        return lambda f: not any(p(f) for p in deny)
    return lambda f: any(p(f) for p in allow) and not any(p(f) for p in deny)

