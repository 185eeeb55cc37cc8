"""``python -m controlplane --listen HOST:PORT [--kubeconfig K] [--trust-domain TD]
[--system-namespace tulle-system] [--max-lifetime 24h] [--root-overlap D] [--metrics HOST:PORT]``:
Tulle's identity service (the CA agents get SVIDs from; controlplane/README.md).

Without --kubeconfig it uses the in-cluster ServiceAccount (a Deployment's pod). It loads
or generates the root (Secret tulle-system/tulle-ca), publishes the bundle (ConfigMap
tulle-system/tulle-trust-bundle), watches Pods, and serves CreateCertificate over TLS with a
serving certificate signed by the same CA, authenticating agents by TokenReview.
SIGTERM stops it gracefully (in-flight calls get a few seconds).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from types import FrameType

from prometheus_client import CollectorRegistry, start_http_server

from identity.system import (
    SystemNamespaceError,
    agent_account,
    check_namespace,
    system_namespace,
)

LOG = logging.getLogger("tulle.controlplane")
REFRESH_SECONDS = 10.0  # how often the Secret is re-read (a replaced root takes over)
SYNC_SECONDS = 30.0  # how long to wait for the first Pod list before serving anyway
GRACE_SECONDS = 5.0
_DURATION = re.compile(r"^(\d+)(s|m|h|d)?$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> timedelta:
    """'90', '90s', '30m', '24h', '7d' -> timedelta; argparse error otherwise."""
    found = _DURATION.match(text.strip())
    if not found:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 30m, 24h, 7d")
    return timedelta(seconds=int(found.group(1)) * _UNITS[found.group(2) or "s"])


def host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def _namespace(text: str) -> str:
    try:
        return check_namespace(text)
    except SystemNamespaceError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m controlplane",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--kubeconfig", type=Path, help="default: the in-cluster ServiceAccount")
    p.add_argument("--listen", required=True, type=host_port, help="gRPC HOST:PORT (TLS)")
    p.add_argument("--trust-domain", default=None, help="default cluster.local")
    p.add_argument(
        "--system-namespace",
        "--namespace",  # the flag's name before issue 13
        dest="namespace",
        type=_namespace,
        default=None,
        help="Tulle's namespace: the Secret, the ConfigMap, the Service and the agent's "
        "ServiceAccount (default $TULLE_SYSTEM_NAMESPACE, else tulle-system)",
    )
    p.add_argument(
        "--max-lifetime",
        type=duration,
        default=timedelta(hours=24),
        help="the longest SVID lifetime issued (default 24h)",
    )
    p.add_argument(
        "--root-overlap",
        type=duration,
        default=None,
        help="how long a replaced root stays in the bundle (default max-lifetime+1h)",
    )
    p.add_argument(
        "--metrics",
        type=host_port,
        default=("127.0.0.1", 15014),
        help="Prometheus metrics HOST:PORT (default 127.0.0.1:15014; port 0: none)",
    )
    p.add_argument(
        "--serving-ip",
        action="append",
        default=[],
        help="an IP SAN for the serving certificate (repeatable)",
    )
    p.add_argument("--ready-file", type=Path, help="written once serving")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Imported here so --help and bad flags answer without loading grpc and lightkube.
    from agent.kube.source import KubeconfigError, connect
    from controlplane.auth import TokenReviewAuthenticator
    from controlplane.certificates import CertificateServicer, serve
    from controlplane.kube import KubeObjects, Pods, TokenReviewer
    from controlplane.service import IdentityState, Settings, parse_ips
    from identity.ca import CaError
    from identity.spiffe import DEFAULT_TRUST_DOMAIN

    try:
        namespace = system_namespace(args.namespace, os.environ)
        client = connect(args.kubeconfig)
        ips = parse_ips([*args.serving_ip, *_ip_of(args.listen[0])])
    except (KubeconfigError, ValueError) as err:  # SystemNamespaceError is a ValueError
        print(f"controlplane: {err}", file=sys.stderr)
        return 2
    settings = Settings(
        trust_domain=args.trust_domain or DEFAULT_TRUST_DOMAIN,
        namespace=namespace,
        max_lifetime=args.max_lifetime,
        root_overlap=args.root_overlap,
        serving_ips=ips,
    )
    state = IdentityState(KubeObjects(client), settings)
    try:
        state.refresh()
    except CaError as err:
        print(f"controlplane: {err}", file=sys.stderr)
        return 1
    pods = Pods(client).start()
    deadline = time.monotonic() + SYNC_SECONDS
    while not pods.synced and time.monotonic() < deadline:
        time.sleep(0.05)
    if not pods.synced:
        LOG.warning(
            "no Pod list within %.0fs; serving anyway (refusals until it arrives)", SYNC_SECONDS
        )
    registry = CollectorRegistry()
    servicer = CertificateServicer(
        state.ca,
        settings.trust_domain,
        TokenReviewAuthenticator(TokenReviewer(client)),
        pods.on_node,
        agent_accounts=frozenset({agent_account(namespace)}),
        max_validity=settings.max_lifetime,
        trust_bundle=state.bundle,
        registry=registry,
    )
    state.on_signer_change = lambda ca: setattr(servicer.issuer, "ca", ca)
    host, port = args.listen
    server, bound = serve(servicer, f"{host}:{port}", state.credentials())
    if args.metrics[1]:
        start_http_server(args.metrics[1], addr=args.metrics[0], registry=registry)
    LOG.info(
        "serving tulle.identity.v1.CertificateService on %s:%d (TLS), trust domain %s, "
        "system namespace %s",
        host,
        bound,
        settings.trust_domain,
        namespace,
    )
    if args.ready_file:
        args.ready_file.write_text(f"{host}:{bound}\n")
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        LOG.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.wait(REFRESH_SECONDS):
        try:
            state.refresh()
        except Exception:  # the API away, a bad Secret: keep serving with what we hold
            LOG.exception("refreshing the CA and the bundle failed; keeping the current ones")
    server.stop(GRACE_SECONDS).wait()
    pods.stop()
    return 0


def _ip_of(host: str) -> list[str]:
    """The listen host as an IP SAN when it is one (not a wildcard)."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return []
    return [] if ip.is_unspecified else [str(ip)]


if __name__ == "__main__":
    sys.exit(main())
