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
from collections.abc import Sequence
from dataclasses import dataclass, fields

from agent.flows import tracefilters
from agent.flows.fieldmatch import (
    EventTypeFilter,
    FilterError,
    Predicate,
    directions,
    drop_reasons,
    dst_ip,
    ip_versions,
    match_event_type,
    match_http_path,
    match_http_status,
    match_ips,
    match_labels,
    match_names,
    match_ports,
    match_protocol,
    match_tcp_flags,
    match_workloads,
    one_of,
    pod_ref,
    service_ref,
    src_ip,
    verdicts,
)
from agent.flows.flow import TCPFlags
from agent.flows.httpfilters import HttpFilterError, match_http_header, match_http_url

__all__ = ["EventTypeFilter", "FilterError", "FlowFilter", "compile_filter", "compile_filters"]


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


# -- compilation ---------------------------------------------------------------------------


def compile_filter(ff: FlowFilter) -> Predicate:
    """One filter as a predicate; raises FilterError naming a bad value."""
    checks: list[Predicate] = []
    add = checks.append
    if ff.event_type:  # cheapest and most selective first, as Hubble orders it
        add(match_event_type(ff.event_type))
    if ff.verdict:
        add(one_of(verdicts(ff.verdict), lambda f: f.verdict))
    if ff.uuid:
        add(one_of(ff.uuid, lambda f: f.uuid))
    if ff.source_ip:
        add(match_ips(ff.source_ip, src_ip, "source ip"))
    if ff.destination_ip:
        add(match_ips(ff.destination_ip, dst_ip, "destination ip"))
    if ff.source_pod:
        add(match_names(ff.source_pod, lambda f: pod_ref(f.source), "source pod"))
    if ff.destination_pod:
        add(match_names(ff.destination_pod, lambda f: pod_ref(f.destination), "destination pod"))
    if ff.source_service:
        add(match_names(ff.source_service, lambda f: service_ref(f, True), "source service"))
    if ff.destination_service:
        add(match_names(ff.destination_service, lambda f: service_ref(f, False),
                        "destination service"))
    if ff.source_label:
        add(match_labels(ff.source_label, lambda f: f.source))
    if ff.destination_label:
        add(match_labels(ff.destination_label, lambda f: f.destination))
    if ff.source_workload:
        add(match_workloads(ff.source_workload, lambda f: f.source))
    if ff.destination_workload:
        add(match_workloads(ff.destination_workload, lambda f: f.destination))
    if ff.source_identity:
        add(one_of(ff.source_identity, lambda f: f.source.identity if f.source else None))
    if ff.destination_identity:
        add(one_of(
            ff.destination_identity, lambda f: f.destination.identity if f.destination else None
        ))
    if ff.source_spiffe_id:
        add(one_of(ff.source_spiffe_id, lambda f: f.source.spiffe_id if f.source else None))
    if ff.destination_spiffe_id:
        add(one_of(ff.destination_spiffe_id,
                    lambda f: f.destination.spiffe_id if f.destination else None))
    if ff.source_port:
        add(match_ports(ff.source_port, 0, "source port"))
    if ff.destination_port:
        add(match_ports(ff.destination_port, 1, "destination port"))
    if ff.protocol:
        add(match_protocol(ff.protocol))
    if ff.tcp_flags:
        add(match_tcp_flags(ff.tcp_flags))
    if ff.drop_reason_desc:
        add(one_of(drop_reasons(ff.drop_reason_desc), lambda f: f.drop_reason_desc))
    if ff.http_status_code:
        add(match_http_status(ff.http_status_code))
    if ff.http_method:
        methods = frozenset(m.upper() for m in ff.http_method)
        add(lambda f: f.l7 is not None and f.l7.http is not None
            and f.l7.http.method.upper() in methods)
    if ff.http_path:
        add(match_http_path(ff.http_path))
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
        add(one_of(directions(ff.traffic_direction), lambda f: f.traffic_direction))
    if ff.reply:
        add(one_of(ff.reply, lambda f: bool(f.is_reply)))
    if ff.ip_version:
        add(one_of(ip_versions(ff.ip_version), lambda f: f.ip.ip_version if f.ip else None))
    if ff.encrypted:
        add(one_of(ff.encrypted, lambda f: f.ip is not None and f.ip.encrypted))
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

