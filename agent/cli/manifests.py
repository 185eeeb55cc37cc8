"""Manifests a user hands to `tulle apply|delete -f`: files, directories and stdin, multi-
document YAML or JSON (agent.model.documents: hostile YAML refused by source and line), and
the resource each object belongs to on the server."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from agent.cli.cluster import Cluster
from agent.cli.discovery import ApiResource
from agent.model.documents import LoadError, load_sources

Doc = dict[str, Any]
# Fields the server owns: a `get -o yaml` round trip applies cleanly without them.
SERVER_FIELDS = (
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionTimestamp",
)


def load(files: Sequence[str]) -> list[tuple[str, Doc]]:
    try:
        docs = load_sources(list(files), sys.stdin)
    except (OSError, ValueError, LoadError) as err:
        raise click.ClickException(str(err)) from err
    if not docs:
        raise click.ClickException(f"no objects found in {', '.join(files)}")
    for source, doc in docs:
        problem = shape_problem(doc)
        if problem:
            raise click.ClickException(f"{source}: {problem}")
    return docs


def shape_problem(doc: Doc) -> str | None:
    """What every object needs before a server can be asked about it."""
    meta = doc.get("metadata")
    for field, value in (("apiVersion", doc.get("apiVersion")), ("kind", doc.get("kind"))):
        if not isinstance(value, str) or not value:
            return f"object {label(doc)}: {field} is required (a non-empty string)"
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        return f"{doc['kind']} object: metadata.name is required (a non-empty string)"
    namespace = meta.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        return f"{label(doc)}: metadata.namespace must be a string"
    return None


def label(doc: Doc) -> str:
    meta = doc.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    ns = meta.get("namespace")
    return f"{doc.get('kind')} {ns + '/' if ns else ''}{meta.get('name')}"


def resource_of(
    cluster: Cluster, source: str, doc: Doc, pending: Sequence[ApiResource] = ()
) -> ApiResource:
    """The resource serving ``doc``'s apiVersion and kind, or one of ``pending`` (kinds a
    CustomResourceDefinition in the same apply defines); a ClickException naming the
    object otherwise."""
    api_version, kind = str(doc["apiVersion"]), str(doc["kind"])
    found = cluster.resource_for(api_version, kind)
    if found is None:
        found = next((r for r in pending if (r.api_version, r.kind) == (api_version, kind)), None)
    if found is None:
        raise click.ClickException(
            f'{source}: {label(doc)}: no matches for kind "{kind}" in version "{api_version}" '
            f"on {cluster.server} (is its CustomResourceDefinition installed?)"
        )
    return found


def for_apply(doc: Doc, res: ApiResource, default_namespace: str) -> Doc:
    """The body to apply: server-owned metadata dropped, the namespace filled in for a
    namespaced kind (the context's, as kubectl does) and dropped for a cluster-wide one."""
    meta = {k: v for k, v in doc["metadata"].items() if k not in SERVER_FIELDS}
    if res.namespaced:
        meta["namespace"] = meta.get("namespace") or default_namespace
    else:
        meta.pop("namespace", None)
    return {**doc, "metadata": meta}
