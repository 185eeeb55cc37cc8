"""The node components' commands: `tulle agent`, `tulle waypoint` and (internal) `tulle lab
dns`. `tulle lab up` runs them as `python -m agent.cli.node ...`, so that each process
imports only what it runs, not the whole CLI (the observer client's gRPC alone is ~10 MB of
a waypoint's memory)."""

from __future__ import annotations

import click

from agent.cli.relay import observer_tls_files, relay
from identity.spiffe import DEFAULT_TRUST_DOMAIN


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def node_cli() -> None:
    """Tulle's per-node processes."""


kubeconfig_option = click.option(
    "--kubeconfig",
    default=None,
    type=click.Path(dir_okay=False),
    help="Kubeconfig to reach the API server with (default: the in-cluster ServiceAccount).",
)


@node_cli.command()
@click.option("--node", required=True, help="This node's name.")
@kubeconfig_option
@click.option("--health-file", default=None, type=click.Path(dir_okay=False))
@click.option("--pin-dir", default=None, help="Load the eBPF datapath, pinning maps here.")
@click.option(
    "--state-dir",
    default="/var/run/tulle",
    show_default=True,
    help="Where the agent keeps its compile record: a restart with the same programs adopts "
    "the pinned ones instead of compiling (~1.5 s CPU). Empty: always compile.",
)
@click.option(
    "--cni-state-dir",
    default="/var/run/tulle/cni",
    show_default=True,
    help="tulle-cni's state directory (cni/README.md): this node's pods' addresses and host "
    "veths come from its records, and each pod's CNI ADD waits for the agent's mark there. "
    "Pods without a record are found by route. Empty: off. Needs --pin-dir.",
)
@click.option("--observer-socket", default=None, help="Unix socket for the observer API.")
@click.option(
    "--observer-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the observer API's TCP port binds (the node IP only behind a host firewall).",
)
@click.option("--observer-port", default=4244, show_default=True, help="Observer API TCP port.")
@click.option(
    "--observer-tls-cert",
    default=None,
    metavar="PATH",
    help="The agent's certificate (PEM, for *.CLUSTER.observer.tulle.io): the observer's TCP "
    "port speaks mTLS. With --observer-tls-key and --observer-tls-client-ca; files that "
    "change are used from the next connection on.",
)
@click.option("--observer-tls-key", default=None, metavar="PATH", help="Its private key (PEM).")
@click.option(
    "--observer-tls-client-ca",
    default=None,
    metavar="PATH",
    help="The CA (PEM) whose client certificates (the relay's) the observer's TCP port "
    "accepts; no other client is served.",
)
@click.option("--flow-capacity", default=65_535, show_default=True, help="Flows kept in memory.")
@click.option(
    "--metrics-address",
    default="127.0.0.1:9965",
    show_default=True,
    help="Prometheus endpoint HOST:PORT; empty to disable.",
)
@click.option(
    "--metrics-hubble-names/--no-metrics-hubble-names",
    default=False,
    show_default=True,
    help="Expose flow metrics Hubble also has under Hubble's names (hubble_drop_total…).",
)
@click.option("--l7-intake", default=None, help="Unix socket for the waypoint's L7 flows.")
@click.option(
    "--waypoint",
    default=None,
    metavar="IPv4:PORT",
    help="Where this node's waypoint listens: the datapath redirects L7 connections there.",
)
@click.option(
    "--ct-endpoint-quota",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Live connections one pod may open (conntrack fairness); 0: an eighth of the table.",
)
@click.option(
    "--trust-domain",
    default=DEFAULT_TRUST_DOMAIN,
    show_default=True,
    callback=lambda _ctx, _param, value: _trust_domain(value),
    help="SPIFFE trust domain of the pods' identities in flows "
    "(spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICE-ACCOUNT).",
)
@click.option(
    "--trace/--no-trace",
    default=True,
    show_default=True,
    help="Kernel connection tracing (tracepoints; needs --pin-dir).",
)
@click.option(
    "--pod-cgroup",
    default=None,
    metavar="PATH",
    callback=lambda _ctx, _param, value: _pod_cgroup(value),
    help="The cgroup v2 directory holding this node's pods (never the root cgroup): RTT "
    "samples from a sock_ops program there instead of the per-segment tcp_probe.",
)
@click.option(
    "--ca-address",
    default=None,
    metavar="HOST:PORT",
    callback=lambda _ctx, _param, value: _ca_address(value),
    help="The certificate service (tulle-controlplane) to get the node's workload SVIDs "
    "from, over TLS trusting the trust bundle (unix:/PATH: a local socket, plaintext). "
    "Absent: no SVIDs.",
)
@click.option(
    "--svid-dir",
    default=None,
    metavar="PATH",
    help="The node-local SVID directory the waypoint reads (default: STATE-DIR/svid).",
)
@click.option(
    "--system-namespace",
    envvar="TULLE_SYSTEM_NAMESPACE",
    default="tulle-system",
    show_default=True,
    metavar="NAMESPACE",
    callback=lambda _ctx, _param, value: _system_namespace(value),
    help="Tulle's namespace: the CA's Service (tulle-controlplane.NAMESPACE.svc) and the "
    "trust bundle ConfigMap. Also $TULLE_SYSTEM_NAMESPACE.",
)
@click.option(
    "--svid-lifetime",
    default=86_400,
    show_default=True,
    metavar="SECONDS",
    type=click.IntRange(min=60),
    help="Lifetime asked for each SVID; renewed at half of it.",
)
@click.option(
    "--announce-interface",
    default=None,
    metavar="IFNAME",
    help="Answer ARP on this interface for the LoadBalancer and Gateway addresses elected "
    "to this node (MetalLB's L2 mode; the lab: the node's fabric uplink). Absent: off.",
)
def agent(
    node: str,
    kubeconfig: str | None,
    health_file: str | None,
    pin_dir: str | None,
    state_dir: str,
    cni_state_dir: str,
    observer_socket: str | None,
    observer_host: str,
    observer_port: int,
    observer_tls_cert: str | None,
    observer_tls_key: str | None,
    observer_tls_client_ca: str | None,
    flow_capacity: int,
    metrics_address: str,
    metrics_hubble_names: bool,
    l7_intake: str | None,
    waypoint: str | None,
    ct_endpoint_quota: int,
    trust_domain: str,
    trace: bool,
    pod_cgroup: str | None,
    ca_address: str | None,
    svid_dir: str | None,
    svid_lifetime: int,
    system_namespace: str,
    announce_interface: str | None,
) -> None:
    """Run the node agent (one per node; the DaemonSet's process)."""
    from agent.daemon import AgentConfig, run

    if ca_address and not svid_dir:
        if not state_dir:
            raise click.BadParameter("needs --svid-dir when --state-dir is empty",
                                     param_hint="--ca-address")
        svid_dir = f"{state_dir.rstrip('/')}/svid"

    config = AgentConfig(
        node=node,
        kubeconfig=kubeconfig,
        health_file=health_file,
        pin_dir=pin_dir,
        state_dir=state_dir or None,
        observer_socket=observer_socket,
        observer_host=observer_host,
        observer_port=observer_port,
        observer_tls=observer_tls_files(observer_host, observer_tls_cert, observer_tls_key,
                                        observer_tls_client_ca),
        metrics_address=metrics_address or None,
        metrics_hubble_names=metrics_hubble_names,
        l7_intake=l7_intake,
        flow_capacity=flow_capacity,
        waypoint=waypoint,
        ct_endpoint_quota=ct_endpoint_quota,
        trust_domain=trust_domain,
        trace=trace,
        pod_cgroup=pod_cgroup,
        ca_address=ca_address,
        svid_dir=svid_dir if ca_address else None,
        svid_lifetime=svid_lifetime,
        system_namespace=system_namespace,
        announce_interface=announce_interface,
        cni_state_dir=(cni_state_dir or None) if pin_dir else None,
    )
    raise SystemExit(run(config))


def _trust_domain(value: str) -> str:
    from identity.spiffe import SpiffeId, SpiffeIdError

    try:
        return SpiffeId(value).trust_domain
    except SpiffeIdError as err:
        raise click.BadParameter(str(err), param_hint="--trust-domain") from None


def _system_namespace(value: str) -> str:
    from identity.system import SystemNamespaceError, check_namespace

    try:
        return check_namespace(value)
    except SystemNamespaceError as err:
        raise click.BadParameter(str(err), param_hint="--system-namespace") from None


def _ca_address(value: str | None) -> str | None:
    """HOST:PORT ([IPv6]:PORT) or unix:/absolute/path; None or empty: off."""
    if not value:
        return None
    if value.startswith("unix:"):
        if not value.removeprefix("unix:").startswith("/"):
            raise click.BadParameter(f"{value!r}: a unix socket needs an absolute path "
                                     "(unix:/PATH)", param_hint="--ca-address")
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not host or host in ("[]",) or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{value!r}: expected HOST:PORT or unix:/PATH",
                                 param_hint="--ca-address")
    return value


def _pod_cgroup(value: str | None) -> str | None:
    if value is None:
        return None
    from agent.tracing.cgroup import PodCgroupError, pod_cgroup

    try:
        return str(pod_cgroup(value))
    except (PodCgroupError, OSError) as err:
        raise click.BadParameter(str(err).removeprefix("--pod-cgroup "),
                                 param_hint="--pod-cgroup") from None


@node_cli.command()
@click.option("--node", required=True, help="This node's name.")
@kubeconfig_option
@click.option("--pin-dir", required=True, help="The node's datapath pin dir (redirect map).")
@click.option("--listen", required=True, help="ADDRESS:PORT the datapath redirects to.")
@click.option("--flow-intake", required=True, help="The node agent's L7 flow socket.")
@click.option(
    "--metrics-address",
    default="127.0.0.1:9966",
    show_default=True,
    help="The waypoint's Prometheus endpoint HOST:PORT.",
)
@click.option(
    "--request-split/--no-request-split",
    default=True,
    show_default=True,
    help="Where each request's time went (tulle trace request), part of tracing; "
    "SIGUSR1/SIGUSR2 switch it at run time, as they do the agent's kernel tracing.",
)
@click.option(
    "--svid-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="The node's SVID directory (written by the agent): enables HBONE mTLS tunnels, "
    "listening on the --listen address at 15008 (from other waypoints) and 15007 "
    "(enrolled pods' connections the datapath redirects).",
)
@click.option(
    "--trust-domain",
    default=DEFAULT_TRUST_DOMAIN,
    show_default=True,
    callback=lambda _ctx, _param, value: _trust_domain(value),
    help="The SPIFFE trust domain of the pods' identities (with --svid-dir).",
)
@click.option(
    "--active-lock",
    default=None,
    type=click.Path(dir_okay=False),
    help="Run as one of an active/standby pair: serve only while holding this file's lock, "
    "a synced standby until then (the lab runs two per node).",
)
@click.option(
    "--standby",
    is_flag=True,
    help="With --active-lock: start as the standby (take the lock only once another "
    "waypoint has held it).",
)
@click.option(
    "--trust-forwarded-for",
    is_flag=True,
    help="Keep the X-Forwarded-For that clients send through a Gateway, appending their "
    "address (only behind a proxy you run). Default: replace it with the client's address.",
)
def waypoint(
    node: str,
    kubeconfig: str | None,
    pin_dir: str,
    listen: str,
    flow_intake: str,
    metrics_address: str,
    request_split: bool,
    svid_dir: str | None,
    trust_domain: str,
    active_lock: str | None,
    standby: bool,
    trust_forwarded_for: bool,
) -> None:
    """Run the node's L7 waypoint (HTTPRoutes, Gateways) behind transparent redirection."""
    if standby and not active_lock:
        raise click.UsageError("--standby needs --active-lock (the lock the pair shares)")
    from l7proxy.node import run

    raise SystemExit(
        run(node, kubeconfig, pin_dir, listen, flow_intake, metrics_address, request_split,
            svid_dir, trust_domain, active_lock, standby, trust_forwarded_for)
    )


@node_cli.command(hidden=True)
@kubeconfig_option
def dns(kubeconfig: str | None) -> None:
    """(internal) node-local DNS server, run inside a node netns."""
    from lab.dns.process import run

    raise SystemExit(run(kubeconfig))


@node_cli.command()
@click.option("--node", required=True, help="This node's name.")
@kubeconfig_option
@click.option(
    "--out",
    default="/var/run/tulle/waypoint-address",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Where to write the node's waypoint address (empty: the node has none).",
)
def setup(node: str, kubeconfig: str | None, out: str) -> None:
    """Put the node's waypoint address on its loopback (the DaemonSet's init container)."""
    from pathlib import Path

    from agent.cli.nodesetup import run

    raise SystemExit(run(node, kubeconfig, Path(out)))


node_cli.add_command(relay)

if __name__ == "__main__":
    node_cli()
