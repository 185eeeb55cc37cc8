"""Discovery documents (``/version``, ``/api``, ``/apis``, resource lists): what kubectl reads
to map ``kubectl get svc`` to ``/api/v1/namespaces/NS/services``."""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from lab.apiserver.resources import BUILTIN, Registry, Resource
from lab.apiserver.routing import Discovery

KUBE_VERSION = ("1", "32")


def version() -> dict[str, Any]:
    major, minor = KUBE_VERSION
    return {
        "major": major,
        "minor": minor,
        "gitVersion": f"v{major}.{minor}.0-tulle",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "python",
        "compiler": "cpython",
        "platform": "linux/amd64",
    }


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}


def document(d: Discovery, server_address: str, registry: Registry = BUILTIN) -> dict[str, Any]:
    if d.kind == "versions":
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
            ],
        }
    if d.kind == "groups":
        listed = [_group(g, vs) for g, vs in registry.groups().items() if g]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": listed}
    if d.kind == "group":
        group = _group(d.group, registry.groups()[d.group])
        return {"kind": "APIGroup", "apiVersion": "v1", **group}
    return resource_list(d.group, d.version, registry)


def resource_list(group: str, version: str, registry: Registry = BUILTIN) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    for r in registry.in_group_version(group, version):
        entry: dict[str, Any] = {
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": list(r.verbs),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        entries.append(entry)
        entries += _subresources(r)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": entries}


def _subresources(r: Resource) -> list[dict[str, Any]]:
    entries = []
    for sub in r.subresources:
        entry: dict[str, Any] = {
            "name": f"{r.plural}/{sub}",
            "singularName": "",
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": ["get", "patch", "update"],
        }
        if sub == "scale":
            entry.update({"group": "autoscaling", "version": "v1", "kind": "Scale"})
        if sub == "token":
            entry.update(
                {
                    "group": "authentication.k8s.io",
                    "version": "v1",
                    "kind": "TokenRequest",
                    "verbs": ["create"],
                }
            )
        entries.append(entry)
    return entries


# Aggregated discovery (kubectl 1.26+ asks for it on /api and /apis): every group, version and
# resource in one document, so a client with an empty cache sends 2 requests, not one per
# group-version (13 here, each on its own TLS connection when kubectl fetches them in parallel).
AGGREGATED = {
    "v2": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
    "v2beta1": "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
}


def aggregated_version(accept: str) -> str | None:
    """The aggregated discovery version the Accept header asks for first, if any."""
    for entry in accept.split(","):
        media, *params = (part.strip() for part in entry.split(";"))
        if media != "application/json":
            continue
        named = dict(p.partition("=")[::2] for p in params)
        if named.get("g") == "apidiscovery.k8s.io" and named.get("as") == "APIGroupDiscoveryList":
            if named.get("v") in AGGREGATED:
                return named["v"]
        elif not named.get("as"):
            return None  # plain JSON comes first: the unaggregated document
    return None


def _kind_ref(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "version": version, "kind": kind}


def _aggregated_resource(r: Resource, version: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": r.plural,
        "responseKind": _kind_ref(r.group, version, r.kind),
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.singular,
        "verbs": list(r.verbs),
    }
    if r.short_names:
        entry["shortNames"] = list(r.short_names)
    if r.categories:
        entry["categories"] = list(r.categories)
    subs = []
    for sub in _subresources(r):
        kind = _kind_ref(sub.get("group", r.group), sub.get("version", version), sub["kind"])
        subs.append(
            {
                "subresource": sub["name"].split("/", 1)[1],
                "responseKind": kind,
                "verbs": sub["verbs"],
            }
        )
    if subs:
        entry["subresources"] = subs
    return entry


def aggregated(core: bool, version: str, registry: Registry = BUILTIN) -> dict[str, Any]:
    """``/api`` (``core``) or ``/apis`` as an ``APIGroupDiscoveryList``."""
    items: list[dict[str, Any]] = []
    for group, versions in registry.groups().items():
        if (group == "") != core:
            continue
        meta: dict[str, Any] = {"name": group} if group else {}
        meta["creationTimestamp"] = None
        items.append(
            {
                "metadata": meta,
                "versions": [
                    {
                        "version": v,
                        "resources": [
                            _aggregated_resource(r, v) for r in registry.in_group_version(group, v)
                        ],
                        "freshness": "Current",
                    }
                    for v in versions
                ],
            }
        )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": items,
    }


@functools.lru_cache(maxsize=128)
def _serialised(
    d: Discovery, aggregated_as: str | None, server_address: str, resources: tuple[Resource, ...]
) -> tuple[bytes, str]:
    """A discovery document's bytes and ETag, computed once per set of resources served (a
    CRD's arrival or change makes a new key)."""
    registry = Registry(resources)
    if aggregated_as is not None:
        doc = aggregated(d.kind == "versions", aggregated_as, registry)
    else:
        doc = document(d, server_address, registry)
    body = json.dumps(doc, separators=(",", ":")).encode()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32].upper() + '"'


def respond(
    d: Discovery, accept: str, if_none_match: str, server_address: str, registry: Registry
) -> Any:
    """The discovery document the client asked for (aggregated if it asked so on /api or
    /apis), with an ETag; ``304 Not Modified`` when the client holds the current one."""
    from lab.apiserver.app import Response  # a cycle only at call time

    asked = aggregated_version(accept) if d.kind in ("versions", "groups") else None
    body, etag = _serialised(d, asked, server_address, registry.resources)
    headers = {"ETag": etag, "Vary": "Accept"}
    if etag_matches(if_none_match, etag):
        return Response(304, b"", headers=headers)
    ctype = AGGREGATED[asked] if asked is not None else "application/json"
    return Response(200, body, ctype, headers=headers)


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 If-None-Match: ``*`` or any listed tag, weak or strong, equal to ``etag``."""
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",") if t.strip()]
    return "*" in tags or etag in tags
