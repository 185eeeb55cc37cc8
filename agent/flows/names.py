"""Hubble's names for flow enums and monitor codes, in one table each.

Flows carry Hubble's enum names as strings (``"FORWARDED"``, ``"POLICY_DENIED"``,
``"TO_ENDPOINT"``), so that `-o json` output and jq scripts written for Hubble keep working.
This module maps those names to the numbers and short words Hubble's CLI prints and parses:
monitor message types (``trace``, ``drop``, ``l7``…), trace observation points
(``to-endpoint``…), drop reasons and reserved identities.
"""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    VERDICT_UNKNOWN = "VERDICT_UNKNOWN"
    FORWARDED = "FORWARDED"
    DROPPED = "DROPPED"
    ERROR = "ERROR"
    AUDIT = "AUDIT"
    REDIRECTED = "REDIRECTED"
    TRACED = "TRACED"
    TRANSLATED = "TRANSLATED"


class FlowType(StrEnum):
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    L3_L4 = "L3_L4"
    L7 = "L7"
    SOCK = "SOCK"


class TrafficDirection(StrEnum):
    TRAFFIC_DIRECTION_UNKNOWN = "TRAFFIC_DIRECTION_UNKNOWN"
    INGRESS = "INGRESS"
    EGRESS = "EGRESS"


class L7Type(StrEnum):
    UNKNOWN_L7_TYPE = "UNKNOWN_L7_TYPE"
    REQUEST = "REQUEST"
    RESPONSE = "RESPONSE"
    SAMPLE = "SAMPLE"


class IPVersion(StrEnum):
    IP_NOT_USED = "IP_NOT_USED"
    IPv4 = "IPv4"
    IPv6 = "IPv6"


class LostEventSource(StrEnum):
    UNKNOWN_LOST_EVENT_SOURCE = "UNKNOWN_LOST_EVENT_SOURCE"
    PERF_EVENT_RING_BUFFER = "PERF_EVENT_RING_BUFFER"
    OBSERVER_EVENTS_QUEUE = "OBSERVER_EVENTS_QUEUE"
    HUBBLE_RING_BUFFER = "HUBBLE_RING_BUFFER"


# Enum values that protobuf's JSON encoding omits (the zero value of each enum).
ENUM_ZERO = frozenset(
    {"VERDICT_UNKNOWN", "UNKNOWN_TYPE", "TRAFFIC_DIRECTION_UNKNOWN", "UNKNOWN_L7_TYPE",
     "IP_NOT_USED", "UNKNOWN_POINT", "DROP_REASON_UNKNOWN", ""}
)

# Numbers of each enum as in Hubble's flow.proto, for replaying JSON that used numbers.
VERDICT_NUMBERS = {v: i for i, v in enumerate(Verdict)}
FLOW_TYPE_NUMBERS = {v: i for i, v in enumerate(FlowType)}
DIRECTION_NUMBERS = {v: i for i, v in enumerate(TrafficDirection)}
L7_TYPE_NUMBERS = {v: i for i, v in enumerate(L7Type)}
IP_VERSION_NUMBERS = {v: i for i, v in enumerate(IPVersion)}

# -- monitor message types (CiliumEventType.type) --------------------------------------------
EVENT_DROP = 1
EVENT_DEBUG = 2
EVENT_CAPTURE = 3
EVENT_TRACE = 4
EVENT_POLICY_VERDICT = 5
EVENT_TRACE_SOCK = 7
EVENT_L7 = 129
EVENT_AGENT = 130

EVENT_TYPE_NAMES: dict[str, int] = {
    "drop": EVENT_DROP,
    "debug": EVENT_DEBUG,
    "capture": EVENT_CAPTURE,
    "trace": EVENT_TRACE,
    "policy-verdict": EVENT_POLICY_VERDICT,
    "trace-sock": EVENT_TRACE_SOCK,
    "l7": EVENT_L7,
    "agent": EVENT_AGENT,
}

# -- trace observation points: event sub type -> CLI word, and proto enum name ---------------
TRACE_POINTS: dict[int, tuple[str, str]] = {
    0: ("to-endpoint", "TO_ENDPOINT"),
    1: ("to-proxy", "TO_PROXY"),
    2: ("to-host", "TO_HOST"),
    3: ("to-stack", "TO_STACK"),
    4: ("to-overlay", "TO_OVERLAY"),
    5: ("from-endpoint", "FROM_ENDPOINT"),
    6: ("from-proxy", "FROM_PROXY"),
    7: ("from-host", "FROM_HOST"),
    8: ("from-stack", "FROM_STACK"),
    9: ("from-overlay", "FROM_OVERLAY"),
    10: ("from-network", "FROM_NETWORK"),
    11: ("to-network", "TO_NETWORK"),
    12: ("from-crypto", "FROM_CRYPTO"),
    13: ("to-crypto", "TO_CRYPTO"),
}
TRACE_POINT_BY_WORD = {word: sub for sub, (word, _) in TRACE_POINTS.items()}
TRACE_POINT_BY_ENUM = {enum: sub for sub, (_, enum) in TRACE_POINTS.items()}

# -- drop reasons: number -> Hubble's DropReason enum name -----------------------------------
DROP_REASONS: dict[int, str] = {
    130: "INVALID_SOURCE_MAC",
    131: "INVALID_DESTINATION_MAC",
    132: "INVALID_SOURCE_IP",
    133: "POLICY_DENIED",
    134: "INVALID_PACKET_DROPPED",
    135: "CT_TRUNCATED_OR_INVALID_HEADER",
    136: "CT_MISSING_TCP_ACK_FLAG",
    137: "CT_UNKNOWN_L4_PROTOCOL",
    138: "CT_CANNOT_CREATE_ENTRY_FROM_PACKET",
    139: "UNSUPPORTED_L3_PROTOCOL",
    140: "MISSED_TAIL_CALL",
    141: "ERROR_WRITING_TO_PACKET",
    142: "UNKNOWN_L4_PROTOCOL",
    143: "UNKNOWN_ICMPV4_CODE",
    144: "UNKNOWN_ICMPV4_TYPE",
    145: "UNKNOWN_ICMPV6_CODE",
    146: "UNKNOWN_ICMPV6_TYPE",
    150: "UNKNOWN_L3_TARGET_ADDRESS",
    151: "STALE_OR_UNROUTABLE_IP",
    152: "NO_MATCHING_LOCAL_CONTAINER_FOUND",
    153: "ERROR_WHILE_CORRECTING_L3_CHECKSUM",
    154: "ERROR_WHILE_CORRECTING_L4_CHECKSUM",
    155: "CT_MAP_INSERTION_FAILED",
    156: "INVALID_IPV6_EXTENSION_HEADER",
    157: "IP_FRAGMENTATION_NOT_SUPPORTED",
    158: "SERVICE_BACKEND_NOT_FOUND",
    161: "FAILED_TO_INSERT_INTO_PROXYMAP",
    163: "UNKNOWN_CONNECTION_TRACKING_STATE",
    164: "LOCAL_HOST_IS_UNREACHABLE",
    165: "NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION",
    166: "UNSUPPORTED_L2_PROTOCOL",
    167: "NO_MAPPING_FOR_NAT_MASQUERADE",
    168: "UNSUPPORTED_PROTOCOL_FOR_NAT_MASQUERADE",
    169: "FIB_LOOKUP_FAILED",
    171: "INVALID_IDENTITY",
    172: "UNKNOWN_SENDER",
    174: "IS_A_CLUSTERIP",
    177: "DENIED_BY_LB_SRC_RANGE_CHECK",
    178: "SOCKET_LOOKUP_FAILED",
    179: "SOCKET_ASSIGN_FAILED",
    180: "PROXY_REDIRECTION_NOT_SUPPORTED_FOR_PROTOCOL",
    181: "POLICY_DENY",
    184: "INVALID_TC_BUFFER",
    189: "AUTH_REQUIRED",
    190: "CT_NO_MAP_FOUND",
    196: "TTL_EXCEEDED",
    # Tulle's own (bpf/lib/drop.h): refused mTLS tunnels, reported by the waypoint
    242: "TUNNEL_DESTINATION_NOT_LOCAL",
    243: "TUNNEL_NO_CERTIFICATE",
    244: "TUNNEL_UPSTREAM_FAILED",
    251: "MTLS_UNKNOWN_CA",
    252: "MTLS_CERT_EXPIRED",
    253: "MTLS_WRONG_IDENTITY",
    254: "MTLS_HANDSHAKE_FAILED",
}
DROP_REASON_BY_NAME = {name: code for code, name in DROP_REASONS.items()}

# Short texts Hubble's CLI prints in the type column of drop flows; other reasons print
# their enum name in sentence case ("SERVICE_BACKEND_NOT_FOUND" -> "Service backend not found").
_DROP_TEXT = {
    "POLICY_DENIED": "Policy denied",
    "POLICY_DENY": "Policy denied by denylist",
    "INVALID_PACKET_DROPPED": "Invalid packet",
    "CT_TRUNCATED_OR_INVALID_HEADER": "CT: Truncated or invalid header",
    "CT_MISSING_TCP_ACK_FLAG": "CT: Missing TCP ACK flag",
    "CT_UNKNOWN_L4_PROTOCOL": "CT: Unknown L4 protocol",
    "CT_MAP_INSERTION_FAILED": "CT: Map insertion failed",
    "STALE_OR_UNROUTABLE_IP": "Stale or unroutable IP",
    "TTL_EXCEEDED": "TTL exceeded",
    "AUTH_REQUIRED": "Authentication required",
    "TUNNEL_DESTINATION_NOT_LOCAL": "Tunnel destination not local",
    "TUNNEL_NO_CERTIFICATE": "Tunnel without certificate",
    "TUNNEL_UPSTREAM_FAILED": "Tunnel upstream failed",
    "MTLS_UNKNOWN_CA": "mTLS unknown CA",
    "MTLS_CERT_EXPIRED": "mTLS certificate expired",
    "MTLS_WRONG_IDENTITY": "mTLS wrong identity",
    "MTLS_HANDSHAKE_FAILED": "mTLS handshake failed",
}


def drop_reason_text(name: str) -> str:
    """The human text for a drop reason name, as Hubble's compact output shows it."""
    if not name:
        return "Unknown drop reason"
    return _DROP_TEXT.get(name) or name.replace("_", " ").capitalize()


# -- policy match types (policy-verdict events) ----------------------------------------------
POLICY_MATCH_TYPES = {
    0: "none", 1: "L3-Only", 2: "L3-L4", 3: "L4-Only", 4: "all", 5: "L3-Proto", 6: "Proto-Only",
}

# -- reserved security identities ------------------------------------------------------------
IDENTITY_HOST = 1
IDENTITY_WORLD = 2
IDENTITY_REMOTE_NODE = 6
RESERVED_IDENTITIES: dict[int, str] = {
    1: "host",
    2: "world",
    3: "unmanaged",
    4: "health",
    5: "init",
    6: "remote-node",
    7: "kube-apiserver",
    8: "ingress",
    9: "world-ipv4",
    10: "world-ipv6",
}

TCP_FLAG_NAMES = ("SYN", "ACK", "RST", "FIN", "PSH", "URG", "ECE", "CWR", "NS")
