"""The node-local CNI state directory: the plugin writes it, the node agent reads it (pure).

Layout (one definition, read by ``agent.cni.registry`` and written by ``cni.store``)::

    <stateDir>/endpoints/<key>.json   one pod attachment: the plugin writes it on ADD and
                                      removes it on DEL/GC
    <stateDir>/attached/<key>.json    the agent's answer: "the datapath polices this host
                                      interface"; the plugin's ADD waits for it
    <stateDir>/agent.json             the agent is up and reads this directory (STATUS)

``<key>`` is ``<network>:<containerID>:<ifname>`` (SPEC: state is keyed by these three, and
none of them may hold ':' or '/'), or a digest when that would not fit a file name.
Every file is written whole by rename, so a reader never sees half a file.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCHEMA = 1
ENDPOINTS_DIR = "endpoints"
ATTACHED_DIR = "attached"
AGENT_FILE = "agent.json"
_MAX_NAME = 200  # file names stop at 255 bytes; leave room for ".json" and temp suffixes


class RecordError(ValueError):
    """A state file that is not a record of this schema."""


def record_key(network: str, container_id: str, ifname: str) -> str:
    key = f"{network}:{container_id}:{ifname}"
    if len(key.encode()) > _MAX_NAME:
        import hashlib  # rare (IDs are 64 characters in practice): keep it off the start path

        return hashlib.sha256(key.encode()).hexdigest()
    return key


@dataclass(frozen=True, slots=True)
class PodRef:
    namespace: str
    name: str
    uid: str  # "" when the runtime did not pass K8S_POD_UID


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    """One pod attachment, as the plugin found it after the cluster's CNI ran."""

    network: str
    container_id: str
    ifname: str  # inside the pod
    netns: str  # CNI_NETNS
    pod: PodRef | None  # None outside Kubernetes (no K8S_POD_* in CNI_ARGS)
    ips: tuple[str, ...]  # "address/prefix", as the previous plugins assigned them
    host_ifname: str  # the host-side veth peer the datapath attaches to
    host_ifindex: int

    @property
    def key(self) -> str:
        return record_key(self.network, self.container_id, self.ifname)


@dataclass(frozen=True, slots=True)
class AttachMark:
    """The agent's answer to a record: its programs are attached to ``host_ifindex``."""

    network: str
    container_id: str
    ifname: str
    host_ifindex: int

    @property
    def key(self) -> str:
        return record_key(self.network, self.container_id, self.ifname)


def encode_record(rec: EndpointRecord) -> bytes:
    pod = (
        None
        if rec.pod is None
        else {"namespace": rec.pod.namespace, "name": rec.pod.name, "uid": rec.pod.uid}
    )
    doc = {
        "schema": SCHEMA,
        "network": rec.network,
        "containerID": rec.container_id,
        "ifname": rec.ifname,
        "netns": rec.netns,
        "pod": pod,
        "ips": list(rec.ips),
        "host": {"ifname": rec.host_ifname, "ifindex": rec.host_ifindex},
    }
    return json.dumps(doc, indent=2, sort_keys=True).encode()


def encode_mark(mark: AttachMark) -> bytes:
    doc = {
        "schema": SCHEMA,
        "network": mark.network,
        "containerID": mark.container_id,
        "ifname": mark.ifname,
        "hostIfindex": mark.host_ifindex,
    }
    return json.dumps(doc, sort_keys=True).encode()


def _load(data: bytes) -> Mapping[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecordError(f"not JSON: {err}") from None
    if not isinstance(doc, dict):
        raise RecordError("not a JSON object")
    if doc.get("schema") != SCHEMA:
        raise RecordError(f"schema {doc.get('schema')!r}, this reader knows {SCHEMA}")
    return doc


def _field(doc: Mapping[str, Any], key: str, kind: type) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise RecordError(f"{key!r} must be {kind.__name__}, got {value!r}")
    return value


def decode_record(data: bytes) -> EndpointRecord:
    doc = _load(data)
    pod_doc = doc.get("pod")
    pod = None
    if pod_doc is not None:
        if not isinstance(pod_doc, dict):
            raise RecordError(f"'pod' must be an object or null, got {pod_doc!r}")
        pod = PodRef(
            _field(pod_doc, "namespace", str),
            _field(pod_doc, "name", str),
            _field(pod_doc, "uid", str),
        )
    ips = _field(doc, "ips", list)
    if not all(isinstance(ip, str) for ip in ips):
        raise RecordError(f"'ips' must be strings, got {ips!r}")
    for ip in ips:  # the agent indexes pods by them: a bad one is a damaged record
        try:
            ipaddress.ip_interface(ip)
        except ValueError:
            raise RecordError(f"'ips' holds {ip!r}, not an address/prefix") from None
    host = _field(doc, "host", dict)
    return EndpointRecord(
        network=_field(doc, "network", str),
        container_id=_field(doc, "containerID", str),
        ifname=_field(doc, "ifname", str),
        netns=_field(doc, "netns", str),
        pod=pod,
        ips=tuple(ips),
        host_ifname=_field(host, "ifname", str),
        host_ifindex=_field(host, "ifindex", int),
    )


def decode_mark(data: bytes) -> AttachMark:
    doc = _load(data)
    return AttachMark(
        network=_field(doc, "network", str),
        container_id=_field(doc, "containerID", str),
        ifname=_field(doc, "ifname", str),
        host_ifindex=_field(doc, "hostIfindex", int),
    )


def mark_for(rec: EndpointRecord) -> AttachMark:
    return AttachMark(rec.network, rec.container_id, rec.ifname, rec.host_ifindex)
