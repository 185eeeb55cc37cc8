"""``python -m controlplane.controller [--kubeconfig K] [--system-namespace NS]
[--[no-]leader-elect] [--leader-elect-lease-duration 15s] [--leader-elect-renew-deadline 10s]
[--leader-elect-retry-period 2s] [--leader-elect-identity ID] [--metrics HOST:PORT]``:
tulle-controller, the Gateway API status, Ingress and LoadBalancer pool controllers.

Without --kubeconfig it uses the in-cluster ServiceAccount (deploy/controller). With leader
election on (the default) it writes only while it holds Lease <system-namespace>/
tulle-controller; SIGTERM stops its controllers and releases the Lease so another replica
takes over at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import socket
import sys
import threading
import uuid
from pathlib import Path
from types import FrameType

import httpx2 as httpx  # lightkube 1.x's HTTP client
from lightkube import Client, ConfigError, KubeConfig
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from controlplane.__main__ import _namespace, host_port
from controlplane.controller import FIELD_MANAGER, LEASE_NAME
from controlplane.leader.election import (
    LEASE_DURATION,
    RENEW_DEADLINE,
    RETRY_PERIOD,
    ElectionConfig,
    ElectionConfigError,
)
from identity.system import SystemNamespaceError, system_namespace

LOG = logging.getLogger("tulle.controller")
METRICS_PORT = 15016
_SECONDS = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0}


def seconds(text: str) -> float:
    """'15', '15s', '1.5s', '500ms', '1m' -> seconds (a Go duration's common forms)."""
    found = _SECONDS.match(text.strip())
    if not found or float(found.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive duration like 15s, 500ms")
    return float(found.group(1)) * _UNITS[found.group(2) or "s"]


def default_identity(environ: dict[str, str] | os._Environ[str]) -> str:
    """client-go's convention: the pod (or host) name, then a random suffix so that a
    restarted process is a new candidate."""
    return f"{environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4()}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m controlplane.controller",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--kubeconfig", type=Path, help="default: the in-cluster ServiceAccount")
    p.add_argument("--system-namespace", dest="namespace", type=_namespace, default=None,
                   help="where the Lease lives (default $TULLE_SYSTEM_NAMESPACE, else "
                   "tulle-system)")
    p.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=True,
                   help="write only while holding the Lease (default on; off: one replica only)")
    p.add_argument("--leader-elect-lease-duration", type=seconds, default=LEASE_DURATION)
    p.add_argument("--leader-elect-renew-deadline", type=seconds, default=RENEW_DEADLINE)
    p.add_argument("--leader-elect-retry-period", type=seconds, default=RETRY_PERIOD)
    p.add_argument("--leader-elect-identity", default=None,
                   help="this candidate's name in the Lease (default $POD_NAME_<uuid>)")
    p.add_argument("--metrics", type=host_port, default=("127.0.0.1", METRICS_PORT),
                   help=f"Prometheus metrics HOST:PORT (default 127.0.0.1:{METRICS_PORT}; "
                   "port 0: none)")
    return p


def election_config(args: argparse.Namespace) -> ElectionConfig:
    return ElectionConfig(
        identity=(default_identity(os.environ) if args.leader_elect_identity is None
                  else args.leader_elect_identity),  # an explicit "" is refused
        lease_duration=args.leader_elect_lease_duration,
        renew_deadline=args.leader_elect_renew_deadline,
        retry_period=args.leader_elect_retry_period,
    )


def client(kubeconfig: Path | None) -> Client:
    """agent.kube.source's client (in-cluster or --kubeconfig; no proxy from the environment),
    naming this controller as the field manager of what it writes."""
    from agent.kube.source import REQUEST_TIMEOUT, KubeconfigError

    try:
        config = (KubeConfig.from_service_account() if kubeconfig is None
                  else KubeConfig.from_file(kubeconfig))
        return Client(config=config, timeout=httpx.Timeout(REQUEST_TIMEOUT),
                      field_manager=FIELD_MANAGER, trust_env=False)
    except (ConfigError, OSError, ValueError, KeyError) as err:
        where = f"--kubeconfig {kubeconfig}" if kubeconfig else "the in-cluster ServiceAccount"
        raise KubeconfigError(f"{where}: {err or type(err).__name__}") from None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # not a line per request
    try:
        namespace = system_namespace(args.namespace, os.environ)
        config = election_config(args)
    except (SystemNamespaceError, ElectionConfigError) as err:
        LOG.error("%s", err)
        return 2
    # Imported here so --help and bad flags answer without loading the controllers.
    from agent.kube.source import KubeconfigError
    from controlplane.controller.status import WATCHED, StatusControllers, StatusLoop
    from controlplane.leader import KubeLeases, LeaderElection
    from lab.controllers.gateways import GatewayController, check_gateway_api
    from lab.kubeapi import ApiWriter, Informers
    from lab.liveview import LiveView

    try:
        watch_client, write_client = client(args.kubeconfig), client(args.kubeconfig)
    except KubeconfigError as err:
        LOG.error("%s", err)
        return 2
    registry = CollectorRegistry()
    leader_gauge = Gauge("tulle_controller_leader", "1 while this replica holds the Lease",
                         registry=registry)
    if args.metrics[1]:
        start_http_server(args.metrics[1], args.metrics[0], registry=registry)

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    view = LiveView(WATCHED)
    informers = Informers(watch_client, view).start()
    api = ApiWriter(write_client, view)
    crd_versions = check_gateway_api(write_client)
    election: LeaderElection | None = None
    if args.leader_elect:
        election = LeaderElection(
            KubeLeases(write_client), namespace, LEASE_NAME, config,
            on_started=lambda: leader_gauge.set(1), on_stopped=lambda: leader_gauge.set(0),
        )
        LOG.info("candidate %s for lease %s/%s", config.identity, namespace, LEASE_NAME)
    else:
        leader_gauge.set(1)
        LOG.warning("leader election off: run one replica only")
    loop = StatusLoop(
        view, informers.synced, election.leading if election is not None else lambda: True,
        lambda: StatusControllers.over(api, GatewayController(api, crd_versions)),
    )
    thread = election.start(stop) if election is not None else None
    try:
        while not stop.is_set():
            stop.wait(loop.step())
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=config.retry_period + 5.0)  # it releases the Lease on its way
        informers.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
