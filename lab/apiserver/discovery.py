"""Discovery documents (``/version``, ``/api``, ``/apis``, resource lists): what kubectl reads
to map ``kubectl get svc`` to ``/api/v1/namespaces/NS/services``."""

from __future__ import annotations

from typing import Any

from lab.apiserver.resources import BUILTIN, Registry
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
        for sub in r.subresources:
            entry = {
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
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": entries}
