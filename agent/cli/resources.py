"""`tulle apply|delete|get|describe`: kubectl-shaped verbs over the store."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import yaml

from agent.apiserver import AdmissionError, admit
from agent.cli.context import store_path
from agent.cli.printers import table
from agent.model.convert import load_sources
from agent.model.kinds import KindInfo, UnknownKindError, resolve_kind
from agent.store import Store


def _load(files: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    try:
        docs = load_sources(list(files), sys.stdin)
    except (OSError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    if not docs:
        raise click.ClickException(f"no objects found in {', '.join(files)}")
    return docs


def _kind(text: str) -> KindInfo:
    try:
        return resolve_kind(text)
    except UnknownKindError as err:
        raise click.ClickException(str(err)) from err


@click.command()
@click.option(
    "-f",
    "--filename",
    "files",
    multiple=True,
    required=True,
    help="File, directory or - for stdin (repeatable).",
)
@click.pass_context
def apply(ctx: click.Context, files: tuple[str, ...]) -> None:
    """Create or update objects from YAML or JSON manifests (all-or-nothing)."""
    docs = _load(files)
    with Store(store_path(ctx)) as store:
        try:
            objs = admit(store, docs)
        except AdmissionError as err:
            for line in err.errors:
                click.echo(f"error: {line}", err=True)
            raise click.ClickException(
                f"{len(err.errors)} invalid object(s); nothing was applied"
            ) from err
        for stored, action in store.apply_many(objs):
            click.echo(f"{stored['kind'].lower()}/{stored['metadata']['name']} {action}")


@click.command()
@click.option(
    "-f", "--filename", "files", multiple=True, help="Delete the objects in these manifests."
)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--ignore-not-found", is_flag=True)
@click.argument("args", nargs=-1)
@click.pass_context
def delete(
    ctx: click.Context,
    files: tuple[str, ...],
    namespace: str,
    ignore_not_found: bool,
    args: tuple[str, ...],
) -> None:
    """Delete objects: `delete -f FILE` or `delete KIND NAME...`."""
    keys: list[tuple[str, str, str]] = []
    if files:
        for _, doc in _load(files):
            info = _kind(str(doc.get("kind", "")))
            meta = doc.get("metadata") or {}
            ns = (meta.get("namespace") or "default") if info.namespaced else ""
            keys.append((info.kind, ns, str(meta.get("name", ""))))
    elif len(args) >= 2:
        info = _kind(args[0])
        keys = [(info.kind, namespace if info.namespaced else "", name) for name in args[1:]]
    else:
        raise click.UsageError("give -f FILE or KIND NAME...")
    missing = 0
    with Store(store_path(ctx)) as store:
        for kind, ns, name in keys:
            if store.delete(kind, ns, name) is not None:
                click.echo(f"{kind.lower()}/{name} deleted")
            elif not ignore_not_found:
                missing += 1
                click.echo(
                    f'Error: {kind} "{name}" not found' + (f" in namespace {ns!r}" if ns else ""),
                    err=True,
                )
    if missing:
        sys.exit(1)


@click.command()
@click.argument("kind")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("-o", "--output", type=click.Choice(["yaml", "json", "wide", "name"]), default=None)
@click.option("-l", "--selector", default=None, help="Label selector, e.g. app=echo,tier=web")
@click.pass_context
def get(
    ctx: click.Context,
    kind: str,
    name: str | None,
    namespace: str,
    all_namespaces: bool,
    output: str | None,
    selector: str | None,
) -> None:
    """Show objects of KIND (name, plural or short name), like kubectl get."""
    info = _kind(kind)
    ns = None if (all_namespaces or not info.namespaced) else namespace
    labels = dict(part.split("=", 1) for part in selector.split(",")) if selector else None
    with Store(store_path(ctx)) as store:
        objs, _ = store.list(info.kind, ns, labels)
    if name:
        objs = [o for o in objs if o["metadata"]["name"] == name]
        if not objs:
            where = f" in namespace {namespace!r}" if info.namespaced and not all_namespaces else ""
            raise click.ClickException(f'{info.kind} "{name}" not found{where}')
    if output == "json":
        body = objs[0] if name else {"apiVersion": "v1", "kind": "List", "items": objs}
        click.echo(json.dumps(body, indent=2))
    elif output == "yaml":
        body = objs[0] if name else {"apiVersion": "v1", "kind": "List", "items": objs}
        click.echo(yaml.safe_dump(body, sort_keys=False).rstrip())
    elif output == "name":
        for o in objs:
            click.echo(f"{info.plural}/{o['metadata']['name']}")
    elif not objs:
        where = "" if ns is None else f" in {ns} namespace"
        click.echo(f"No resources found{where}.", err=True)
    else:
        click.echo(
            table(
                objs,
                info.kind,
                all_namespaces=ns is None,
                wide=output == "wide",
                namespaced=info.namespaced,
            )
        )


@click.command(name="describe")
@click.argument("kind")
@click.argument("name")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.pass_context
def describe_cmd(ctx: click.Context, kind: str, name: str, namespace: str) -> None:
    """Show one object in detail, conditions first."""
    info = _kind(kind)
    with Store(store_path(ctx)) as store:
        obj = store.get(info.kind, namespace if info.namespaced else "", name)
    if obj is None:
        raise click.ClickException(f'{info.kind} "{name}" not found')
    meta = obj["metadata"]
    lines = [f"Name:         {meta['name']}"]
    if info.namespaced:
        lines.append(f"Namespace:    {meta.get('namespace')}")
    lines += [
        f"Kind:         {obj['kind']} ({obj.get('apiVersion')})",
        f"Labels:       {_labels(meta.get('labels') or {})}",
        f"Created:      {meta.get('creationTimestamp')}",
        f"Generation:   {meta.get('generation')}   ResourceVersion: {meta.get('resourceVersion')}",
    ]
    conditions = _all_conditions(obj.get("status") or {})
    if conditions:
        lines.append("Conditions:")
        for where, cond in conditions:
            reason = f" ({cond.get('reason')})" if cond.get("reason") else ""
            msg = f": {cond.get('message')}" if cond.get("message") else ""
            lines.append(f"  {where}{cond.get('type')}={cond.get('status')}{reason}{msg}")
    for section in ("spec", "data", "status"):
        if obj.get(section):
            lines.append(f"{section.capitalize()}:")
            body = yaml.safe_dump(obj[section], sort_keys=False).rstrip()
            lines += ["  " + line for line in body.splitlines()]
    click.echo("\n".join(lines))


def _labels(labels: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in labels.items()) or "<none>"


def _all_conditions(status: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = [("", c) for c in status.get("conditions", []) or []]
    for parent in status.get("parents", []) or []:
        ref = parent.get("parentRef", {})
        found += [(f"parent {ref.get('name')}: ", c) for c in parent.get("conditions", []) or []]
    for listener in status.get("listeners", []) or []:
        found += [
            (f"listener {listener.get('name')}: ", c) for c in listener.get("conditions", []) or []
        ]
    return found


def _has_condition(obj: dict[str, Any], ctype: str, want: str) -> bool:
    return any(
        c.get("type", "").lower() == ctype.lower() and c.get("status") == want
        for c in (obj.get("status") or {}).get("conditions", []) or []
    )


@click.command()
@click.argument("kind")
@click.argument("names", nargs=-1)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--all", "all_", is_flag=True, help="Wait for every object of KIND in the namespace.")
@click.option(
    "--for",
    "for_",
    default="condition=Ready",
    show_default=True,
    help="condition=NAME[=STATUS] or delete",
)
@click.option("--timeout", default=60.0, show_default=True, help="Seconds.")
@click.pass_context
def wait(
    ctx: click.Context,
    kind: str,
    names: tuple[str, ...],
    namespace: str,
    all_: bool,
    for_: str,
    timeout: float,
) -> None:
    """Wait until objects meet a condition, like kubectl wait."""
    import time

    info = _kind(kind)
    if not names and not all_:
        raise click.UsageError("give NAME... or --all")
    if for_ != "delete" and not for_.startswith("condition="):
        raise click.UsageError("--for takes condition=NAME[=STATUS] or delete")
    ctype, _, want = for_.removeprefix("condition=").partition("=")
    ns = namespace if info.namespaced else ""
    deadline = time.monotonic() + timeout
    with Store(store_path(ctx)) as store:
        while True:
            objs, _ = store.list(info.kind, ns or None)
            if names:
                objs = [o for o in objs if o["metadata"]["name"] in names]
            if for_ == "delete":
                pending = [o["metadata"]["name"] for o in objs]
            else:
                missing = set(names) - {o["metadata"]["name"] for o in objs}
                pending = sorted(missing) + [
                    o["metadata"]["name"]
                    for o in objs
                    if not _has_condition(o, ctype, want or "True")
                ]
                if all_ and not objs:
                    pending = ["(none exist yet)"]
            if not pending:
                for o in objs:
                    click.echo(f"{info.kind.lower()}/{o['metadata']['name']} condition met")
                return
            if time.monotonic() >= deadline:
                raise click.ClickException(
                    f"timed out after {timeout:.0f}s waiting for {for_} on: {', '.join(pending)}"
                )
            time.sleep(0.2)
