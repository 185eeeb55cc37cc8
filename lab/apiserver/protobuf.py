"""Reading the protobuf bodies kubectl 1.32+ sends from its typed commands (``kubectl create
deployment|service|job|cronjob|ingress|role|...``, and every typed client).

A body is ``k8s\\x00`` followed by a ``runtime.Unknown`` holding apiVersion, kind and the
object's own protobuf encoding. kubectl does not fall back to JSON when a server refuses
protobuf (a cluster reads it for every built-in kind, and discovery advertises nothing about
it), so the server reads every built-in kind: field numbers and types come from
``builtin_types.py`` (generated from k8s.io/api's ``generated.proto``). The
result is the JSON a cluster would make of the same Go object: non-pointer ``omitempty``
scalars that gogo protobuf writes as zero are left out, structs stay (``strategy: {}``), and
the well-known types (Time, IntOrString, Quantity, RawExtension...) take their JSON forms.
A field the table does not know is refused by number rather than dropped. Responses are
JSON (kubectl accepts either).
"""

from __future__ import annotations

import base64
import datetime
import json
import struct
from typing import Any

from lab.apiserver import builtin_types
from lab.apiserver.builtin_types import messages

MAGIC = b"k8s\x00"
MAX_DEPTH = 64

_META = builtin_types.META
_UNKNOWN = "k8s.io.apimachinery.pkg.runtime.Unknown"
_VARINTS = frozenset({"int32", "int64", "bool"})


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


def _fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """(number, wire type, value) of each field: varints as ints, the rest as bytes."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, wire, value))
            continue
        if wire == 2:
            length, pos = _varint(data, pos)
        elif wire in (1, 5):
            length = 8 if wire == 1 else 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        if pos + length > len(data):
            raise ProtobufError("truncated field")
        out.append((number, wire, data[pos : pos + length]))
        pos += length
    return out


def _signed(value: int, bits: int) -> int:
    value &= (1 << 64) - 1
    value = value - (1 << 64) if value >= 1 << 63 else value
    if not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
        raise ProtobufError(f"{value} does not fit in int{bits}")
    return value


def _scalar(type_: str, wire: int, value: int | bytes, where: str) -> Any:
    if type_ in _VARINTS:
        if not isinstance(value, int):
            raise ProtobufError(f"{where}: a {type_} must be a varint")
        if type_ == "bool":
            return bool(value)
        return _signed(value, 32 if type_ == "int32" else 64)
    if not isinstance(value, bytes):
        raise ProtobufError(f"{where}: a {type_} cannot be a varint")
    if type_ == "string":
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise ProtobufError(f"{where}: a string must be UTF-8") from None
    if type_ == "bytes":
        return base64.b64encode(value).decode()
    if type_ in ("double", "float") and wire in (1, 5):
        return struct.unpack("<d" if wire == 1 else "<f", value)[0]
    raise ProtobufError(f"{where}: cannot read a {type_} from wire type {wire}")


def _time(msg: dict[int, Any], micro: bool) -> str | None:
    seconds, nanos = msg.get(1, 0), msg.get(2, 0)
    if not seconds and not nanos:
        return None  # Go's zero time: JSON null, left out
    try:
        when = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        raise ProtobufError(f"{seconds} seconds is not a time") from None
    if micro:
        return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _go_duration(ns: int) -> str:
    """Go's time.Duration.String for whole-second and smaller values."""
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return f"{sign}{ns / size:g}{unit}"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = f"{rest / 1e9:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    return f"{sign}{minutes}m{seconds}" if minutes else f"{sign}{seconds}"


def _raw_json(raw: bytes, where: str) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ProtobufError(f"{where}: an embedded object must be JSON") from None


def _well_known(name: str, data: bytes, depth: int) -> tuple[bool, Any]:
    """The JSON form of a type that does not marshal as an object."""
    short = name.rsplit(".", 1)[-1]
    if name in (f"{_META}.Time", f"{_META}.MicroTime", f"{_META}.Duration"):
        raw = {n: v for n, _, v in _fields(data) if isinstance(v, int)}
        if short == "Duration":
            return True, _go_duration(_signed(raw.get(1, 0), 64))
        return True, _time({k: _signed(v, 64) for k, v in raw.items()}, short == "MicroTime")
    if name == "k8s.io.apimachinery.pkg.util.intstr.IntOrString":
        msg = decode_message(name, data, depth)
        return True, msg.get("strVal", "") if msg.get("type") == 1 else msg.get("intVal", 0)
    if name == "k8s.io.apimachinery.pkg.api.resource.Quantity":
        return True, decode_message(name, data, depth).get("string", "")
    if name in ("k8s.io.apimachinery.pkg.runtime.RawExtension", f"{_META}.FieldsV1"):
        raw_b64 = next(iter(decode_message(name, data, depth).values()), "")
        return True, _raw_json(base64.b64decode(raw_b64), short)
    return False, None


def _value(type_: str, wire: int, value: int | bytes, where: str, depth: int) -> Any:
    if type_ not in messages():
        return _scalar(type_, wire, value, where)
    if not isinstance(value, bytes):
        raise ProtobufError(f"{where}: a {type_.rsplit('.', 1)[-1]} must be a message")
    special, converted = _well_known(type_, value, depth + 1)
    return converted if special else decode_message(type_, value, depth + 1)


def _is_zero(value: Any) -> bool:
    return value is None or (not isinstance(value, dict) and value in ("", 0, False))


def decode_message(name: str, data: bytes, depth: int = 0) -> dict[str, Any]:
    """The JSON form of one message, as a cluster would write the Go object."""
    if depth > MAX_DEPTH:
        raise ProtobufError(f"the body nests deeper than {MAX_DEPTH} messages")
    schema = messages()[name].by_number
    out: dict[str, Any] = {}
    for number, wire, value in _fields(data):
        field = schema.get(number)
        short = name.rsplit(".", 1)[-1]
        if field is None:
            if value in (0, b""):
                continue  # nothing is lost
            raise ProtobufError(f"{short}: field {number} is not known to this server")
        json_name, type_ = field.name, field.type
        where = f"{short}.{json_name}"
        if type_.startswith("map<"):
            key_type, value_type = type_[4:-1].split(",")
            if not isinstance(value, bytes):
                raise ProtobufError(f"{where}: a map entry must be a message")
            entry = {n: (w, v) for n, w, v in _fields(value)}
            k_wire, k = entry.get(1, (2, b""))
            v_wire, v = entry.get(2, (2, b""))
            out.setdefault(json_name, {})[_scalar(key_type, k_wire, k, where)] = _value(
                value_type, v_wire, v, where, depth
            )
        elif field.repeated:
            items = out.setdefault(json_name, [])
            if wire == 2 and type_ in _VARINTS and isinstance(value, bytes):  # packed
                pos = 0
                while pos < len(value):
                    item, pos = _varint(value, pos)
                    items.append(_scalar(type_, 0, item, where))
            else:
                items.append(_value(type_, wire, value, where, depth))
        elif field.inline:  # an embedded struct: JSON inlines its fields
            inlined = _value(type_, wire, value, where, depth)
            if isinstance(inlined, dict):
                out.update(inlined)
        else:
            converted = _value(type_, wire, value, where, depth)
            if converted is None or (field.omit_zero and _is_zero(converted)):
                out.pop(json_name, None)
            else:
                out[json_name] = converted
    return out


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf request body; raises ProtobufError for anything else."""
    if not body.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf body (no k8s magic)")
    unknown = decode_message(_UNKNOWN, body[len(MAGIC) :])
    api_version, kind = unknown.get("apiVersion", ""), unknown.get("kind", "")
    if unknown.get("contentEncoding"):
        raise ProtobufError(f"content encoding {unknown['contentEncoding']!r} is not read")
    name = builtin_types.message_name(api_version, kind)
    if name is None:
        raise ProtobufError(f"{kind or 'an object'} ({api_version}) is not a built-in kind")
    obj = decode_message(name, base64.b64decode(unknown.get("raw", "")))
    return {"apiVersion": api_version, "kind": kind, **obj}
