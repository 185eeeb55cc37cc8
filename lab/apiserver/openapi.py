"""OpenAPI v3 documents: kubectl's server-side field validation check, ``apply``'s
strategic-merge patch metadata and ``explain``. Built-in kinds are described in full from
k8s.io/api's types (``builtin_openapi.py``); Gateway API kinds by a stub (kind, top-level
fields) unless their CRDs are applied; CRDs by their own schema.

kubectl 1.27+ reads ``/openapi/v3`` (an index of group-versions) and then one document per
group-version. It decides whether the server validates fields by finding a PATCH operation
tagged with the kind's group-version-kind that takes a ``fieldValidation`` query parameter.
kubectl 1.27 also insists on ``/openapi/v2``, in gnostic's protobuf encoding only: it gets a
document with no paths and no definitions, so it skips client-side validation and computes
apply patches from its compiled-in types, as it would for kinds a server does not describe.
"""

from __future__ import annotations

import email.utils
import functools
import hashlib
import json
import time
from typing import Any

from lab.apiserver import builtin_openapi, builtin_types
from lab.apiserver.errors import NOT_FOUND, ApiError
from lab.apiserver.resources import BUILTIN, Registry, Resource
from lab.apiserver.smp_meta import merge_key_table

PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _schema_name(r: Resource, version: str) -> str:
    if r.group:
        return f"{'.'.join(reversed(r.group.split('.')))}.{version}.{r.kind}"
    return f"io.k8s.api.core.{version}.{r.kind}"


def _nested(kind: str) -> dict[str, Any]:
    """Properties carrying the patch strategy of every merging list of ``kind``."""
    root: dict[str, Any] = {}
    for dotted, key in merge_key_table(kind).items():
        node = root
        parts = dotted.split(".")
        for part in parts[:-1]:
            entry = node.setdefault(part, {"type": "object", "properties": {}})
            if entry.get("type") == "array":
                entry = entry["items"]
                entry.setdefault("properties", {})
            node = entry["properties"]
        leaf = node.setdefault(parts[-1], {"type": "array", "items": {"type": "object"}})
        leaf["type"] = "array"
        leaf.setdefault("items", {"type": "object"})
        if key:
            leaf["x-kubernetes-patch-merge-key"] = key
            leaf["x-kubernetes-patch-strategy"] = "merge"
            leaf["x-kubernetes-list-type"] = "map"
            leaf["x-kubernetes-list-map-keys"] = [key]
        else:
            leaf["items"] = {"type": "string"}
            leaf["x-kubernetes-patch-strategy"] = "merge"
            leaf["x-kubernetes-list-type"] = "set"
    return root


def _kind_schema(r: Resource, version: str) -> dict[str, Any]:
    nested = _nested(r.kind)
    props: dict[str, Any] = {
        "apiVersion": {
            "type": "string",
            "description": "The versioned schema of this representation of an object.",
        },
        "kind": {
            "type": "string",
            "description": "The REST resource this object represents.",
        },
        "metadata": {
            "allOf": [{"$ref": f"#/components/schemas/{_OBJECT_META}"}],
            "description": "Standard object's metadata.",
        },
    }
    for top in ("spec", "status"):
        sub = nested.get(top, {}).get("properties", {})
        props[top] = {
            "type": "object",
            "description": f"{top} of the {r.kind}.",
            "properties": sub,
            "x-kubernetes-preserve-unknown-fields": True,
        }
    for field, value in nested.items():
        if field not in ("spec", "status", "metadata"):
            props[field] = value
    declared = r.schema_dict()
    if declared is not None:  # a CRD's own schema describes its fields for explain
        props = {
            **props,
            **{
                k: v
                for k, v in (declared.get("properties") or {}).items()
                if k not in ("apiVersion", "kind", "metadata")
            },
        }
    return {
        "type": "object",
        "description": (declared or {}).get("description")
        or f"{r.kind} ({r.api_version(version)}), served by the Tulle lab API server.",
        "properties": props,
        "x-kubernetes-group-version-kind": _gvk(r, version),
    }


def _operation(r: Resource, version: str, verb: str) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{verb}{r.kind}",
        "x-kubernetes-action": verb,
        "x-kubernetes-group-version-kind": {"group": r.group, "version": version, "kind": r.kind},
        "parameters": [{"name": p, "in": "query", "schema": {"type": "string"}} for p in _PARAMS],
        "responses": {"200": {"description": "OK"}},
    }
    if verb == "patch":
        # The patch types the server takes. kubectl computes a strategic merge patch from
        # this document's schemas when the kind's PATCH lists that type; otherwise it fetches
        # /openapi/v2 too (a request more per apply) and falls back to its compiled-in types.
        types = PATCH_TYPES if r.builtin else tuple(t for t in PATCH_TYPES if "strategic" not in t)
        body = {"schema": {"type": "object"}}
        op["requestBody"] = {"content": {t: body for t in types}, "required": True}
    return op


def _gvk(r: Resource, version: str) -> list[dict[str, str]]:
    return [{"group": r.group, "version": version, "kind": r.kind}]


def group_version(group: str, version: str, registry: Registry = BUILTIN) -> dict[str, Any]:
    return _group_version(group, version, tuple(registry.in_group_version(group, version)))


@functools.lru_cache(maxsize=64)
def _group_version(group: str, version: str, resources: tuple[Resource, ...]) -> dict[str, Any]:
    """One group-version's document (cached: a built-in group's is large and kubectl asks
    for it on every command; CRD changes make new keys)."""
    paths: dict[str, Any] = {}
    schemas = builtin_openapi.schemas(builtin_types.OBJECT_META)
    prefix = "/" + _gv_path(group, version)
    for r in resources:
        scope = f"{prefix}/namespaces/{{namespace}}" if r.namespaced else prefix
        paths[f"{scope}/{r.plural}"] = {
            "post": _operation(r, version, "post"),
            "get": _operation(r, version, "list"),
        }
        paths[f"{scope}/{r.plural}/{{name}}"] = {
            "get": _operation(r, version, "get"),
            "put": _operation(r, version, "put"),
            "patch": _operation(r, version, "patch"),
            "delete": _operation(r, version, "delete"),
        }
        message = None if r.custom else builtin_types.message_name(r.api_version(version), r.kind)
        if message is None:
            schemas[_schema_name(r, version)] = _kind_schema(r, version)
            continue
        schemas.update(builtin_openapi.schemas(message))
        name = builtin_openapi.component_name(message)
        schemas[name] = {**schemas[name], "x-kubernetes-group-version-kind": _gvk(r, version)}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0-tulle"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


@functools.lru_cache(maxsize=64)
def _digest(group: str, version: str, resources: tuple[Resource, ...]) -> str:
    doc = json.dumps(_group_version(group, version, resources), sort_keys=True).encode()
    return hashlib.sha256(doc).hexdigest()[:32].upper()


def _index(registry: Registry) -> dict[str, Any]:
    paths = {}
    for group, versions in registry.groups().items():
        for version in versions:
            digest = _digest(group, version, tuple(registry.in_group_version(group, version)))
            path = _gv_path(group, version)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (the lengths here stay under 128 bytes)."""
    assert len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


def v2_protobuf() -> bytes:
    """gnostic ``openapi_v2.Document{swagger: "2.0", info: {title, version}}``."""
    info = _field(1, b"Kubernetes") + _field(2, b"v1.32.0-tulle")
    return _field(1, b"2.0") + _field(2, info)


@functools.lru_cache(maxsize=64)
def _document(group: str, version: str, resources: tuple[Resource, ...]) -> tuple[bytes, str]:
    """A group-version's document serialised once, and its hash (the index's ``?hash=``)."""
    body = json.dumps(_group_version(group, version, resources), separators=(",", ":")).encode()
    return body, _digest(group, version, resources)


def _etag(digest: str) -> str:
    return f'"{digest}"'


def respond(
    path: str,
    accept: str,
    registry: Registry = BUILTIN,
    hash_: str | None = None,
    if_none_match: str = "",
) -> Any:
    """Documents with an ETag (``304 Not Modified`` for a client holding the current one), as
    kube-openapi serves them: a group-version asked for by the index's ``?hash=`` is
    immutable (kubectl's HTTP cache then answers it from disk without a request), and a stale
    hash is redirected to the current one."""
    from lab.apiserver.app import Response  # a cycle only at call time
    from lab.apiserver.discovery import etag_matches

    parts = [p for p in path.split("/") if p]
    if parts == ["openapi", "v2"]:
        if "protobuf" in accept:
            return Response(200, v2_protobuf(), "application/octet-stream")
        return Response(
            200,
            {
                "swagger": "2.0",
                "info": {"title": "Kubernetes", "version": "v1.32.0-tulle"},
                "paths": {},
                "definitions": {},
            },
        )
    if parts[:2] != ["openapi", "v3"]:
        raise ApiError(404, NOT_FOUND)
    if len(parts) == 2:
        body, digest = _index_document(registry.resources)
        headers = {"ETag": _etag(digest)}
    else:
        rest, served = parts[2:], registry.groups()
        if rest[0] == "api" and len(rest) == 2 and rest[1] in served.get("", []):
            group, version = "", rest[1]
        elif rest[0] == "apis" and len(rest) == 3 and rest[2] in served.get(rest[1], []):
            group, version = rest[1], rest[2]
        else:
            raise ApiError(404, NOT_FOUND)
        body, digest = _document(group, version, tuple(registry.in_group_version(group, version)))
        headers = {"ETag": _etag(digest), "Vary": "Accept"}
        if hash_ and hash_ != digest:
            location = f"/openapi/v3/{_gv_path(group, version)}?hash={digest}"
            return Response(301, b"", headers={"Location": location})
        if hash_:
            expires = email.utils.formatdate(time.time() + 365 * 86400, usegmt=True)
            headers |= {"Cache-Control": "public, immutable", "Expires": expires}
    if etag_matches(if_none_match, headers["ETag"]):
        return Response(304, b"", headers=headers)
    return Response(200, body, headers=headers)


@functools.lru_cache(maxsize=16)
def _index_document(resources: tuple[Resource, ...]) -> tuple[bytes, str]:
    body = json.dumps(_index(Registry(resources)), separators=(",", ":")).encode()
    return body, hashlib.sha256(body).hexdigest()[:32].upper()
