"""The CNI protocol as a plugin sees it (SPEC 1.0.0 and 1.1.0), pure: the environment, the
network configuration on stdin, the previous plugin's result and the error object.

Nothing here does I/O, so the conformance tests drive every path with plain dicts.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# 0.1.0/0.2.0 predate chaining (no prevResult), so a chained plugin cannot speak them.
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CURRENT_VERSION = "1.1.0"
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")

# Well-known error codes (SPEC "Error"); 100 and up are this plugin's own.
ERR_INCOMPATIBLE_VERSION = 1
ERR_UNSUPPORTED_FIELD = 2
ERR_UNKNOWN_CONTAINER = 3
ERR_INVALID_ENV = 4
ERR_IO = 5
ERR_DECODE = 6
ERR_INVALID_CONFIG = 7
ERR_TRY_AGAIN = 11
ERR_NOT_AVAILABLE = 50  # STATUS (1.1.0): the plugin cannot service ADD now
ERR_NO_HOST_VETH = 100  # the pod's interface is not a veth whose peer is in this namespace
ERR_CHECK_MISMATCH = 101  # CHECK: the record is missing or differs from the kernel's view
ERR_NOT_ATTACHED = 102  # CHECK: the agent has not marked the datapath attached

DEFAULT_STATE_DIR = "/var/run/tulle/cni"
DEFAULT_ATTACH_TIMEOUT = 10.0
CHAINING_MODE = "generic-veth"

# SPEC: a container ID starts alphanumeric, then alphanumerics, '_', '.', '-'; network names
# follow the same rule.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


class CniError(Exception):
    """A failure the runtime sees as the SPEC's error object on stdout, exit status 1."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(f"{msg}: {details}" if details else msg)
        self.code, self.msg, self.details = code, msg, details

    def to_json(self, cni_version: str = CURRENT_VERSION) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out


@dataclass(frozen=True, slots=True)
class Invocation:
    """The CNI_* environment of one call."""

    command: str
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: Mapping[str, str] = field(default_factory=dict)
    path: tuple[str, ...] = ()


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def version_at_least(version: str, minimum: str) -> bool:
    return _version_key(version) >= _version_key(minimum)


def parse_cni_args(text: str) -> dict[str, str]:
    """CNI_ARGS: ``K=V;K=V`` (the Kubernetes runtimes pass K8S_POD_NAMESPACE/NAME/UID)."""
    out: dict[str, str] = {}
    for part in text.split(";"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise CniError(ERR_INVALID_ENV, "invalid CNI_ARGS", f"{part!r} is not KEY=VALUE")
        out[key] = value
    return out


def _valid_ifname(name: str) -> bool:
    # SPEC "Parameters": not empty, not . or .., under 16 bytes, no '/', ':' or whitespace.
    return (
        0 < len(name.encode()) < 16
        and name not in (".", "..")
        and not any(c in "/:" or c.isspace() for c in name)
    )


# The variables each command needs (STATUS, GC and VERSION act on the network, not a pod).
_REQUIRED = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
}


def parse_env(env: Mapping[str, str]) -> Invocation:
    command = env.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CniError(
            ERR_INVALID_ENV,
            "unknown CNI_COMMAND" if command else "required env variables [CNI_COMMAND] missing",
            f"got {command!r}, want one of {', '.join(COMMANDS)}" if command else "",
        )
    missing = [v for v in _REQUIRED.get(command, ()) if not env.get(v)]
    if missing:
        raise CniError(ERR_INVALID_ENV, f"required env variables [{' '.join(missing)}] missing")
    cid, ifname = env.get("CNI_CONTAINERID", ""), env.get("CNI_IFNAME", "")
    if cid and not _ID.fullmatch(cid):
        raise CniError(ERR_INVALID_ENV, "invalid CNI_CONTAINERID", repr(cid))
    if ifname and not _valid_ifname(ifname):
        raise CniError(ERR_INVALID_ENV, "invalid CNI_IFNAME", repr(ifname))
    return Invocation(
        command=command,
        container_id=cid,
        netns=env.get("CNI_NETNS", ""),
        ifname=ifname,
        args=parse_cni_args(env.get("CNI_ARGS", "")),
        path=tuple(p for p in env.get("CNI_PATH", "").split(":") if p),
    )


@dataclass(frozen=True, slots=True)
class NetConf:
    """The network configuration on stdin, with the fields this plugin reads."""

    name: str
    cni_version: str
    type: str
    prev_result: Mapping[str, Any] | None
    state_dir: str = DEFAULT_STATE_DIR
    attach_timeout: float = DEFAULT_ATTACH_TIMEOUT  # 0: do not wait for the agent
    valid_attachments: tuple[tuple[str, str], ...] | None = None  # GC (1.1.0)
    raw: Mapping[str, Any] = field(default_factory=dict)


def decode_json(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CniError(ERR_DECODE, "failed to decode network configuration", str(err)) from None
    if not isinstance(doc, dict):
        raise CniError(ERR_DECODE, "network configuration is not a JSON object", type(doc).__name__)
    return doc


def config_version(doc: Mapping[str, Any]) -> str:
    """The config's cniVersion if this plugin speaks it, else the SPEC's error 1."""
    version = doc.get("cniVersion")
    if not isinstance(version, str) or version not in SUPPORTED_VERSIONS:
        raise CniError(
            ERR_INCOMPATIBLE_VERSION,
            "incompatible CNI versions",
            f"config is {version!r}, plugin supports {list(SUPPORTED_VERSIONS)}",
        )
    return version


def _str(doc: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str) or not value:
        raise CniError(
            ERR_INVALID_CONFIG, f"network configuration: {key!r} must be a string", f"got {value!r}"
        )
    return value


def _attachments(doc: Mapping[str, Any]) -> tuple[tuple[str, str], ...] | None:
    value = doc.get("cni.dev/valid-attachments")
    if value is None:
        return None
    bad = CniError(
        ERR_INVALID_CONFIG,
        "cni.dev/valid-attachments must be a list of {containerID, ifname}",
        repr(value)[:200],
    )
    if not isinstance(value, list):
        raise bad
    out = []
    for item in value:
        if not isinstance(item, dict):
            raise bad
        cid, ifname = item.get("containerID"), item.get("ifname")
        if not isinstance(cid, str) or not isinstance(ifname, str):
            raise bad
        out.append((cid, ifname))
    return tuple(out)


def parse_config(doc: Mapping[str, Any]) -> NetConf:
    """The network configuration (after ``config_version`` accepted its version)."""
    version = config_version(doc)
    name = _str(doc, "name")
    if not _ID.fullmatch(name):
        raise CniError(ERR_INVALID_CONFIG, "invalid network name", repr(name))
    mode = doc.get("chainingMode", CHAINING_MODE)
    if mode != CHAINING_MODE:  # SPEC: error 2 names the key and the value
        raise CniError(
            ERR_UNSUPPORTED_FIELD,
            f"unsupported field chainingMode={mode!r}",
            f"tulle-cni supports only {CHAINING_MODE!r}",
        )
    timeout = doc.get("attachTimeout", DEFAULT_ATTACH_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 <= timeout <= 600:
        raise CniError(
            ERR_INVALID_CONFIG, "attachTimeout must be seconds in [0, 600]", f"got {timeout!r}"
        )
    prev = doc.get("prevResult")
    if prev is not None and not isinstance(prev, dict):
        raise CniError(ERR_INVALID_CONFIG, "prevResult must be a JSON object", repr(prev)[:200])
    return NetConf(
        name=name,
        cni_version=version,
        type=_str(doc, "type"),
        prev_result=prev,
        state_dir=_str(doc, "stateDir", DEFAULT_STATE_DIR),
        attach_timeout=float(timeout),
        valid_attachments=_attachments(doc),
        raw=doc,
    )


@dataclass(frozen=True, slots=True)
class PrevResult:
    """What a chained plugin needs from the previous plugin's result."""

    interfaces: tuple[tuple[str, str], ...]  # (name, sandbox); sandbox "" for host interfaces
    ips: tuple[tuple[str, int | None], ...]  # (address/prefix, interface index or None)


def parse_prev_result(prev: Mapping[str, Any]) -> PrevResult:
    bad = "prevResult is not a CNI result"
    interfaces = prev.get("interfaces", [])
    ips = prev.get("ips", [])
    if not isinstance(interfaces, list) or not isinstance(ips, list):
        raise CniError(ERR_INVALID_CONFIG, bad, "interfaces and ips must be lists")
    ifs = []
    for item in interfaces:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise CniError(ERR_INVALID_CONFIG, bad, f"interface {item!r}")
        sandbox = item.get("sandbox") or ""
        ifs.append((item["name"], sandbox if isinstance(sandbox, str) else ""))
    addrs = []
    for item in ips:
        address = item.get("address") if isinstance(item, dict) else None
        index = item.get("interface") if isinstance(item, dict) else None
        try:
            ipaddress.ip_interface(address)  # type: ignore[arg-type]
        except ValueError:
            raise CniError(ERR_INVALID_CONFIG, bad, f"ip {item!r}") from None
        if index is not None and (
            isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(ifs)
        ):
            raise CniError(ERR_INVALID_CONFIG, bad, f"ip {item!r}: no interface {index!r}")
        addrs.append((str(address), index))
    return PrevResult(tuple(ifs), tuple(addrs))


def pod_ips(prev: PrevResult, ifname: str, netns: str) -> tuple[str, ...]:
    """The addresses the previous plugins gave the pod's interface: those whose ``interface``
    names it (in the pod's sandbox), and those naming no interface at all."""
    mine = {
        i
        for i, (name, sandbox) in enumerate(prev.interfaces)
        if name == ifname and (not sandbox or sandbox == netns)
    }
    return tuple(a for a, i in prev.ips if i is None or i in mine)


def pod_identity(args: Mapping[str, str]) -> tuple[str, str, str] | None:
    """(namespace, name, uid) from the Kubernetes CNI_ARGS, or None outside Kubernetes."""
    ns, name = args.get("K8S_POD_NAMESPACE", ""), args.get("K8S_POD_NAME", "")
    if not ns or not name:
        return None
    return ns, name, args.get("K8S_POD_UID", "")
