"""`tulle convert`: Ingress objects -> Gateway API objects, with a report of what was not
expressed (gatewayapi/ingress/README.md has the mapping).

Input: files, directories and stdin (-f, repeatable), or --from-cluster (the Ingresses,
IngressClasses and Services the API server serves). Output: the Gateway, HTTPRoutes and
ReferenceGrants on stdout (-o yaml|json); the report on stderr (--report text|json).

With --verify the Ingresses and the converted objects are served side by side on loopback
and a request corpus is replayed against both (agent/cli/convert_verify.py): the differing
responses and a summary go to stdout; exit 0 when no response differs, 3 when one does.
With --verify --lab NAME both sides are applied to that running lab instead and replayed
from its external client (agent/cli/convert_verify_lab.py); loopback stays the default so
that --verify never changes a cluster unless asked to.

Exit status: 0 when everything converted exactly (the report holds notes at most); 3 when
something was refused or approximated (the objects are still written); 1 for input that
cannot be read or is malformed; 2 for usage errors (click's).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import yaml

from agent.cli.cluster import Cluster, connect, connect_to
from agent.cli.context import HOME_KUBECONFIG, choose, cluster_options
from agent.cli.convert_verify import run_verify
from agent.cli.convert_verify_lab import replayer
from agent.cli.manifests import load
from agent.model.convert import ConversionError, from_dict
from gatewayapi.ingress import DEFAULT_GATEWAY_CLASS, Conversion, IngressError, convert

EXIT_NOT_EXACT = 3
"""Exit status when the report has refused or approximated findings."""


class _Failed(click.ClickException):
    exit_code = 1


@click.command("convert")
@click.option(
    "-f", "--filename", "files", multiple=True, help="File, directory or - (stdin); repeatable."
)
@click.option("--from-cluster", is_flag=True, help="Convert the Ingresses the cluster serves.")
@click.option("-n", "--namespace", default=None, help="With --from-cluster: only this namespace.")
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml")
@click.option("--report", "report", type=click.Choice(["text", "json"]), default="text")
@click.option("--gateway-class", default=DEFAULT_GATEWAY_CLASS, show_default=True)
@click.option(
    "--gateway-namespace",
    default="default",
    show_default=True,
    help="The Gateway's namespace when a class's Ingresses span several namespaces.",
)
@click.option(
    "--verify",
    is_flag=True,
    help="Serve the Ingresses and the conversion side by side on loopback, replay a request "
    "corpus and print every response that differs (instead of the objects).",
)
@click.option(
    "--requests",
    "requests_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="With --verify: more requests, a YAML or JSON list of {method, host, path, headers, "
    "scheme}.",
)
@click.option(
    "--lab",
    "verify_lab",
    default=None,
    help="With --verify: serve both sides in this running lab (its LoadBalancer addresses, "
    "its Services and pods) and replay from its external client, instead of on loopback.",
)
@click.option(
    "--keep",
    is_flag=True,
    help="With --verify --lab: leave what was applied in the lab (it is deleted by default).",
)
@cluster_options
@click.pass_context
def convert_cmd(
    ctx: click.Context,
    files: tuple[str, ...],
    from_cluster: bool,
    namespace: str | None,
    output: str,
    report: str,
    gateway_class: str,
    gateway_namespace: str,
    verify: bool,
    requests_file: str | None,
    verify_lab: str | None,
    keep: bool,
    kubeconfig: str | None,
    context_name: str | None,
) -> None:
    """Convert Ingress objects to a Gateway, HTTPRoutes and ReferenceGrants.

    \b
    The converted objects go to stdout, the report of everything not expressed to stderr.
    Exit status: 0 converted exactly; 3 something refused or approximated (see the report);
    1 unreadable or malformed input. With --verify: 0 no response differs, 3 one does.
    """
    if bool(files) == from_cluster:
        raise click.UsageError("give -f FILE|DIR|- (repeatable) or --from-cluster, not both")
    if requests_file is not None and not verify:
        raise click.UsageError("--requests goes with --verify")
    if verify_lab is not None and not verify:
        raise click.UsageError("--lab goes with --verify")
    if keep and verify_lab is None:
        raise click.UsageError("--keep goes with --verify --lab")
    if namespace is not None and not from_cluster:
        raise click.UsageError("-n/--namespace goes with --from-cluster")
    if from_cluster:
        docs = _from_cluster(ctx, namespace, kubeconfig, context_name)
    else:
        docs = [doc for _, doc in load(files)]
    try:
        result = convert(docs, gateway_class=gateway_class, gateway_namespace=gateway_namespace)
    except IngressError as err:
        raise _Failed(str(err)) from err
    _check(result)
    if verify:
        _report(result, report)
        replay = None
        if verify_lab is not None:
            replay = replayer(_lab_cluster(ctx, verify_lab), verify_lab, keep)
        code = run_verify(docs, result, requests_file, output, replay)
        ctx.exit(code)
    _write(result.objects, output)
    _report(result, report)
    if not result.exact:
        ctx.exit(EXIT_NOT_EXACT)


def _from_cluster(
    ctx: click.Context, namespace: str | None, kubeconfig: str | None, context_name: str | None
) -> list[dict[str, Any]]:
    cluster = connect(ctx, kubeconfig, context_name)
    docs: list[dict[str, Any]] = []
    for api, kind in (
        ("networking.k8s.io/v1", "IngressClass"),
        ("v1", "Service"),
        ("networking.k8s.io/v1", "Ingress"),
    ):
        res = cluster.resource_for(api, kind)
        if res is None:
            if kind == "Ingress":
                raise _Failed(f"{cluster.server} does not serve {api} Ingress")
            continue  # IngressClass: a server that does not serve it (older than 1.18)
        for obj in cluster.list(res, namespace):
            docs.append({"apiVersion": api, "kind": kind, **obj})
    return docs


def _lab_cluster(ctx: click.Context, name: str) -> Cluster:
    """The named lab's API server (an error when that lab is not up)."""
    from lab.lifecycle import kubeconfig_path

    choice = choose(flag=None, lab=name, env={}, lab_kubeconfig=kubeconfig_path,
                    home=HOME_KUBECONFIG.expanduser(), in_cluster=False)
    cluster = connect_to(choice)
    ctx.call_on_close(cluster.close)
    return cluster


def _check(result: Conversion) -> None:
    """Every written object must read back as Tulle's model reads it; a refusal here is a
    converter bug, reported as such rather than written."""
    for obj in result.objects:
        try:
            from_dict(obj)
        except ConversionError as err:
            raise _Failed(f"internal error: converted object is invalid: {err}") from err


def _write(objects: list[dict[str, Any]], output: str) -> None:
    if output == "json":
        items = {"apiVersion": "v1", "kind": "List", "items": objects}
        click.echo(json.dumps(items, indent=2))
    else:
        click.echo(yaml.safe_dump_all(objects, sort_keys=False), nl=False)


def _report(result: Conversion, how: str) -> None:
    if how == "json":
        body = {
            "exact": result.exact,
            "findings": [f.to_dict() for f in result.findings],
        }
        click.echo(json.dumps(body, indent=2), err=True)
        return
    for finding in result.findings:
        click.echo(str(finding), err=True)
    if not result.exact:
        click.echo(
            "not exact: the objects above do not do everything the Ingresses did (see above)",
            err=True,
        )
    sys.stderr.flush()
