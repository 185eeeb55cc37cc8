"""The built-in kinds' types, from ``builtin_types.json.gz`` (``protogen.py`` generates it
from k8s.io/api): fields by number for protobuf bodies, by JSON name for strategic merge
patch, and descriptions for OpenAPI. One table, so kubectl's view of a kind (OpenAPI) and
the server's (patches, protobuf) cannot disagree.
"""

from __future__ import annotations

import functools
import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

TABLE = Path(__file__).with_name("builtin_types.json.gz")
META = "k8s.io.apimachinery.pkg.apis.meta.v1"
OBJECT_META = f"{META}.ObjectMeta"
SCALARS = frozenset({"int32", "int64", "bool", "string", "bytes", "double", "float"})

# API group -> k8s.io/api package; "" is the core group. The order settles a kind named
# in two packages (Event: core/v1 is the one served).
PACKAGES = {
    "": "core",
    "apps": "apps",
    "batch": "batch",
    "networking.k8s.io": "networking",
    "rbac.authorization.k8s.io": "rbac",
    "coordination.k8s.io": "coordination",
    "discovery.k8s.io": "discovery",
    "authentication.k8s.io": "authentication",
    "authorization.k8s.io": "authorization",
    "autoscaling": "autoscaling",
    "policy": "policy",
    "scheduling.k8s.io": "scheduling",
    "events.k8s.io": "events",
}


@dataclass(frozen=True, slots=True)
class Field:
    name: str  # the JSON name
    type: str  # a proto scalar, "map<K,V>" or a message's full name
    repeated: bool = False
    omit_zero: bool = False  # JSON leaves the zero value out (a non-pointer omitempty)
    inline: bool = False  # an embedded struct whose fields JSON inlines
    description: str = ""
    lists: dict[str, str] = field(default_factory=dict)  # patchMergeKey, listType...

    @property
    def map_value(self) -> str | None:
        return self.type[4:-1].split(",")[1] if self.type.startswith("map<") else None


@dataclass(frozen=True)
class Message:
    name: str
    description: str
    by_number: dict[int, Field]

    @functools.cached_property
    def by_name(self) -> dict[str, Field]:
        """Fields by JSON name, the fields of inlined structs included."""
        out: dict[str, Field] = {}
        for f in self.by_number.values():
            if f.inline and f.type in messages():
                out.update(messages()[f.type].by_name)
            else:
                out[f.name] = f
        return out


@functools.cache
def _source() -> dict[str, dict[str, object]]:
    doc = json.loads(gzip.decompress(TABLE.read_bytes()))
    table: dict[str, dict[str, object]] = doc["messages"]
    return table


def _field(raw: list[object]) -> Field:
    name, type_, flags, description = (str(x) for x in raw[:4])
    lists = raw[4] if len(raw) > 4 and isinstance(raw[4], dict) else {}
    return Field(name, type_, "r" in flags, "z" in flags, "i" in flags, description, lists)


@functools.cache
def messages() -> dict[str, Message]:
    out: dict[str, Message] = {}
    for name, raw in _source().items():
        fields = raw["f"]
        assert isinstance(fields, dict)
        by_number = {int(n): _field(f) for n, f in fields.items()}
        out[name] = Message(name, str(raw["d"]), by_number)
    return out


def message_name(api_version: str, kind: str) -> str | None:
    """The message of a built-in kind, or None for kinds k8s.io/api does not define."""
    group, _, version = api_version.rpartition("/")
    package = PACKAGES.get(group)
    name = f"k8s.io.api.{package}.{version}.{kind}"
    return name if package is not None and name in messages() else None


@functools.cache
def kind_message(kind: str) -> str | None:
    """The message of a built-in kind by its name alone (v1 of the first package having it)."""
    for package in PACKAGES.values():
        name = f"k8s.io.api.{package}.v1.{kind}"
        if name in messages():
            return name
    return None


def field_at(kind: str, path: tuple[str, ...]) -> Field | None:
    """The field at ``path`` (JSON names; list items and map keys are not named) of
    ``kind``; any kind's ``metadata`` is ObjectMeta."""
    message = kind_message(kind)
    if path[:1] == ("metadata",):
        message, path = OBJECT_META, path[1:]
    found: Field | None = None
    for name in path:
        if message is None or message not in messages():
            return None
        found = messages()[message].by_name.get(name)
        if found is None:
            return None
        message = found.map_value or found.type
    return found


def merge_key(kind: str, path: tuple[str, ...]) -> str | None:
    """The ``patchMergeKey`` of the list at ``path`` ("" for a merging list of scalars), or
    None when the list is atomic (replaced whole), as the Kubernetes types tag them."""
    f = field_at(kind, path)
    if f is None or not f.repeated or "merge" not in f.lists.get("patchStrategy", ""):
        return None
    return f.lists.get("patchMergeKey", "")
