"""CustomResourceDefinitions: an established CRD makes its kind served (discovery, CRUD,
list, watch, merge and JSON patch, the status subresource if declared, its
additionalPrinterColumns).

Custom resources are validated against the storage version's ``openAPIV3Schema``
(``schema.py``); versions are not converted (all share one stored form, as with
``conversion: None``). The Gateway API kinds are served only this way, as on a cluster
(``deploy/crds/gateway-api``); since the typed model reads them, their objects then go
through the lab's typed admission too. A CRD cannot take a built-in kind's name, nor a
modelled kind's name in another group (the store keys objects by kind).

``problems`` is the server's check of a CRD itself: the structural-schema and naming rules
of apiextensions' validation that a CRD must pass before it is stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lab.apiserver import jsonpath
from lab.apiserver.resources import BUILTIN, CRD_MODELLED, RESOURCES, Registry, Resource
from lab.store import Store

CRD_KIND = "CustomResourceDefinition"
Problem = tuple[str, str]
_COLUMN_TYPES = ("integer", "number", "string", "boolean", "date")
_TYPES = ("object", "array", "string", "integer", "number", "boolean")


def _columns(version: Mapping[str, Any]) -> tuple[tuple[str, str, str, int], ...]:
    out = []
    for col in version.get("additionalPrinterColumns") or []:
        path = str(col.get("jsonPath", ""))
        try:
            jsonpath.parse(path)
        except jsonpath.JsonPathError:
            continue
        if col.get("name"):
            out.append(
                (
                    str(col["name"]),
                    str(col.get("type", "string")),
                    path,
                    int(col.get("priority", 0)),
                )
            )
    return tuple(out)


def _schema(version: Mapping[str, Any]) -> str:
    found = (version.get("schema") or {}).get("openAPIV3Schema")
    return json.dumps(found, sort_keys=True) if isinstance(found, Mapping) else ""


def resource_of(crd: Mapping[str, Any]) -> Resource | None:
    """The resource a CRD defines, or None if it is malformed or not served."""
    spec = crd.get("spec")
    if not isinstance(spec, Mapping):
        return None
    names = spec.get("names") or {}
    versions = [
        v for v in spec.get("versions") or [] if isinstance(v, Mapping) and v.get("served", True)
    ]
    group, kind, plural = spec.get("group"), names.get("kind"), names.get("plural")
    if not (
        isinstance(group, str)
        and group
        and isinstance(kind, str)
        and isinstance(plural, str)
        and versions
    ):
        return None
    versions.sort(key=lambda v: not v.get("storage", False))  # the storage version first
    has_status = any("status" in (v.get("subresources") or {}) for v in versions)
    model = CRD_MODELLED.get(kind)
    return Resource(
        group,
        tuple(str(v["name"]) for v in versions),
        kind,
        plural,
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        subresources=("status",) if has_status else (),
        modelled=model is not None and (model.group, model.plural) == (group, plural),
        custom=True,
        printer_columns=_columns(versions[0]),
        schema=_schema(versions[0]),
    )


def established(crd: Mapping[str, Any]) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(
        isinstance(c, Mapping) and c.get("type") == "Established" and c.get("status") == "True"
        for c in conditions
    )


_TAKEN = frozenset({(r.group, r.plural) for r in RESOURCES} | {r.kind for r in RESOURCES})


def registry(store: Store) -> Registry:
    """What the server serves now: the built-in resources and every established CRD's.

    Asked on every request, so it reads only the CRDs' names and resourceVersions (no
    decoding: the Gateway API schemas run to 100 KB) and rebuilds when they change."""
    seen = _versions(
        (name, version)
        for _, name, version in store.field_values(CRD_KIND, "$.metadata.resourceVersion")
    )
    if not seen:
        return BUILTIN
    hit = _LAST.get(seen)
    if hit is None:
        crds = store.list(CRD_KIND)[0]
        hit = _build(crds)
        listed = _versions((c["metadata"]["name"], c["metadata"]["resourceVersion"]) for c in crds)
        _LAST.clear()
        _LAST[listed] = hit  # a write between the two reads: the next request rebuilds
    return hit


Versions = tuple[tuple[str, str], ...]
_LAST: dict[Versions, Registry] = {}


def _versions(pairs: Iterable[tuple[str, Any]]) -> Versions:
    return tuple(sorted((str(name), str(version)) for name, version in pairs))


def _build(crds: list[dict[str, Any]]) -> Registry:
    taken = set(_TAKEN)
    extra = []
    for crd in crds:
        res = resource_of(crd)
        if res is None or not established(crd):
            continue
        if (res.group, res.plural) in taken or res.kind in taken:
            continue
        if res.kind in CRD_MODELLED and not res.modelled:
            continue  # HTTPRoute of another group: the store keys objects by kind
        taken |= {(res.group, res.plural), res.kind}
        extra.append(res)
    return Registry((*RESOURCES, *extra)) if extra else BUILTIN


# --- the CRD's own validation -------------------------------------------------------------


def problems(crd: Mapping[str, Any]) -> list[Problem]:
    """What apiextensions' validation refuses in a CRD, as (field, message) pairs."""
    spec = crd.get("spec")
    if not isinstance(spec, Mapping):
        return [("spec", "Required value")]
    out: list[Problem] = []
    group, names = spec.get("group"), spec.get("names")
    names = names if isinstance(names, Mapping) else {}
    if not isinstance(group, str) or not group:
        out.append(("spec.group", "Required value"))
    elif "." not in group:
        out.append(
            ("spec.group", f'Invalid value: "{group}": should be a domain with at least one dot')
        )
    for field in ("plural", "kind"):
        if not isinstance(names.get(field), str) or not names.get(field):
            out.append((f"spec.names.{field}", "Required value"))
    plural = names.get("plural")
    name = (crd.get("metadata") or {}).get("name")
    if isinstance(plural, str) and isinstance(group, str) and name != f"{plural}.{group}":
        out.append(
            ("metadata.name", f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group')
        )
    scope = spec.get("scope")
    if scope not in ("Namespaced", "Cluster"):
        out.append(
            (
                "spec.scope",
                f'Unsupported value: "{scope}": supported values: "Cluster", "Namespaced"',
            )
        )
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        return [
            *out,
            (
                "spec.versions",
                "Invalid value: []: must have exactly one version marked as storage version",
            ),
        ]
    if sum(1 for v in versions if isinstance(v, Mapping) and v.get("storage") is True) != 1:
        out.append(
            (
                "spec.versions",
                "Invalid value: must have exactly one version marked as storage version",
            )
        )
    seen: set[str] = set()
    for i, version in enumerate(versions):
        out += _version_problems(f"spec.versions[{i}]", version, seen)
    return out


def _version_problems(where: str, version: Any, seen: set[str]) -> list[Problem]:
    if not isinstance(version, Mapping):
        return [(where, "Invalid value: must be an object")]
    out: list[Problem] = []
    name = version.get("name")
    if not isinstance(name, str) or not name:
        out.append((f"{where}.name", "Required value"))
    elif name in seen:
        out.append((f"{where}.name", f'Duplicate value: "{name}"'))
    else:
        seen.add(name)
    schema = (version.get("schema") or {}).get("openAPIV3Schema")
    if not isinstance(schema, Mapping):
        out.append((f"{where}.schema.openAPIV3Schema", "Required value: schemas are required"))
    else:
        if schema.get("type") != "object":
            out.append(
                (
                    f"{where}.schema.openAPIV3Schema.type",
                    'Invalid value: must be "object" at the root',
                )
            )
        out += _structural(f"{where}.schema.openAPIV3Schema", schema)
    for j, col in enumerate(version.get("additionalPrinterColumns") or []):
        at = f"{where}.additionalPrinterColumns[{j}]"
        if not isinstance(col, Mapping):
            out.append((at, "Invalid value: must be an object"))
            continue
        if not col.get("name"):
            out.append((f"{at}.name", "Required value"))
        if col.get("type") not in _COLUMN_TYPES:
            allowed = ", ".join(f'"{t}"' for t in _COLUMN_TYPES)
            out.append(
                (
                    f"{at}.type",
                    f'Unsupported value: "{col.get("type")}": supported values: {allowed}',
                )
            )
        try:
            jsonpath.parse(str(col.get("jsonPath", "")))
        except jsonpath.JsonPathError as err:
            out.append((f"{at}.jsonPath", f"Invalid value: {err}"))
    return out


def _structural(where: str, node: Mapping[str, Any]) -> list[Problem]:
    """A structural schema: every node says its type (unless it preserves unknown fields or
    is int-or-string), and only known types."""
    out: list[Problem] = []
    loose = node.get("x-kubernetes-preserve-unknown-fields") or node.get(
        "x-kubernetes-int-or-string"
    )
    kind = node.get("type")
    if kind is None and not loose:
        out.append((f"{where}.type", "Required value: must not be empty for specified fields"))
    elif kind is not None and kind not in _TYPES:
        allowed = ", ".join(f'"{t}"' for t in _TYPES)
        out.append((f"{where}.type", f'Unsupported value: "{kind}": supported values: {allowed}'))
    props = node.get("properties") or {}
    if not isinstance(props, Mapping):
        return [*out, (f"{where}.properties", "Invalid value: must be an object")]
    for key, child in props.items():
        if isinstance(child, Mapping):
            out += _structural(f"{where}.properties[{key}]", child)
    for key in ("items", "additionalProperties"):
        child = node.get(key)
        if isinstance(child, Mapping):
            out += _structural(f"{where}.{key}", child)
    return out


def install_gateway_api(store: Store, directory: Path | None = None) -> None:
    """Create the lab's CRDs (the Gateway API's and Tulle's; or those of ``directory``) in
    ``store`` through the API server's own write path (admission, the Established status),
    as a POST would: for tests and tools holding the store."""
    from lab import gateway_crds
    from lab.apiserver import writes
    from lab.apiserver.routing import Target

    res = BUILTIN.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    assert res is not None
    for crd in gateway_crds.manifests(directory):  # by default, all the lab installs
        if store.get(res.kind, "", crd["metadata"]["name"]) is None:
            writes.create(store, Target(res, "v1", None), crd)
