"""`tulle lab up|down|status|exec`: the local lab cluster."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from agent.cli.cluster import ClusterError, connect_to
from agent.cli.context import Choice, lab_name
from agent.cli.node import dns
from lab import cgroups, cni_runtime, labstatus, lifecycle, volumesetup
from lab.apiserver.node_ports import parse_port_range
from lab.install import MODES as INSTALL_MODES
from lab.state import LabPaths
from lab.topology import TopologyError


def _progress(message: str) -> None:
    click.secho("• ", fg="blue", nl=False, err=True)
    click.echo(message, err=True)


def _check_port_range(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> str | None:
    if value is not None:
        try:
            parse_port_range(value)
        except ValueError as err:
            raise click.BadParameter(str(err)) from None
    return value


def install_mode(install: str | None, *, from_manifests: bool, datapath: bool) -> str:
    """`lab up`'s install mode from its options: --install, else the hidden --from-manifests
    (the flag from before manifests became the default), else manifests, except for a lab
    without the datapath, which only spawn mode can build."""
    if from_manifests:
        if install not in (None, "manifests"):
            raise click.UsageError(f"--from-manifests contradicts --install {install}")
        install = "manifests"
    if install is None:
        return "manifests" if datapath else "spawn"
    if install == "manifests" and not datapath:
        raise click.UsageError(
            "--install manifests installs the datapath: a --no-datapath lab needs --install spawn")
    return install


@click.group()
def lab() -> None:
    """The local lab: a cluster made of network namespaces on this machine."""


@lab.command()
@click.option("--nodes", default=2, show_default=True, help="Number of lab nodes.")
@click.option("--name", default=None, help="Lab name (default: $TULLE_LAB or 'lab').")
@click.option(
    "--datapath/--no-datapath",
    default=True,
    show_default=True,
    help="Load Tulle's eBPF datapath (off: a comparison lab for benchmarks).",
)
@click.option(
    "--svid-lifetime",
    default=None,
    metavar="SECONDS",
    type=click.IntRange(min=60),
    help="Lifetime the agents ask for their pods' SVIDs, renewed at half of it "
    "(default: the agent's, 24 h); short to watch rotation.",
)
@click.option(
    "--service-node-port-range",
    "node_port_range",
    default=None,
    metavar="LOW-HIGH",
    callback=_check_port_range,
    help="Node ports for NodePort and LoadBalancer Services, as kube-apiserver's flag "
    "(default 30000-32767; the L4 benchmark widens it for 10,000 NodePort Services).",
)
@click.option(
    "--install",
    type=click.Choice(INSTALL_MODES),
    default=None,
    help="How Tulle gets into the lab. manifests (the default): `kubectl apply -k "
    "deploy/overlays/lab`, so agents and waypoints run as DaemonSet pods and the CA and "
    "tulle-controller as Deployments, as on a cluster. spawn: the lab starts them as its own "
    "processes, a faster lab for benchmarks and the test tier (and the only one "
    "--no-datapath can have, so it is the default there).",
)
@click.option(
    "--cni",
    type=click.Choice(cni_runtime.MODES),
    default="chain",
    show_default=True,
    help="How the kubelet gives pods their network. chain: a real CNI chain (Debian's ptp + "
    "host-local, then tulle-cni) run as a node's container runtime runs it. builtin: the "
    "kubelet builds the veths itself, no plugin processes per pod: the lab the benchmarks and "
    "the test tier run on.",
)
@click.option("--from-manifests", is_flag=True, hidden=True,
              help="Old spelling of --install manifests.")
@click.pass_context
def up(
    ctx: click.Context, nodes: int, name: str | None, datapath: bool, svid_lifetime: int | None,
    node_port_range: str | None, install: str | None, cni: str, from_manifests: bool,
) -> None:
    """Build the lab: fabric, nodes, API server, kubelets and DNS, then Tulle (by default from
    deploy/ with kubectl, pods networked through the CNI chain)."""
    name = name or lab_name(ctx)
    mode = install_mode(install, from_manifests=from_manifests, datapath=datapath)
    try:
        plan = lifecycle.up(name, nodes, _progress, datapath=datapath, svid_lifetime=svid_lifetime,
                            node_port_range=node_port_range, cni=cni, mode=mode)
    except (lifecycle.LabError, TopologyError) as err:
        raise click.ClickException(str(err)) from err
    click.secho(f"lab {name!r} is up with {len(plan.nodes)} nodes", fg="green")
    click.echo(f"  store: {LabPaths.for_lab(name).store}")
    click.echo(f"  kubeconfig: {lifecycle.kubeconfig_path(name)}  (context tulle-{name})")
    click.echo(
        f"  next:  export KUBECONFIG=$(tulle lab kubeconfig --name {name})   ·   "
        "kubectl apply -f examples/   ·   tulle lab down"
    )


@lab.command()
@click.option("--name", default=None)
@click.option(
    "--component",
    default=None,
    help="A component's kubeconfig (e.g. tulle-agent): its token, the fabric address.",
)
@click.pass_context
def kubeconfig(ctx: click.Context, name: str | None, component: str | None) -> None:
    """Print the lab's kubeconfig path: export KUBECONFIG=$(tulle lab kubeconfig)."""
    name = name or lab_name(ctx)
    path = lifecycle.kubeconfig_path(name)
    if component is not None:
        path = path.with_name(f"{component}.kubeconfig")
    if not path.exists():
        raise click.ClickException(
            f"no kubeconfig at {path}: is lab {name!r} up (`tulle lab up`)?"
            + (
                " Components: tulle-agent, tulle-waypoint, tulle-controller, tulle-lab-controller,"
                " tulle-lab-dns."
                if component
                else ""
            )
        )
    click.echo(str(path))


@lab.command()
@click.option("--name", default=None)
@click.pass_context
def down(ctx: click.Context, name: str | None) -> None:
    """Remove everything the lab created (idempotent)."""
    name = name or lab_name(ctx)
    try:
        lifecycle.down(name, _progress)
    except lifecycle.LabError as err:
        raise click.ClickException(str(err)) from err
    click.secho(f"lab {name!r} is down", fg="green")


@lab.command()
@click.option("--name", default=None)
@click.pass_context
def status(ctx: click.Context, name: str | None) -> None:
    """Nodes, processes and health of the lab."""
    name = name or lab_name(ctx)
    st = labstatus.status(name)
    if st is None:
        click.echo(f"lab {name!r} is not up (start it with `tulle lab up`)")
        sys.exit(1)
    click.echo(f"lab {st.name}: {'healthy' if st.healthy else 'DEGRADED'}   store {st.store}")
    click.echo(f"{'NODE':8} {'NETNS':22} {'POD-CIDR':15} {'AGENT':8} DETAIL")
    for n in st.nodes:
        health = "ready" if n.agent_healthy else "NOTREADY"
        netns = n.netns if n.netns_present else f"{n.netns} (MISSING)"
        click.echo(f"{n.name:8} {netns:22} {n.pod_cidr:15} {health:8} {n.agent_detail}")
    click.echo(f"{'PROCESS':16} {'PID':>7} {'RESTARTS':>8} STATE")
    for p in st.processes:
        state = "running" if p.alive else "DEAD"
        if p.restart_in is not None:
            state += f" (back-off: restart in {p.restart_in:.0f}s)"
        click.echo(f"{p.role:16} {p.pid:>7} {p.restarts:>8} {state}")
    if not st.healthy:
        click.echo(f"logs: {LabPaths.for_lab(name).logs}")
        sys.exit(1)


def lab_pod(name: str, namespace: str, pod: str) -> dict[str, Any]:
    """The pod, read through the lab's API server with the lab's own kubeconfig, whatever
    $KUBECONFIG says: exec always runs in this lab's namespaces."""
    path = lifecycle.kubeconfig_path(name)
    if not path.exists():
        raise click.ClickException(f"lab {name!r} is not up (no kubeconfig at {path})")
    cluster = connect_to(Choice((path,), f"lab {name!r}"))
    try:
        pods = cluster.resource_for("v1", "Pod")
        assert pods is not None, "every Kubernetes API serves v1 Pods"
        return cluster.get(pods, pod, namespace)
    except ClusterError as err:
        if err.code == 404:
            raise click.ClickException(
                f'pod "{pod}" not found in namespace {namespace!r} (lab {name!r})'
            ) from err
        raise
    finally:
        cluster.close()


@lab.command(name="exec", context_settings={"ignore_unknown_options": True})
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-c", "--container", default=None,
              help="The container whose mount namespace to enter (default: the first).")
@click.option(
    "--external",
    is_flag=True,
    help="Run in the lab's external client (a machine outside the cluster), not a pod: "
    "tulle lab exec --external -- CMD...",
)
@click.argument("pod", required=False)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def exec_(
    ctx: click.Context, namespace: str, container: str | None, external: bool, pod: str | None,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND inside POD's network namespace (and, for a pod with volumes, its
    container's mount namespace): tulle lab exec POD -- CMD...

    With --external, in the external client's: tulle lab exec --external -- CMD..."""
    if external:
        # After `--` click hands every word to the positionals: POD holds the command's first.
        _exec_external(lab_name(ctx), ((pod,) if pod is not None else ()) + command)
    if pod is None or not command:
        raise click.UsageError("usage: tulle lab exec POD -- CMD... (or --external -- CMD...)")
    name = lab_name(ctx)
    obj = lab_pod(name, namespace, pod)
    plan = labstatus.load_plan(LabPaths.for_lab(name))
    if plan is None:
        raise click.ClickException(f"lab {name!r} is not up")
    spec = obj.get("spec") or {}
    node = spec.get("nodeName") or ""
    host = bool(spec.get("hostNetwork")) and node in {n.name for n in plan.nodes}
    # A hostNetwork pod runs in its node's netns (lab/kubelet.py): only that is switched
    # there, as the kubelet runs it, so bpffs and tracefs stay the host's.
    netns = plan.node(node).netns if host else plan.pod_netns(namespace, pod)
    if not os.path.exists(f"/var/run/netns/{netns}"):
        raise click.ClickException(
            f"pod {namespace}/{pod} has no sandbox yet (is it scheduled and running?)"
        )
    env = dict(
        os.environ,
        POD_NAME=pod,
        NAMESPACE=namespace,
        POD_IP=str((obj.get("status") or {}).get("podIP", "")),
    )
    argv = (["nsenter", f"--net=/var/run/netns/{netns}", "--", *command] if host
            else ["ip", "netns", "exec", netns, *command])
    names = [c.get("name", "") for c in spec.get("containers") or []]
    if container is not None and container not in names:
        raise click.ClickException(f"pod {namespace}/{pod} has no container {container!r}")
    pid = volumesetup.mount_ns_pid(LabPaths.for_lab(name), namespace, pod,
                                   container or (names[0] if names else ""))
    if pid is not None:  # what the container sees at its mount paths, in its network
        argv = ["nsenter", f"--target={pid}", "--mount", "--net", "--", *command]
        env = _container_env(pid) or env  # as a CRI exec: the container's env (its PATH)
    elif any(c.get("volumeMounts") for c in spec.get("containers") or []):
        # Its volumes exist only in its mount namespace: never run on the host's files.
        raise click.ClickException(
            f"container {container or names[0]!r} of pod {namespace}/{pod} is not running")
    cgroup = cgroups.pod_cgroup(name, node, namespace, pod) if node else None
    if cgroup is not None and cgroup.is_dir():  # run as the pod's (its node's RTT tracing)
        argv = cgroups.in_cgroup(cgroup, argv)
    # exec replaces this process: exit code, stdin and tty pass straight through.
    os.execvpe(argv[0], argv, env)


def _container_env(pid: int) -> dict[str, str]:
    """The environment process ``pid`` started with ({} if it exited meanwhile)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _exec_external(name: str, command: tuple[str, ...]) -> None:
    if not command:
        raise click.UsageError("usage: tulle lab exec --external -- CMD...")
    plan = labstatus.load_plan(LabPaths.for_lab(name))
    if plan is None:
        raise click.ClickException(f"lab {name!r} is not up")
    if not os.path.exists(f"/var/run/netns/{plan.external_netns}"):
        raise click.ClickException(
            f"lab {name!r} has no external client (built by a newer `tulle lab up`: "
            "run `tulle lab down` and `tulle lab up`)"
        )
    argv = ["ip", "netns", "exec", plan.external_netns, *command]
    os.execvp(argv[0], argv)


@lab.command(hidden=True)
@click.option("--name", required=True)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The controller ServiceAccount's kubeconfig (default: the lab's, on loopback).",
)
def controller(name: str, kubeconfig: Path | None) -> None:
    """(internal) scheduler, Deployment, EndpointSlice and Gateway status controllers,
    kubelet; a client of the lab's Kubernetes API."""
    from lab.controllers.manager import run

    sys.exit(run(name, kubeconfig))


@lab.command(hidden=True)
@click.option("--name", required=True)
def relay(name: str) -> None:
    """(internal) merges every node's flows; serves the lab's relay socket."""
    from lab.relay import run

    sys.exit(run(name))


lab.add_command(dns)
