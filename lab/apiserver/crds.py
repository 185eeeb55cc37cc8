"""CustomResourceDefinitions: a stored CRD makes its kind served (discovery, CRUD, list, watch,
merge and JSON patch, the status subresource if declared, its additionalPrinterColumns).

Custom resources are validated against the storage version's ``openAPIV3Schema``
(``schema.py``); versions are not converted (all share one stored form, as with
``conversion: None``). A CRD naming a resource the server
already serves (the Gateway API CRDs, say) changes nothing: the built-in one, admitted by the
typed model, stays.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lab.apiserver.resources import BUILTIN, RESOURCES, Registry, Resource
from lab.store import Store

CRD_KIND = "CustomResourceDefinition"


def _columns(version: Mapping[str, Any]) -> tuple[tuple[str, str, str, int], ...]:
    out = []
    for col in version.get("additionalPrinterColumns") or []:
        path = str(col.get("jsonPath", ""))
        if col.get("name") and path.startswith("."):
            out.append(
                (
                    str(col["name"]),
                    str(col.get("type", "string")),
                    path[1:],
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
    return Resource(
        group,
        tuple(str(v["name"]) for v in versions),
        kind,
        plural,
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        subresources=("status",) if has_status else (),
        custom=True,
        printer_columns=_columns(versions[0]),
        schema=_schema(versions[0]),
    )


def registry(store: Store) -> Registry:
    """What the server serves now: the built-in resources and every served CRD's."""
    crds = store.list(CRD_KIND)[0]
    if not crds:
        return BUILTIN
    taken = {(r.group, r.plural) for r in RESOURCES} | {r.kind for r in RESOURCES}
    extra = []
    for crd in crds:
        res = resource_of(crd)
        if res is None or (res.group, res.plural) in taken or res.kind in taken:
            continue
        taken |= {(res.group, res.plural), res.kind}
        extra.append(res)
    return Registry((*RESOURCES, *extra)) if extra else BUILTIN
