"""`tulle get|describe|delete|wait`: kubectl-shaped conveniences over the Kubernetes API
(agent.cli.cluster), so they work the same against a lab and a cluster."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from agent.cli import printers
from agent.cli.cluster import Cluster, ClusterError, connect
from agent.cli.context import cluster_options
from agent.cli.discovery import ApiResource
from agent.cli.manifests import load, resource_of

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?$")


def parse_duration(text: str) -> float:
    """Seconds from "60", "60s", "2m", "1h30m" (kubectl's --timeout)."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None:
        raise click.BadParameter(f"{text!r} is not a duration (e.g. 30, 30s, 2m, 1h)")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _targets(
    cluster: Cluster, args: tuple[str, ...]
) -> tuple[ApiResource | None, list[tuple[ApiResource, str]]]:
    """``KIND [NAME...]`` or ``KIND/NAME...`` (kubectl's two forms)."""
    if not args:
        raise click.UsageError("give KIND [NAME...] or KIND/NAME...")
    if "/" in args[0]:
        named = []
        for arg in args:
            kind, sep, name = arg.partition("/")
            if not sep or not name:
                raise click.UsageError(f"{arg!r}: mix no KIND NAME with KIND/NAME forms")
            named.append((cluster.resource(kind), name))
        return None, named
    res = cluster.resource(args[0])
    return res, [(res, name) for name in args[1:]]


def _namespace(cluster: Cluster, namespace: str | None, all_namespaces: bool) -> str | None:
    return None if all_namespaces else (namespace or cluster.namespace)


def _where(res: ApiResource, ns: str | None) -> str:
    return f" in {ns} namespace" if res.namespaced and ns is not None else ""


@click.command()
@click.argument("args", nargs=-1, required=True)
@click.option("-n", "--namespace", default=None, help="Default: the context's namespace.")
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("-o", "--output", type=click.Choice(["yaml", "json", "wide", "name"]), default=None)
@click.option("-l", "--selector", default=None, help="Label selector, e.g. app=echo,tier!=db")
@click.option(
    "--show-managed-fields", is_flag=True, help="Keep metadata.managedFields (-o yaml|json)."
)
@cluster_options
@click.pass_context
def get(
    ctx: click.Context,
    args: tuple[str, ...],
    namespace: str | None,
    all_namespaces: bool,
    output: str | None,
    selector: str | None,
    show_managed_fields: bool,
    kubeconfig: str | None,
    context_name: str | None,
) -> None:
    """Show objects: `get KIND [NAME...]` or `get KIND/NAME...`, like kubectl get."""
    cluster = connect(ctx, kubeconfig, context_name)
    listed, named = _targets(cluster, args)
    ns = _namespace(cluster, namespace, all_namespaces)
    missing: list[ClusterError] = []  # kubectl shows what it found, then what it did not
    first = listed or named[0][0]
    if output in ("yaml", "json", "name"):
        if listed is not None and not named:
            objs = cluster.list(listed, ns, selector)
            body: Any = printers.as_list(objs, listed.api_version, listed.kind)
            kinds = [listed] * len(objs)
        else:
            found = _each(missing, named, lambda r, n: cluster.get(r, n, ns or cluster.namespace))
            kinds, objs = [r for r, _ in found], [o for _, o in found]
            body = (
                objs[0] if len(objs) == 1 else {"apiVersion": "v1", "kind": "List", "items": objs}
            )
        if not show_managed_fields:  # kubectl hides them too
            for obj in objs:
                obj.get("metadata", {}).pop("managedFields", None)
        if output == "name":
            for res, obj in zip(kinds, objs, strict=True):
                click.echo(f"{res.qualified_kind}/{obj['metadata']['name']}")
        elif objs or not missing:
            click.echo(json.dumps(body, indent=2) if output == "json" else printers.dump_yaml(body))
        if not objs and not missing and output == "name":
            click.echo(f"No resources found{_where(first, ns)}.", err=True)
    else:
        if listed is not None and not named:
            tables = [cluster.table(listed, ns, None, selector)]
        else:
            at = ns or cluster.namespace
            tables = [t for _, t in _each(missing, named, lambda r, n: cluster.table(r, at, n))]
        if printers.row_count(tables):
            wide, across = output == "wide", ns is None and first.namespaced
            click.echo(printers.table(tables, wide=wide, with_namespace=across))
        elif not missing:
            click.echo(f"No resources found{_where(first, ns)}.", err=True)
    for err in missing:
        err.show()
    if missing:
        sys.exit(1)


def _each(
    missing: list[ClusterError],
    named: list[tuple[ApiResource, str]],
    read: Callable[[ApiResource, str], dict[str, Any]],
) -> list[tuple[ApiResource, dict[str, Any]]]:
    """``read`` each named object; the ones not found go to ``missing``."""
    found = []
    for res, name in named:
        try:
            found.append((res, read(res, name)))
        except ClusterError as err:
            if err.code != 404:
                raise
            missing.append(err)
    return found


@click.command(name="describe")
@click.argument("args", nargs=-1, required=True)
@click.option("-n", "--namespace", default=None, help="Default: the context's namespace.")
@cluster_options
@click.pass_context
def describe_cmd(
    ctx: click.Context,
    args: tuple[str, ...],
    namespace: str | None,
    kubeconfig: str | None,
    context_name: str | None,
) -> None:
    """Show objects in detail, conditions first: `describe KIND NAME...`."""
    cluster = connect(ctx, kubeconfig, context_name)
    _, named = _targets(cluster, args)
    if not named:
        raise click.UsageError("give KIND NAME... or KIND/NAME...")
    ns = namespace or cluster.namespace
    shown = []
    for res, name in named:
        obj = cluster.get(res, name, ns)
        text = printers.describe(obj, namespaced=res.namespaced)
        shown.append(text + "\n" + printers.events(_events(cluster, obj)))
    click.echo("\n\n".join(shown))


def _events(cluster: Cluster, obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The object's Events, as kubectl describe finds them; none when we may not list them."""
    events = cluster.resource_for("v1", "Event")
    if events is None:
        return []
    meta = obj["metadata"]
    fields = f"involvedObject.name={meta['name']},involvedObject.kind={obj.get('kind')}"
    try:
        return cluster.list(events, meta.get("namespace") or "default", fields=fields)
    except ClusterError as err:
        if err.code in (403, 404):
            return []
        raise


@click.command()
@click.option(
    "-f", "--filename", "files", multiple=True, help="Delete the objects in these manifests."
)
@click.option("-n", "--namespace", default=None, help="Default: the context's namespace.")
@click.option("--ignore-not-found", is_flag=True)
@click.option(
    "-l", "--selector", default=None, help="Delete the objects of KIND with these labels."
)
@click.option("--all", "all_", is_flag=True, help="Delete every object of KIND in the namespace.")
@click.argument("args", nargs=-1)
@cluster_options
@click.pass_context
def delete(
    ctx: click.Context,
    files: tuple[str, ...],
    namespace: str | None,
    ignore_not_found: bool,
    selector: str | None,
    all_: bool,
    args: tuple[str, ...],
    kubeconfig: str | None,
    context_name: str | None,
) -> None:
    """Delete objects: `delete -f FILE`, `delete KIND NAME...`, `delete KIND/NAME...` or
    `delete KIND -l SELECTOR | --all`.

    From manifests, Namespaces and CustomResourceDefinitions go last: deleting them first
    would take the other objects along and report those as not found."""
    if bool(files) == bool(args):
        raise click.UsageError("give -f FILE or KIND NAME... (not both)")
    cluster = connect(ctx, kubeconfig, context_name)
    targets: list[tuple[ApiResource, str, str]] = []
    if files:
        for source, doc in load(files):
            res = resource_of(cluster, source, doc)
            meta = doc["metadata"]
            targets.append((res, str(meta["name"]), meta.get("namespace") or ""))
        targets.sort(key=lambda t: t[0].kind in ("Namespace", "CustomResourceDefinition"))
    else:
        listed, named = _targets(cluster, args)
        if listed is not None and not named and (selector or all_):
            ns = namespace or cluster.namespace
            found = cluster.list(listed, ns, selector)
            targets = [(listed, o["metadata"]["name"], ns) for o in found]
            if not targets:
                click.echo(f"No resources found{_where(listed, ns)}.", err=True)
        elif not named or selector or all_:
            raise click.UsageError("give KIND NAME..., KIND/NAME... or KIND -l SELECTOR | --all")
        else:
            targets = [(res, name, "") for res, name in named]
    failed = 0
    for res, name, ns in targets:
        ns = ns or namespace or cluster.namespace
        try:
            cluster.delete(res, name, ns)
        except ClusterError as err:
            if err.code == 404 and ignore_not_found:
                continue
            failed += 1
            click.echo(f"error: {res.qualified_kind}/{name}: {err.message}", err=True)
            continue
        click.echo(f"{res.qualified_kind}/{name} deleted")
    if failed:
        sys.exit(1)


def condition_met(obj: dict[str, Any], ctype: str, want: str) -> bool:
    """kubectl wait's test on ``status.conditions``; an object without top-level conditions
    (a Gateway API route) meets it when every parent's status has it."""
    status = obj.get("status") or {}

    def has(conditions: list[dict[str, Any]]) -> bool:
        return any(
            c.get("type", "").lower() == ctype.lower() and c.get("status") == want
            for c in conditions or []
        )

    if status.get("conditions"):
        return has(status["conditions"])
    parents = status.get("parents") or []
    return bool(parents) and all(has(p.get("conditions")) for p in parents)


@click.command()
@click.argument("args", nargs=-1, required=True)
@click.option("-n", "--namespace", default=None, help="Default: the context's namespace.")
@click.option("--all", "all_", is_flag=True, help="Wait for every object of KIND in the namespace.")
@click.option("-l", "--selector", default=None, help="Wait for the objects with these labels.")
@click.option(
    "--for",
    "for_",
    default="condition=Ready",
    show_default=True,
    help="condition=NAME[=STATUS] or delete",
)
@click.option("--timeout", default="60s", show_default=True, help="e.g. 30s, 2m.")
@cluster_options
@click.pass_context
def wait(
    ctx: click.Context,
    args: tuple[str, ...],
    namespace: str | None,
    all_: bool,
    selector: str | None,
    for_: str,
    timeout: str,
    kubeconfig: str | None,
    context_name: str | None,
) -> None:
    """Wait until objects meet a condition (or are gone), like kubectl wait."""
    seconds = parse_duration(timeout)
    if for_ != "delete" and not for_.startswith("condition="):
        raise click.UsageError("--for takes condition=NAME[=STATUS] or delete")
    cluster = connect(ctx, kubeconfig, context_name)
    listed, named = _targets(cluster, args)
    if not named and not (all_ or selector):
        raise click.UsageError("give NAME..., --all or -l SELECTOR")
    ctype, _, want = for_.removeprefix("condition=").partition("=")
    ns = namespace or cluster.namespace
    deadline = time.monotonic() + seconds
    while True:
        pending, met = _wait_round(cluster, listed, named, ns, selector, for_, ctype, want)
        if not pending:
            for line in met:
                click.echo(line)
            return
        if time.monotonic() >= deadline:
            raise click.ClickException(
                f"timed out after {timeout} waiting for {for_} on: {', '.join(pending)}"
            )
        time.sleep(0.2)


def _wait_round(
    cluster: Cluster,
    listed: ApiResource | None,
    named: list[tuple[ApiResource, str]],
    ns: str,
    selector: str | None,
    for_: str,
    ctype: str,
    want: str,
) -> tuple[list[str], list[str]]:
    """(what is still pending, the lines to print once nothing is)."""
    if named:
        found: list[tuple[ApiResource, str, dict[str, Any] | None]] = []
        for res, name in named:
            try:
                found.append((res, name, cluster.get(res, name, ns)))
            except ClusterError as err:
                if err.code != 404:
                    raise
                found.append((res, name, None))
    else:
        assert listed is not None
        objs = cluster.list(listed, ns, selector)
        found = [(listed, o["metadata"]["name"], o) for o in objs]
        if not found and for_ != "delete":
            return ["(none exist yet)"], []
    if for_ == "delete":
        pending = [f"{r.qualified_kind}/{n}" for r, n, o in found if o is not None]
        return pending, [f"{r.qualified_kind}/{n} deleted" for r, n, _ in found]
    pending = [
        f"{r.qualified_kind}/{n}"
        for r, n, o in found
        if o is None or not condition_met(o, ctype, want or "True")
    ]
    return pending, [f"{r.qualified_kind}/{n} condition met" for r, n, _ in found]
