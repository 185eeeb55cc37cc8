"""The relay's commands and the observer's TLS flags: `tulle relay` (also `python3 -m
agent.cli.node relay`, Deployment tulle-relay), `tulle certs relay` (the CA and both
certificate pairs as Secrets), and the check of the agent's ``--observer-tls-*`` flags."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import click

TLS_FLAGS = ("--observer-tls-cert", "--observer-tls-key", "--observer-tls-client-ca")


def observer_tls_files(host: str, cert: str | None, key: str | None,
                       client_ca: str | None) -> tuple[str, str, str] | None:
    """The agent's three TLS files, or None; plaintext only on a loopback address (pods reach
    every other address of the node: ARCHITECTURE.md, "Exposure")."""
    given = dict(zip(TLS_FLAGS, (cert, key, client_ca), strict=True))
    missing = [flag for flag, value in given.items() if not value]
    if len(missing) < len(given):
        if missing:
            raise click.BadParameter(f"needs {' and '.join(missing)} too",
                                     param_hint=", ".join(f for f in TLS_FLAGS
                                                          if f not in missing))
        assert cert and key and client_ca
        return (cert, key, client_ca)
    if not _loopback(host):
        raise click.BadParameter(
            f"{host!r} is not a loopback address: serving flows beyond the node needs mTLS "
            f"({', '.join(TLS_FLAGS)})", param_hint="--observer-host")
    return None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command()
@click.option("--listen", default="0.0.0.0:4245", show_default=True, metavar="HOST:PORT",
              help="Where the relay serves the merged observer API (tulle observe --server).")
@click.option("--kubeconfig", default=None, type=click.Path(dir_okay=False),
              help="Kubeconfig to list Nodes with (default: the in-cluster ServiceAccount).")
@click.option("--peer", "peers", multiple=True, metavar="NAME=ADDRESS",
              help="A node's agent (HOST:PORT or unix:/PATH), repeatable; given: no Node "
              "list, these only.")
@click.option("--agent-port", default=4244, show_default=True, type=click.IntRange(1, 65535),
              help="The agents' observer port on each Node's InternalIP.")
@click.option("--cluster-name", default="default", show_default=True,
              help="The agents' TLS names are NODE.CLUSTER-NAME.observer.tulle.io.")
@click.option("--tls-client-cert", default=None, metavar="PATH",
              help="The relay's client certificate (PEM) for the agents.")
@click.option("--tls-client-key", default=None, metavar="PATH", help="Its private key (PEM).")
@click.option("--tls-server-ca", default=None, metavar="PATH",
              help="The CA (PEM) that signed the agents' certificates.")
@click.option("--resync", default=30.0, show_default=True, type=click.FloatRange(min=1),
              help="Seconds between Node lists.")
def relay(listen: str, kubeconfig: str | None, peers: tuple[str, ...], agent_port: int,
          cluster_name: str, tls_client_cert: str | None, tls_client_key: str | None,
          tls_server_ca: str | None, resync: float) -> None:
    """Merge every node's flows (Hubble Relay's role), dialling the agents over mTLS."""
    from agent.observer.relayd import RelayConfig, needs_tls, parse_peer, run

    try:
        static = tuple(parse_peer(p) for p in peers)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--peer") from None
    files = (tls_client_cert, tls_client_key, tls_server_ca)
    flags = ("--tls-client-cert", "--tls-client-key", "--tls-server-ca")
    if any(files) and not all(files):
        missing = [f for f, v in zip(flags, files, strict=True) if not v]
        raise click.BadParameter(f"needs {' and '.join(missing)} too", param_hint="--tls-*")
    tls = ((tls_client_cert, tls_client_key, tls_server_ca)
           if tls_client_cert and tls_client_key and tls_server_ca else None)
    if tls is None and (not static or needs_tls(static)):
        raise click.UsageError(
            "agents on the network are dialled over mTLS only: give --tls-client-cert, "
            "--tls-client-key and --tls-server-ca (`tulle certs relay` makes them), or "
            "unix:/PATH peers")
    raise SystemExit(run(RelayConfig(
        listen=listen, kubeconfig=kubeconfig, static_peers=static, agent_port=agent_port,
        cluster=cluster_name, tls=tls, resync=resync,
    )))


@click.group()
def certs() -> None:
    """Certificates Tulle's components need."""


@certs.command("relay")
@click.option("--cluster-name", default="default", show_default=True,
              help="As the relay's --cluster-name: the agents' certificate is for "
              "*.CLUSTER-NAME.observer.tulle.io.")
@click.option("--namespace", default="tulle-system", show_default=True)
@click.option("--days", default=365, show_default=True, type=click.IntRange(min=1),
              help="Lifetime of both certificates (the CA: 10 years or more).")
@click.option("--out-dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Write PEM files here (agent/, relay/: tls.crt, tls.key, ca.crt) instead "
              "of Secrets on stdout.")
def certs_relay(cluster_name: str, namespace: str, days: int, out_dir: Path | None) -> None:
    """A CA, the agents' server pair and the relay's client pair for relay-to-agent mTLS.

    \b
    tulle certs relay | kubectl apply -f -    # Secrets tulle-observer-server-certs and
                                              # tulle-relay-client-certs
    The CA's key is not kept: run it again (and restart nothing: both sides reload) to rotate.
    """
    from agent.observer.certgen import generate, secrets_yaml

    pki = generate(cluster_name, days)
    if out_dir is None:
        click.echo(secrets_yaml(pki, namespace), nl=False)
        return
    for side, pair in (("agent", pki.agent), ("relay", pki.relay)):
        where = out_dir / side
        where.mkdir(parents=True, exist_ok=True)
        (where / "tls.crt").write_bytes(pair.cert_pem)
        key = where / "tls.key"
        key.touch(mode=0o600)
        key.chmod(0o600)
        key.write_bytes(pair.key_pem)
        (where / "ca.crt").write_bytes(pki.ca_pem)
    click.echo(f"wrote {out_dir}/agent and {out_dir}/relay", err=True)
