"""Reading the protobuf bodies kubectl 1.32+ sends from its typed commands
(``kubectl create namespace|configmap|secret|serviceaccount``).

A body is ``k8s\\x00`` followed by a ``runtime.Unknown`` holding apiVersion, kind and the
object's own protobuf encoding. Only the kinds below are described (field numbers from the
``generated.proto`` files of k8s.io/api and apimachinery); any other kind gets 415, as a
server that does not speak protobuf for it would answer. Responses are always JSON (kubectl
accepts both).
"""

from __future__ import annotations

import base64
from typing import Any

MAGIC = b"k8s\x00"

# message: {field number: (json name, type)}; types: string, bytes, bool, int, msg:<name>,
# list:<type>, map:<value type>.
_MESSAGES: dict[str, dict[int, tuple[str, str]]] = {
    "Unknown": {1: ("typeMeta", "msg:TypeMeta"), 2: ("raw", "bytes")},
    "TypeMeta": {1: ("apiVersion", "string"), 2: ("kind", "string")},
    "ObjectMeta": {
        1: ("name", "string"),
        2: ("generateName", "string"),
        3: ("namespace", "string"),
        5: ("uid", "string"),
        6: ("resourceVersion", "string"),
        11: ("labels", "map:string"),
        12: ("annotations", "map:string"),
        14: ("finalizers", "list:string"),
    },
    "Namespace": {1: ("metadata", "msg:ObjectMeta"), 2: ("spec", "msg:NamespaceSpec")},
    "NamespaceSpec": {1: ("finalizers", "list:string")},
    "ConfigMap": {
        1: ("metadata", "msg:ObjectMeta"),
        2: ("data", "map:string"),
        3: ("binaryData", "map:bytes"),
        4: ("immutable", "bool"),
    },
    "Secret": {
        1: ("metadata", "msg:ObjectMeta"),
        2: ("data", "map:bytes"),
        3: ("type", "string"),
        4: ("stringData", "map:string"),
        5: ("immutable", "bool"),
    },
    "ServiceAccount": {
        1: ("metadata", "msg:ObjectMeta"),
        3: ("imagePullSecrets", "list:msg:LocalObjectReference"),
        4: ("automountServiceAccountToken", "bool"),
    },
    "LocalObjectReference": {1: ("name", "string")},
    "SelfSubjectAccessReview": {
        1: ("metadata", "msg:ObjectMeta"),
        2: ("spec", "msg:SelfSubjectAccessReviewSpec"),
    },
    "SelfSubjectAccessReviewSpec": {
        1: ("resourceAttributes", "msg:ResourceAttributes"),
        2: ("nonResourceAttributes", "msg:NonResourceAttributes"),
    },
    "ResourceAttributes": {
        1: ("namespace", "string"),
        2: ("verb", "string"),
        3: ("group", "string"),
        4: ("version", "string"),
        5: ("resource", "string"),
        6: ("subresource", "string"),
        7: ("name", "string"),
    },
    "NonResourceAttributes": {1: ("path", "string"), 2: ("verb", "string")},
    "SelfSubjectRulesReview": {
        1: ("metadata", "msg:ObjectMeta"),
        2: ("spec", "msg:SelfSubjectRulesReviewSpec"),
    },
    "SelfSubjectRulesReviewSpec": {1: ("namespace", "string")},
}
KINDS = frozenset(
    {
        "Namespace",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "SelfSubjectAccessReview",
        "SelfSubjectRulesReview",
    }
)


class ProtobufError(ValueError):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated field")
            out.append((number, data[pos : pos + length]))
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _scalar(type_: str, value: int | bytes) -> Any:
    if type_ == "string":
        return value.decode() if isinstance(value, bytes) else str(value)
    if type_ == "bytes":
        return base64.b64encode(value if isinstance(value, bytes) else b"").decode()
    if type_ == "bool":
        return bool(value)
    if type_ == "int":
        return int(value) if isinstance(value, int) else 0
    if type_.startswith("msg:") and isinstance(value, bytes):
        return decode_message(type_[4:], value)
    raise ProtobufError(f"cannot read a {type_} from {type(value).__name__}")


def decode_message(name: str, data: bytes) -> dict[str, Any]:
    schema = _MESSAGES[name]
    out: dict[str, Any] = {}
    for number, value in _fields(data):
        if number not in schema:
            continue
        field, type_ = schema[number]
        if type_.startswith("list:"):
            out.setdefault(field, []).append(_scalar(type_[5:], value))
        elif type_.startswith("map:"):
            if not isinstance(value, bytes):
                raise ProtobufError(f"{field}: a map entry must be a message")
            entry = dict(_fields(value))
            key = entry.get(1, b"")
            out.setdefault(field, {})[_scalar("string", key)] = _scalar(
                type_[4:], entry.get(2, b"")
            )
        else:
            out[field] = _scalar(type_, value)
    # gogo-protobuf writes every optional string, even empty: drop the empty ones.
    return {k: v for k, v in out.items() if v not in ("", {}, [])}


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf request body; raises ProtobufError for other kinds."""
    if not body.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf body (no k8s magic)")
    unknown = decode_message("Unknown", body[len(MAGIC) :])
    type_meta = unknown.get("typeMeta", {})
    kind = type_meta.get("kind", "")
    if kind not in KINDS:
        raise ProtobufError(
            f"protobuf bodies are read for {', '.join(sorted(KINDS))} only, not {kind!r}"
        )
    obj = decode_message(kind, base64.b64decode(unknown.get("raw", "")))
    return {"apiVersion": type_meta.get("apiVersion", "v1"), "kind": kind, **obj}
