"""`tulle apply -f`: server-side apply (field manager ``tulle``) of files, directories and
stdin, all-or-nothing as far as a server allows.

Every object is first applied as a server-side dry run; one refusal and nothing is written,
and every refusal is reported, naming the object and the field. A server cannot dry-run an
object into a Namespace, or of a kind, that does not exist yet, so when the apply itself
creates those, they are created first, the objects that need them are dry-run next, and on
a refusal the Namespaces and CustomResourceDefinitions just created are deleted again. Only
a failure during the writes themselves (a concurrent change, the server going away) can
leave a batch half applied; that is reported object by object.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import click

from agent.cli.cluster import Cluster, ClusterError, connect
from agent.cli.context import cluster_options
from agent.cli.discovery import ApiResource, from_crd
from agent.cli.manifests import Doc, for_apply, label, load, resource_of

FIRST = ("Namespace", "CustomResourceDefinition")  # what other objects need to exist
CRD_ESTABLISHED_TIMEOUT = 30.0


@dataclass
class Item:
    source: str
    res: ApiResource
    body: Doc
    creates_dependency: bool = False  # a Namespace or CRD this apply creates
    needs_dependency: bool = False  # in such a Namespace, or of such a kind

    @property
    def name(self) -> str:
        return f"{self.res.qualified_kind}/{self.body['metadata']['name']}"


class Refused(click.ClickException):
    """Every refusal, one per line, then what that means for the batch."""

    def __init__(self, errors: list[str], note: str = "") -> None:
        super().__init__(f"{len(errors)} object(s) refused; nothing was applied{note}")
        self.errors = errors

    def show(self, file: Any = None) -> None:
        for line in self.errors:
            click.echo(f"error: {line}", err=True)
        super().show(file)


def plan(cluster: Cluster, docs: list[tuple[str, Doc]], given: str | None = None) -> list[Item]:
    """Resolve every object's resource and mark the ones that wait for a Namespace or a CRD
    the same apply creates; Namespaces and CRDs go first, the rest keep file order. Objects
    without a namespace go to ``given`` (-n) or the context's; one naming another than
    ``given`` is refused, as kubectl refuses it."""
    namespace = given or cluster.namespace
    pending = [r for _, d in docs if d["kind"] == "CustomResourceDefinition" for r in from_crd(d)]
    items: list[Item] = []
    errors: list[str] = []
    for source, doc in docs:
        try:
            res = resource_of(cluster, source, doc, pending)
        except click.ClickException as err:
            errors.append(err.message)
            continue
        if given and res.namespaced and doc["metadata"].get("namespace") not in (None, given):
            errors.append(
                f"{source}: {label(doc)}: the namespace of the object does not match "
                f"--namespace {given}"
            )
            continue
        items.append(Item(source, res, for_apply(doc, res, namespace)))
    if errors:
        raise Refused(errors)
    new_kinds = {
        (r.api_version, r.kind) for r in pending if not cluster.resource_for(r.api_version, r.kind)
    }
    new_namespaces = _new(cluster, items, "Namespace")
    new_crds = _new(cluster, items, "CustomResourceDefinition")  # never undo one that existed
    for item in items:
        meta = item.body["metadata"]
        if item.res.kind == "Namespace" and meta["name"] in new_namespaces:
            item.creates_dependency = True
        elif meta["name"] in new_crds and any(
            (r.api_version, r.kind) in new_kinds for r in from_crd(item.body)
        ):
            item.creates_dependency = True
        elif (item.res.api_version, item.res.kind) in new_kinds:
            item.needs_dependency = True
        elif item.res.namespaced and meta["namespace"] in new_namespaces:
            item.needs_dependency = True
    return sorted(items, key=lambda i: i.res.kind not in FIRST)


def _new(cluster: Cluster, items: list[Item], kind: str) -> set[str]:
    """The names of the ``kind`` objects in ``items`` that do not exist yet."""
    new = set()
    for item in items:
        if item.res.kind != kind:
            continue
        try:
            cluster.get(item.res, item.body["metadata"]["name"], "")
        except ClusterError as err:
            if err.code != 404:
                raise
            new.add(item.body["metadata"]["name"])
    return new


def check(cluster: Cluster, items: list[Item], force: bool) -> list[str]:
    """Every object's refusal by a server-side dry run, naming the object and field."""
    errors = []
    for item in items:
        try:
            cluster.apply(item.res, item.body, dry_run=True, force=force)
        except ClusterError as err:
            if err.code in (0, 401):
                raise  # the server is away or does not know us: no object's fault
            hint = " (--force-conflicts takes them over)" if err.code == 409 else ""
            errors.append(f"{item.source}: {label(item.body)}: {err.detail}{hint}")
    return errors


Key = tuple[ApiResource, str, str]  # resource, namespace ("" cluster-wide), name
LIST_FROM = 20  # objects of one resource and namespace: list them rather than get each


def _key(item: Item) -> Key:
    meta = item.body["metadata"]
    return item.res, meta.get("namespace", ""), meta["name"]


def versions(cluster: Cluster, items: list[Item]) -> dict[Key, str]:
    """The resourceVersion of each object that exists already (a missing key: none)."""
    groups: dict[tuple[ApiResource, str], list[Key]] = {}
    for item in items:
        key = _key(item)
        groups.setdefault(key[:2], []).append(key)
    found: dict[Key, str] = {}
    for (res, ns), keys in groups.items():
        if len(keys) >= LIST_FROM:
            for obj in cluster.list(res, ns or None):
                found[(res, ns, obj["metadata"]["name"])] = obj["metadata"]["resourceVersion"]
            continue
        for key in keys:
            try:
                found[key] = cluster.get(res, key[2], ns)["metadata"]["resourceVersion"]
            except ClusterError as err:
                if err.code != 404:
                    raise
    return found


def write(cluster: Cluster, item: Item, force: bool, before: dict[Key, str]) -> str:
    """Apply one object for real: "created", "configured" or "unchanged"."""
    after = cluster.apply(item.res, item.body, dry_run=False, force=force)
    if _key(item) not in before:
        return "created"
    same = before[_key(item)] == after["metadata"].get("resourceVersion")
    return "unchanged" if same else "configured"


def _wait_established(cluster: Cluster, crds: list[Item]) -> None:
    """A CRD's kinds are served once it is Established; the lab's at once, a cluster's soon."""
    deadline = time.monotonic() + CRD_ESTABLISHED_TIMEOUT
    for item in crds:
        while True:
            obj = cluster.get(item.res, item.body["metadata"]["name"], "")
            conditions = (obj.get("status") or {}).get("conditions") or []
            if any(_established(c) for c in conditions):
                break
            if time.monotonic() >= deadline:
                raise click.ClickException(f"{item.name} was not established in time")
            time.sleep(0.2)
    cluster.forget_discovery()


def _established(condition: dict[str, str]) -> bool:
    return condition.get("type") == "Established" and condition.get("status") == "True"


def _undo(cluster: Cluster, created: list[Item]) -> str:
    removed = []
    for item in reversed(created):
        try:
            cluster.delete(item.res, item.body["metadata"]["name"], "")
            removed.append(item.name)
        except ClusterError as err:
            click.echo(f"error: could not remove {item.name} again: {err.message}", err=True)
    return f" ({', '.join(removed)}, created to check the rest, removed again)" if removed else ""


@click.command()
@click.option(
    "-f",
    "--filename",
    "files",
    multiple=True,
    required=True,
    help="File, directory or - for stdin (repeatable).",
)
@click.option(
    "-n", "--namespace", default=None, help="For objects without one (default: the context's)."
)
@click.option("--dry-run", is_flag=True, help="Only ask the server to check (server dry run).")
@click.option(
    "--force-conflicts", is_flag=True, help="Take over fields another field manager owns."
)
@cluster_options
@click.pass_context
def apply(
    ctx: click.Context,
    files: tuple[str, ...],
    namespace: str | None,
    dry_run: bool,
    force_conflicts: bool,
    kubeconfig: str | None,
    context_name: str | None,
) -> None:
    """Create or update objects from YAML or JSON manifests (server-side apply, all-or-nothing)."""
    docs = load(files)
    cluster = connect(ctx, kubeconfig, context_name)
    items = plan(cluster, docs, namespace)
    ready = [i for i in items if not i.needs_dependency]
    waiting = [i for i in items if i.needs_dependency]
    errors = check(cluster, ready, force_conflicts)
    if errors:
        raise Refused(errors)
    if dry_run:
        for item in ready:
            click.echo(f"{item.name} checked (server dry run)")
        for item in waiting:
            click.echo(f"{item.name} not checked: it needs a Namespace or kind this apply creates")
        return
    created = [i for i in ready if i.creates_dependency] if waiting else []
    done = [(i, write(cluster, i, force_conflicts, {})) for i in created]
    if waiting:
        _wait_established(cluster, [i for i in created if i.res.kind != "Namespace"])
        waiting = [_refresh(cluster, i) for i in waiting]
        errors = check(cluster, waiting, force_conflicts)
        if errors:
            raise Refused(errors, _undo(cluster, created))
    for item, action in done:
        click.echo(f"{item.name} {action}")
    rest = [i for i in ready if i not in created] + waiting
    _write_all(cluster, sorted(rest, key=lambda i: i.res.kind not in FIRST), force_conflicts)


def _refresh(cluster: Cluster, item: Item) -> Item:
    """Resolve a kind from a CRD applied moments ago against what the server now serves."""
    if item.res.verbs:
        return item
    served = cluster.resource_for(item.res.api_version, item.res.kind)
    return Item(item.source, served or item.res, item.body)


def _write_all(cluster: Cluster, rest: list[Item], force: bool) -> None:
    before = versions(cluster, rest)
    for item in rest:
        try:
            action = write(cluster, item, force, before)
        except ClusterError as err:
            left = [i.name for i in rest[rest.index(item) + 1 :]]
            click.echo(f"error: {item.source}: {label(item.body)}: {err.detail}", err=True)
            raise click.ClickException(
                f"applying stopped at {item.name}"
                + (f"; not applied: {', '.join(left)}" if left else "")
            ) from err
        click.echo(f"{item.name} {action}")
