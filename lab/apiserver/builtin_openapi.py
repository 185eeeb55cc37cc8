"""OpenAPI v3 schemas of the built-in kinds, made from ``builtin_types`` (k8s.io/api's own
types and comments): every field at every depth with its description, type and list
markers, named as a cluster names them (``io.k8s.api.apps.v1.DeploymentSpec``), so that
``kubectl explain deployment.spec.template.spec.containers`` reads as on a cluster and
kubectl's apply finds the merge keys the server merges by.
"""

from __future__ import annotations

from typing import Any

from lab.apiserver.builtin_types import META, OBJECT_META, Field, messages

_SCALAR_SCHEMAS: dict[str, dict[str, str]] = {
    "int32": {"type": "integer", "format": "int32"},
    "int64": {"type": "integer", "format": "int64"},
    "bool": {"type": "boolean"},
    "string": {"type": "string"},
    "bytes": {"type": "string", "format": "byte"},
    "double": {"type": "number", "format": "double"},
    "float": {"type": "number", "format": "float"},
}
# Types whose JSON form is not an object (as the OpenAPI generator declares them).
_WELL_KNOWN: dict[str, dict[str, str]] = {
    f"{META}.Time": {"type": "string", "format": "date-time"},
    f"{META}.MicroTime": {"type": "string", "format": "date-time"},
    f"{META}.Duration": {"type": "string"},
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": {
        "type": "string",
        "format": "int-or-string",
    },
    "k8s.io.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
    "k8s.io.apimachinery.pkg.runtime.RawExtension": {"type": "object"},
    f"{META}.FieldsV1": {"type": "object"},
}


def component_name(message: str) -> str:
    """``k8s.io.api.apps.v1.Deployment`` -> ``io.k8s.api.apps.v1.Deployment``."""
    return "io.k8s." + message.removeprefix("k8s.io.")


def _ref(message: str) -> dict[str, Any]:
    return {"allOf": [{"$ref": f"#/components/schemas/{component_name(message)}"}]}


def _type_schema(type_: str) -> dict[str, Any]:
    if type_ in _SCALAR_SCHEMAS:
        return dict(_SCALAR_SCHEMAS[type_])
    if type_.startswith("map<"):
        value = type_[4:-1].split(",")[1]
        return {"type": "object", "additionalProperties": _type_schema(value)}
    return _ref(type_)


_LIST_EXTENSIONS = {
    "patchMergeKey": "x-kubernetes-patch-merge-key",
    "patchStrategy": "x-kubernetes-patch-strategy",
    "listType": "x-kubernetes-list-type",
}


def _field_schema(f: Field) -> dict[str, Any]:
    item = _type_schema(f.type)
    schema = {"type": "array", "items": item} if f.repeated else item
    if f.description:
        schema["description"] = f.description
    for marker, extension in _LIST_EXTENSIONS.items():
        if marker in f.lists:
            schema[extension] = f.lists[marker]
    if "listMapKey" in f.lists:
        schema["x-kubernetes-list-map-keys"] = f.lists["listMapKey"].split(",")
    return schema


def message_schema(name: str) -> dict[str, Any]:
    msg = messages()[name]
    if name in _WELL_KNOWN:
        return {**_WELL_KNOWN[name], "description": msg.description}
    props = {f.name: _field_schema(f) for f in msg.by_name.values()}
    return {"type": "object", "description": msg.description, "properties": props}


def _referenced(type_: str) -> str | None:
    value = type_[4:-1].split(",")[1] if type_.startswith("map<") else type_
    return value if value in messages() else None


def schemas(root: str) -> dict[str, dict[str, Any]]:
    """The component schemas of ``root`` and every message it reaches (ObjectMeta always)."""
    out: dict[str, dict[str, Any]] = {}
    todo = [root, OBJECT_META]
    while todo:
        name = todo.pop()
        if component_name(name) in out:
            continue
        out[component_name(name)] = message_schema(name)
        if name in _WELL_KNOWN:
            continue
        for f in messages()[name].by_name.values():
            child = _referenced(f.type)
            if child is not None and component_name(child) not in out:
                todo.append(child)
    return out
