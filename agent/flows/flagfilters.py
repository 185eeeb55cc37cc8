"""From `tulle observe` filter flags, in command-line order, to allow and deny lists.

This is Hubble's CLI filter tracker: a flag without direction (``--pod``, ``--ip``,
``--label``, ``--service``, ``--port``, ``--namespace``) matches either side of a flow, so
it produces two filters, one on the source and one on the destination, that are OR-ed.
Directional flags (``--from-pod``, ``--to-port``…) and plain ones (``--verdict``,
``--protocol``…) apply to both. ``--not`` sends only the next filter flag to the deny list.

    b = FilterBuilder()
    for flag, value in [("pod", "shop/web"), ("not", None), ("verdict", "DROPPED")]:
        b.add(flag, value)
    allow, deny = b.build()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.flows.filters import EventTypeFilter, FilterError, FlowFilter
from agent.flows.flow import TCPFlags
from agent.flows.names import (
    DROP_REASON_BY_NAME,
    EVENT_DROP,
    EVENT_TRACE,
    EVENT_TYPE_NAMES,
    RESERVED_IDENTITIES,
    TRACE_POINT_BY_WORD,
)
from identity.spiffe import SpiffeId, SpiffeIdError

# Flags whose single value splits into a source filter OR a destination filter.
_EITHER = {
    "pod": ("source_pod", "destination_pod"),
    "ip": ("source_ip", "destination_ip"),
    "label": ("source_label", "destination_label"),
    "service": ("source_service", "destination_service"),
    "port": ("source_port", "destination_port"),
    "identity": ("source_identity", "destination_identity"),
    "workload": ("source_workload", "destination_workload"),
}
# Flags that add a value to one field of every filter.
_BOTH = {
    "from-pod": "source_pod", "to-pod": "destination_pod",
    "from-ip": "source_ip", "to-ip": "destination_ip",
    "from-label": "source_label", "to-label": "destination_label",
    "from-service": "source_service", "to-service": "destination_service",
    "from-port": "source_port", "to-port": "destination_port",
    "from-identity": "source_identity", "to-identity": "destination_identity",
    "from-workload": "source_workload", "to-workload": "destination_workload",
    "ip-version": "ip_version", "http-url": "http_url", "http-header": "http_header",
    "protocol": "protocol", "verdict": "verdict", "drop-reason-desc": "drop_reason_desc",
    "http-status": "http_status_code", "http-method": "http_method", "http-path": "http_path",
    "node-name": "node_name", "traffic-direction": "traffic_direction", "uuid": "uuid",
    "tcp-flags": "tcp_flags", "type": "event_type",
    "retransmits": "tcp_retransmits", "rtt-over": "tcp_rtt_over",
    "connect-over": "tcp_connect_over",
    "encrypted": "encrypted", "unencrypted": "encrypted",
}
NAMESPACE_FLAGS = ("namespace", "from-namespace", "to-namespace", "all-namespaces")
FILTER_FLAGS = frozenset(_EITHER) | frozenset(_BOTH) | frozenset(NAMESPACE_FLAGS)

# Pairs of flags that cannot be combined in one list (Hubble's conflict groups).
_CONFLICTS = [
    {"from-ip", "ip", "from-namespace", "namespace"},
    {"from-ip", "ip", "from-pod", "pod"},
    {"to-ip", "ip", "to-namespace", "namespace"},
    {"to-ip", "ip", "to-pod", "pod"},
    {"to-pod", "namespace"}, {"from-pod", "namespace"},
    {"to-service", "namespace"}, {"from-service", "namespace"},
    {"label", "from-label"}, {"label", "to-label"},
    {"service", "from-service"}, {"service", "to-service"},
    {"port", "to-port"}, {"port", "from-port"},
    {"identity", "to-identity"}, {"identity", "from-identity"},
    {"workload", "to-workload"}, {"workload", "from-workload"},
    {"all-namespaces", "namespace"}, {"all-namespaces", "from-namespace"},
    {"all-namespaces", "to-namespace"},
]


def parse_event_type(value: str) -> EventTypeFilter:
    """ "trace", "trace:to-endpoint", "drop", "drop:POLICY_DENIED", "l7", "129", "4:0"."""
    name, _, sub = value.partition(":")
    if name in EVENT_TYPE_NAMES:
        type_ = EVENT_TYPE_NAMES[name]
    elif name.isdigit():
        type_ = int(name)
    else:
        known = ", ".join(EVENT_TYPE_NAMES)
        raise FilterError(f"type: unknown {name!r} (known: {known}, or a number)")
    if not sub:
        return EventTypeFilter(type_)
    if type_ == EVENT_TRACE and sub in TRACE_POINT_BY_WORD:
        return EventTypeFilter(type_, TRACE_POINT_BY_WORD[sub])
    if type_ == EVENT_DROP and sub.upper() in DROP_REASON_BY_NAME:
        return EventTypeFilter(type_, DROP_REASON_BY_NAME[sub.upper()])
    if sub.isdigit():
        return EventTypeFilter(type_, int(sub))
    raise FilterError(f"type: unknown sub type {sub!r} of {name!r}")


def _identity(value: str) -> int | str:
    """A datapath identity (a number or reserved name, as Hubble's) or, Tulle's, a workload's
    SPIFFE ID (a str, matched exactly: `_Tracker.add` files it under the *_spiffe_id field)."""
    if value.isdigit():
        return int(value)
    for number, name in RESERVED_IDENTITIES.items():
        if name == value:
            return number
    if value.lower().startswith("spiffe:"):
        try:
            return str(SpiffeId.parse(value))
        except SpiffeIdError as e:
            raise FilterError(f"identity: {value!r} is not a SPIFFE ID: {e}") from None
    raise FilterError(f"identity: {value!r}, expected a number, one of "
                      f"{', '.join(RESERVED_IDENTITIES.values())}, or a SPIFFE ID "
                      "(spiffe://cluster.local/ns/NAMESPACE/sa/SERVICE-ACCOUNT)")


def _field(name: str, value: Any) -> str:
    """The FlowFilter field for a value: identity flags take numbers and SPIFFE IDs."""
    if name.endswith("_identity") and isinstance(value, str):
        return name.removesuffix("_identity") + "_spiffe_id"
    return name


def parse_workload(value: str) -> tuple[str, str]:
    """Hubble's ``[kind/]name``: "Deployment/web" or "web" (any kind)."""
    kind, sep, name = value.partition("/")
    if not sep:
        kind, name = "", value
    if not name or "/" in name:
        raise FilterError(f"workload: {value!r}, expected [kind/]name (Deployment/web)")
    return kind, name


def parse_header(value: str) -> tuple[str, str]:
    """Hubble's ``--http-header key:value``."""
    key, sep, val = value.partition(":")
    if not sep or not key.strip():
        raise FilterError(f"http-header: {value!r}, expected key:value (x-user:alice)")
    return key.strip(), val.strip()


_TRUE = frozenset({"1", "t", "true"})
_FALSE = frozenset({"0", "f", "false"})


def parse_bool(flag: str, value: str) -> bool:
    """Hubble's ``--encrypted[=BOOL]`` values (Go's strconv.ParseBool spellings)."""
    word = value.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise FilterError(f"{flag}: {value!r}, expected true or false")


def _value(flag: str, value: str) -> Any:
    if flag == "encrypted":
        return parse_bool(flag, value)
    if flag == "unencrypted":  # --unencrypted: IP.encrypted false (=false: true)
        return not parse_bool(flag, value)
    if flag.endswith("workload"):
        return parse_workload(value)
    if flag == "http-header":
        return parse_header(value)
    if flag == "tcp-flags":
        try:
            return TCPFlags.of(*value.split(","))
        except ValueError as e:
            raise FilterError(f"tcp-flags: {e}") from None
    if flag == "type":
        return parse_event_type(value)
    if flag.endswith("identity"):
        return _identity(value)
    return value


@dataclass
class _Tracker:
    """One list (allow or deny) under construction: `left OR right`."""

    left: dict[str, list[Any]] | None = None
    right: dict[str, list[Any]] | None = None
    ns: list[str] = field(default_factory=list)
    src_ns: list[str] = field(default_factory=list)
    dst_ns: list[str] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)

    def _side(self, which: str) -> dict[str, list[Any]]:
        if which == "left":
            self.left = self.left if self.left is not None else {}
            return self.left
        self.right = self.right if self.right is not None else {}
        return self.right

    def add(self, flag: str, value: str | None) -> None:
        self.changed.add(flag)
        for group in _CONFLICTS:
            if flag in group:
                clash = sorted((group - {flag}) & self.changed)
                if clash:
                    raise FilterError(f"filters --{flag} and --{clash[0]} cannot be combined")
        if flag == "all-namespaces":
            return
        if value is None:
            raise FilterError(f"--{flag} needs a value")
        if flag == "namespace":
            self.ns.append(value)
        elif flag == "from-namespace":
            self.src_ns.append(value)
        elif flag == "to-namespace":
            self.dst_ns.append(value)
        elif flag in _EITHER:
            src, dst = _EITHER[flag]
            v = _value(flag, value)
            self._side("left").setdefault(_field(src, v), []).append(v)
            self._side("right").setdefault(_field(dst, v), []).append(v)
        elif flag in _BOTH:
            v = _value(flag, value)
            name = _field(_BOTH[flag], v)
            for side in ("left", "right"):
                self._side(side).setdefault(name, []).append(v)
        else:
            raise FilterError(f"--{flag} is not a filter flag")

    def build(self) -> list[FlowFilter]:
        if self.left is None and self.right is None and not (self.ns or self.src_ns or self.dst_ns):
            return []
        left, right = self._side("left"), self._side("right")
        for side in (left, right):
            if self.dst_ns:
                _apply_ns(side, self.dst_ns, "destination")
            if self.src_ns:
                _apply_ns(side, self.src_ns, "source")
        if self.ns:
            _apply_ns(left, self.ns, "source")
            _apply_ns(right, self.ns, "destination")
        filters = [_freeze(left), _freeze(right)]
        return filters[:1] if filters[0] == filters[1] else filters


def _apply_ns(side: dict[str, list[Any]], namespaces: list[str], which: str) -> None:
    """Qualify the side's pod and service names with namespaces (Hubble's namespaceModifier)."""
    pods, svcs = f"{which}_pod", f"{which}_service"
    if not side.get(pods) and not side.get(svcs):
        side[pods] = [""]
    for key in (pods, svcs):
        qualified: list[str] = []
        for name in side.get(key) or ():
            if "/" in name:
                qualified.append(name)
            else:
                qualified.extend(f"{ns}/{name}" for ns in namespaces)
        if qualified:
            side[key] = qualified


def _freeze(side: dict[str, list[Any]]) -> FlowFilter:
    return FlowFilter(**{k: tuple(v) for k, v in side.items()})


class FilterBuilder:
    """Collects filter flags in command-line order; `--not` negates the next one."""

    def __init__(self) -> None:
        self._allow = _Tracker()
        self._deny = _Tracker()
        self._negate = False

    def add(self, flag: str, value: str | None = None) -> None:
        if flag == "not":
            if self._negate:
                raise FilterError("consecutive --not flags")
            self._negate = True
            return
        tracker = self._deny if self._negate else self._allow
        self._negate = False
        tracker.add(flag, value)

    def build(self) -> tuple[list[FlowFilter], list[FlowFilter]]:
        """(allow list, deny list)."""
        if self._negate:
            raise FilterError("--not must be followed by a filter flag")
        return self._allow.build(), self._deny.build()
