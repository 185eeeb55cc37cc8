"""The lab's control plane at `lab up`: the API server (its loopback port chosen once), the
cluster's first objects through the API, the controller's kubeconfig, the Nodes its kubelet
registers."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from identity.system import AGENT_SERVICE_ACCOUNT, SYSTEM_NAMESPACE
from lab import procs
from lab.components import CA_ROLE
from lab.state import LabPaths
from lab.topology import API_SERVER_IP, API_SERVER_PORT, LabPlan

Progress = Callable[[str], None]
APISERVER_START_SECONDS = 20.0
NODE_REGISTRATION_SECONDS = 20.0
CONTROLLER_ACCOUNT = "tulle-lab-controller"  # lab/apiserver/lab-rbac.yaml


class LabError(RuntimeError):
    """A lab operation failed; the message says what to do."""


def apiserver_dir(paths: LabPaths) -> Path:
    """The lab API server's CA, certificates, tokens and kubeconfigs."""
    return paths.root / "apiserver"


def controller_kubeconfig(paths: LabPaths) -> Path:
    """The lab controller's ServiceAccount on the host's loopback address: it runs in the
    root netns, which has no way into the fabric (and gets none)."""
    return apiserver_dir(paths) / f"{CONTROLLER_ACCOUNT}.host.kubeconfig"


def start_apiserver(
    paths: LabPaths, plan: LabPlan, progress: Progress, env: dict[str, str],
    node_port_range: str | None = None,
) -> None:
    """The Kubernetes API server: on loopback for the host, and on the fabric bridge (a socket
    it opens inside the fabric netns) for the nodes. The loopback port is chosen here, once,
    so a restarted API server (the controller's supervisor) serves the same kubeconfigs."""
    state = apiserver_dir(paths)
    kubeconfig = state / "kubeconfig"
    kubeconfig.unlink(missing_ok=True)
    progress(
        f"starting the API server (loopback, and {API_SERVER_IP}:{API_SERVER_PORT} in the fabric)"
    )
    proc, _ = procs.spawn(
        "apiserver",
        [
            sys.executable,
            "-m",
            "lab.apiserver",
            "--store",
            str(paths.store),
            "--state-dir",
            str(state),
            "--lab",
            plan.name,
            "--port",
            str(_free_loopback_port()),
            "--fabric-netns",
            plan.fabric_netns,
            "--fabric-address",
            f"{API_SERVER_IP}:{API_SERVER_PORT}",
            "--identities",
            *(["--service-node-port-range", node_port_range] if node_port_range else []),
        ],
        log=paths.logs / "apiserver.log",
        record_dir=paths.procs,
        env=env,
    )
    deadline = time.monotonic() + APISERVER_START_SECONDS
    while not kubeconfig.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            log_file = paths.logs / "apiserver.log"
            tail = (
                log_file.read_text(errors="replace").splitlines()[-15:] if log_file.exists() else []
            )
            raise LabError(
                "the lab API server did not start. Its log ended with:\n  "
                + "\n  ".join(tail or ["(empty)"])
            )
        time.sleep(0.1)


def _free_loopback_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def seed_cluster(paths: LabPaths, plan: LabPlan, progress: Progress) -> None:
    """The Gateway API CRDs (established before anything uses their kinds), then Namespaces
    and the GatewayClass, created through the API as the lab's admin."""
    from lab import gateway_crds
    from lab.kubeapi import ApiWriter, connect
    from lab.seed import cluster_objects, install_crds, seed

    with connect(apiserver_dir(paths) / "kubeconfig", "tulle-lab") as client:
        api = ApiWriter(client)
        installed = install_crds(api, gateway_crds.manifests())
        created = seed(api, cluster_objects(plan))
    progress(f"installed {', '.join(installed) or 'no new'} CRDs through the API")
    progress(f"seeded {', '.join(created) or 'nothing new'} through the API")


def write_controller_kubeconfig(paths: LabPaths) -> Path:
    """The controller ServiceAccount's kubeconfig (written by the API server for the fabric
    address) pointed at the loopback listener of the admin kubeconfig."""
    import yaml

    state = apiserver_dir(paths)
    config = yaml.safe_load((state / f"{CONTROLLER_ACCOUNT}.kubeconfig").read_text())
    host = yaml.safe_load((state / "kubeconfig").read_text())
    server = host["clusters"][0]["cluster"]["server"]
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = server
    path = controller_kubeconfig(paths)
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(config))
    return path


def wait_nodes_registered(paths: LabPaths, plan: LabPlan, progress: Progress) -> None:
    """The kubelet (in the controller) registers the Nodes; agents report into them."""
    from lab.kubeapi import ApiWriter, connect

    deadline = time.monotonic() + NODE_REGISTRATION_SECONDS
    missing = [n.name for n in plan.nodes]
    with connect(apiserver_dir(paths) / "kubeconfig", "tulle-lab") as client:
        api = ApiWriter(client)
        while missing:
            missing = [n for n in missing if api.get("Node", "", n) is None]
            if not missing:
                break
            dead = [r for r in procs.load_records(paths.procs) if r.role == "controller"]
            if time.monotonic() > deadline or any(not procs.is_alive(r) for r in dead):
                raise LabError(
                    f"the lab controller did not register nodes {', '.join(missing)}. "
                    "Its log ended with:\n  " + "\n  ".join(log_tail(paths, "controller"))
                )
            time.sleep(0.1)
    progress(f"nodes registered: {', '.join(n.name for n in plan.nodes)}")


def log_tail(paths: LabPaths, role: str, lines: int = 15) -> list[str]:
    log_file = paths.logs / f"{role}.log"
    tail = log_file.read_text(errors="replace").splitlines()[-lines:] if log_file.exists() else []
    return tail or ["(empty)"]


# The identity service (controlplane/) in the fabric netns, where every node reaches it as it
# reaches the API server (API_SERVER_IP is the fabric bridge's address).
CA_PORT = 15012
CA_ADDRESS = f"{API_SERVER_IP}:{CA_PORT}"
CA_METRICS = "127.0.0.1:15014"  # the fabric netns's loopback
CA_ACCOUNT = "tulle-controlplane"  # deploy/controlplane/rbac.yaml
CA_START_SECONDS = 30.0
AGENT_ACCOUNT = AGENT_SERVICE_ACCOUNT  # in SYSTEM_NAMESPACE, as deploy/daemonset/rbac.yaml
AGENT_TOKEN_SECONDS = 365 * 24 * 3600  # the lab's life; it dies with its Node anyway


def agent_kubeconfig(paths: LabPaths, node: str) -> Path:
    """Node `node`'s agent kubeconfig: the tulle-agent ServiceAccount's token bound to that
    Node, the fabric address. The CA takes the agent's node from that binding."""
    return apiserver_dir(paths) / f"{AGENT_ACCOUNT}-{node}.kubeconfig"


def write_agent_kubeconfigs(paths: LabPaths, plan: LabPlan) -> dict[str, Path]:
    """A TokenRequest per node (tulle-system/tulle-agent, bound to the registered Node), each
    written as a kubeconfig beside the account's unbound one (same cluster, same CA)."""
    import yaml
    from lightkube.models.authentication_v1 import BoundObjectReference, TokenRequestSpec
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import ServiceAccount

    from lab.kubeapi import connect

    state = apiserver_dir(paths)
    base = yaml.safe_load((state / f"{AGENT_ACCOUNT}.kubeconfig").read_text())
    written: dict[str, Path] = {}
    with connect(state / "kubeconfig", "tulle-lab") as client:
        for node in plan.nodes:
            request = ServiceAccount.Token(
                metadata=ObjectMeta(name=AGENT_ACCOUNT, namespace=SYSTEM_NAMESPACE),
                spec=TokenRequestSpec(
                    audiences=[],
                    boundObjectRef=BoundObjectReference(
                        kind="Node", apiVersion="v1", name=node.name
                    ),
                    expirationSeconds=AGENT_TOKEN_SECONDS,
                ),
            )
            made = client.create(request, AGENT_ACCOUNT, namespace=SYSTEM_NAMESPACE)
            assert made.status is not None
            config = yaml.safe_load(yaml.safe_dump(base))
            for user in config["users"]:
                user["user"] = {"token": made.status.token}
            path = agent_kubeconfig(paths, node.name)
            path.touch(mode=0o600)
            path.write_text(yaml.safe_dump(config))
            written[node.name] = path
    return written


def start_identity_service(
    paths: LabPaths, plan: LabPlan, progress: Progress, env: dict[str, str]
) -> None:
    """`python -m controlplane` in the fabric netns on CA_ADDRESS with its ServiceAccount's
    kubeconfig; returns once it serves (its ready file), or raises with its log."""
    from lab.procs import netns_argv

    ready = paths.health / "controlplane.ready"
    ready.unlink(missing_ok=True)
    progress(f"starting the identity service (CA) on {CA_ADDRESS} in {plan.fabric_netns}")
    proc, _ = procs.spawn(
        CA_ROLE,
        netns_argv(
            plan.fabric_netns,
            [
                sys.executable,
                "-m",
                "controlplane",
                "--kubeconfig",
                str(apiserver_dir(paths) / f"{CA_ACCOUNT}.kubeconfig"),
                "--listen",
                CA_ADDRESS,
                "--metrics",
                CA_METRICS,
                "--ready-file",
                str(ready),
                "--system-namespace",  # the lab's, whatever $TULLE_SYSTEM_NAMESPACE says
                SYSTEM_NAMESPACE,
            ],
        ),
        log=paths.logs / f"{CA_ROLE}.log",
        record_dir=paths.procs,
        env=env,
    )
    deadline = time.monotonic() + CA_START_SECONDS
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise LabError(
                "the identity service did not start. Its log ended with:\n  "
                + "\n  ".join(log_tail(paths, CA_ROLE))
            )
        time.sleep(0.1)
