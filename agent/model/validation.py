"""Format checks shared by the converters.

Every check takes a value and returns ``None`` when it is valid or a short message
saying what is wrong. The rules are those of Kubernetes apimachinery validation and of
the Gateway API CRD schemas; messages quote the offending value.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from collections.abc import Callable

from agent.model.regex import regex_problem
from agent.model.tokens import TCHAR

Check = Callable[[str], str | None]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_HTTP_TOKEN = re.compile(f"^[{TCHAR}]+$")
_GW_GROUP = re.compile(r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_GW_KIND = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
_CONTROLLER_NAME = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
    r"/[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$"
)
_NOT_FIELD_VALUE = re.compile(r"[^\t\x20-\x7e]")
_PATH_CHARS = re.compile(r"^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})+$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_CONDITION_TYPE = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)


def quote(value: object) -> str:
    """Quote a value for an error message the way Kubernetes does: as JSON."""
    return json.dumps(value, ensure_ascii=False)


def one_of(*allowed: str) -> Check:
    """A check accepting only the given strings."""

    def check(value: str) -> str | None:
        if value in allowed:
            return None
        return f"unsupported value {quote(value)} (supported: {', '.join(allowed)})"

    return check


def _bad(value: str, why: str) -> str:
    return f"invalid value {quote(value)}: {why}"


def dns1123_label(value: str) -> str | None:
    """A namespace or port name: at most 63 lowercase alphanumerics or '-'."""
    if len(value) > 63:
        return _bad(value, "must be no more than 63 characters")
    if not _DNS1123_LABEL.fullmatch(value):
        return _bad(
            value,
            "must be a lowercase RFC 1123 label (lowercase alphanumerics or '-', "
            "starting and ending with an alphanumeric)",
        )
    return None


def dns1123_subdomain(value: str) -> str | None:
    """Most object names: dot-separated RFC 1123 labels, at most 253 characters."""
    if len(value) > 253:
        return _bad(value, "must be no more than 253 characters")
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        return _bad(
            value,
            "must be a lowercase RFC 1123 subdomain (lowercase alphanumerics, '-' or '.', "
            "starting and ending with an alphanumeric)",
        )
    return None


def dns1035_label(value: str) -> str | None:
    """A Service name: like an RFC 1123 label but starting with a letter."""
    if len(value) > 63:
        return _bad(value, "must be no more than 63 characters")
    if not _DNS1035_LABEL.fullmatch(value):
        return _bad(
            value,
            "must be an RFC 1035 label (lowercase alphanumerics or '-', starting with a "
            "letter and ending with an alphanumeric)",
        )
    return None


def qualified_name(value: str) -> str | None:
    """A label or annotation key: optional DNS subdomain prefix and '/', then a name."""
    prefix, slash, name = value.rpartition("/")
    if slash and (not prefix or dns1123_subdomain(prefix) is not None):
        return _bad(value, "prefix before '/' must be a lowercase RFC 1123 subdomain")
    if not name or len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        return _bad(
            value,
            "name part must be at most 63 alphanumerics, '-', '_' or '.', "
            "starting and ending with an alphanumeric",
        )
    return None


def label_value(value: str) -> str | None:
    """A label value: empty, or at most 63 alphanumerics, '-', '_' or '.'."""
    if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
        return _bad(
            value,
            "a label value must be empty or at most 63 alphanumerics, '-', '_' or '.', "
            "starting and ending with an alphanumeric",
        )
    return None


def iana_svc_name(value: str) -> str | None:
    """A named port: at most 15 lowercase alphanumerics or '-', with at least one letter."""
    if len(value) > 15:
        return _bad(value, "a port name must be no more than 15 characters")
    if not _IANA_SVC_NAME.fullmatch(value) or "--" in value:
        return _bad(
            value,
            "a port name must be lowercase alphanumerics or '-', must not start or end "
            "with '-' and must not contain '--'",
        )
    if not any(c.isalpha() for c in value):
        return _bad(value, "a port name must contain at least one letter")
    return None


def hostname(value: str) -> str | None:
    """A Gateway API Hostname: an RFC 1123 name, optionally prefixed with '*.'; no IPs."""
    if len(value) > 253 or not _HOSTNAME.fullmatch(value):
        return _bad(value, "must be a lowercase RFC 1123 hostname, optionally prefixed by '*.'")
    if ip_address(value) is None:
        return _bad(value, "must be a hostname, not an IP address")
    return None


def precise_hostname(value: str) -> str | None:
    """A Gateway API PreciseHostname: a hostname without a wildcard."""
    if value.startswith("*"):
        return _bad(value, "wildcards are not allowed here")
    return hostname(value)


def http_token(value: str) -> str | None:
    """An HTTP header or query parameter name (an RFC 7230 token, 1..256 characters)."""
    if len(value) > 256 or not _HTTP_TOKEN.fullmatch(value):
        return _bad(value, "must be a valid HTTP header name (RFC 7230 token characters)")
    return None


def gateway_group(value: str) -> str | None:
    """An API group in a Gateway API reference; "" is the core group."""
    if len(value) > 253 or not _GW_GROUP.fullmatch(value):
        return _bad(value, "must be an API group (an RFC 1123 subdomain, or empty for core)")
    return None


def gateway_kind(value: str) -> str | None:
    """A Kind in a Gateway API reference."""
    if not value or len(value) > 63 or not _GW_KIND.fullmatch(value):
        return _bad(value, "must be a Kind (letters, digits and '-', starting with a letter)")
    return None


def object_name(value: str) -> str | None:
    """A Gateway API ObjectName: 1..253 characters."""
    if not value or len(value) > 253:
        return _bad(value, "must be 1 to 253 characters")
    return None


def section_name(value: str) -> str | None:
    """A Gateway API SectionName (listener or rule name)."""
    return dns1123_subdomain(value)


def controller_name(value: str) -> str | None:
    """A GatewayClass controllerName: a domain-prefixed path such as example.net/gateway."""
    if len(value) > 253 or not _CONTROLLER_NAME.fullmatch(value):
        return _bad(value, "must be a domain-prefixed path, such as example.net/gateway")
    return None


def config_key(value: str) -> str | None:
    """A Secret or ConfigMap data key."""
    if len(value) > 253 or not _CONFIG_KEY.fullmatch(value):
        return _bad(value, "a data key must consist of alphanumerics, '-', '_' or '.'")
    if value.startswith(".."):  # a file name in a volume: never the volume or its parent
        return _bad(value, "must not be '..' or start with '..'")
    if value == ".":
        return _bad(value, "must not be '.'")
    return None


def condition_type(value: str) -> str | None:
    """A metav1.Condition type such as Accepted or example.com/Ready."""
    if len(value) > 316 or not _CONDITION_TYPE.fullmatch(value):
        return _bad(value, "must be a condition type such as 'Accepted'")
    return None


def ip_address(value: str) -> str | None:
    """An IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return _bad(value, "must be a valid IP address")
    return None


def ipv4_address(value: str) -> str | None:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return _bad(value, "must be a valid IPv4 address")
    return None


def ipv6_address(value: str) -> str | None:
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return _bad(value, "must be a valid IPv6 address")
    return None


def special_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Kubernetes' ValidateNonSpecialIP: an endpoint never names the node's own loopback,
    an unspecified or a link-local address (a proxy on the node would dial itself)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # as Go's net.IP does
    if address.is_unspecified:
        return "may not be unspecified (0.0.0.0, ::)"
    if address.is_loopback:
        return "may not be in the loopback range (127.0.0.0/8, ::1/128)"
    if address.is_link_local:
        return "may not be in the link-local range (169.254.0.0/16, fe80::/10)"
    if (
        address in _LINK_LOCAL_MULTICAST_V4
        if isinstance(address, ipaddress.IPv4Address)
        else address.is_multicast and address.packed[1] & 0x0F == 2
    ):
        return "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"
    return None


_LINK_LOCAL_MULTICAST_V4 = ipaddress.IPv4Network("224.0.0.0/24")


# The first octets of every special IPv4 range (``special_address``): an address starting
# with any other octet is not special, which lets a valid dotted quad skip the full check.
SPECIAL_V4_FIRST_OCTETS = frozenset({0, 127, 169, 224})


def endpoint_ipv4(value: str) -> str | None:
    """An EndpointSlice IPv4 address: valid and not special (see ``special_address``)."""
    try:
        packed = socket.inet_pton(socket.AF_INET, value)
    except (OSError, ValueError):
        packed = b""
    # Fast path (a cluster has 100,000s of endpoints): glibc's inet_pton takes exactly the
    # dotted quads ipaddress does.
    if packed and packed[0] not in SPECIAL_V4_FIRST_OCTETS:
        return None
    problem = ipv4_address(value)
    if problem is None:
        why = special_address(ipaddress.IPv4Address(value))
        problem = None if why is None else _bad(value, why)
    return problem


def endpoint_ipv6(value: str) -> str | None:
    """An EndpointSlice IPv6 address: valid and not special (see ``special_address``)."""
    problem = ipv6_address(value)
    if problem is None:
        why = special_address(ipaddress.IPv6Address(value))
        problem = None if why is None else _bad(value, why)
    return problem


def cidr(value: str) -> str | None:
    """An IPv4 or IPv6 CIDR such as 10.0.0.0/8 (host bits may be set, as Kubernetes allows)."""
    if "/" not in value:
        return _bad(value, "must be a valid CIDR such as 10.0.0.0/8")
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return _bad(value, "must be a valid CIDR such as 10.0.0.0/8")
    return None


def regular_expression(value: str) -> str | None:
    """A regular expression that RE2 accepts: matching is linear in the input, see
    ``agent.model.regex`` (no backreferences or lookarounds, at most 1024 bytes)."""
    problem = regex_problem(value)
    if problem is None:
        return None
    shown = value if len(value) <= 80 else value[:77] + "..."
    return _bad(shown, f"regular expression {problem}")


def header_value(value: str) -> str | None:
    """An HTTP field value that a route puts on the wire (RFC 9110 section 5.5): visible
    ASCII, spaces and tabs, no leading or trailing whitespace. CR, LF, NUL and the other
    control characters would end the field or the head early (header injection)."""
    bad = _NOT_FIELD_VALUE.search(value)
    if bad is not None:
        char = bad.group()
        what = "a control character" if char < " " or char == "\x7f" else "a non-ASCII character"
        return _bad(value, f"must not contain {what} ({quote(char)} at offset {bad.start()})")
    if value != value.strip(" \t"):
        return _bad(value, "must not begin or end with whitespace")
    return None


def http_path(value: str) -> str | None:
    """An absolute path that a route matches or writes (RFC 3986 path-absolute, plus the
    Gateway API's rules for HTTPPathMatch): no "//", dot segments, encoded slashes or
    backslashes, or fragment; only path characters and well-formed %XX escapes."""
    if not value.startswith("/"):
        return _bad(value, 'must be an absolute path and start with "/"')
    lowered = value.lower()
    for bad in ("//", "/./", "/../", "%2f", "%5c", "#"):
        if bad in lowered:
            return _bad(value, f"must not contain {quote(bad.upper() if '%' in bad else bad)}")
    for bad in ("/..", "/."):
        if value.endswith(bad):
            return _bad(value, f"must not end with {quote(bad)}")
    if not _PATH_CHARS.fullmatch(value):
        return _bad(value, "must only contain valid path characters (RFC 3986)")
    return None
