"""A small policy check over rendered workloads, for what kube-linter would flag and the
manifests must hold (kube-linter itself is not in a registry the project installs from).
Pure: objects in, findings out, each naming the workload, the container and the rule.

Exceptions are not silent: each is listed here with its reason, and a finding outside them
fails."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# Capabilities a container may add, and why (deploy/daemonset/agent.yaml says each one).
ALLOWED_CAPABILITIES = {
    ("tulle-agent", "agent"): frozenset({"NET_ADMIN", "SYS_ADMIN"}),  # SYS_ADMIN: restart adoption
    ("tulle-agent", "node-setup"): frozenset({"NET_ADMIN"}),  # an address on lo
    ("tulle-waypoint", "waypoint"): frozenset({"NET_ADMIN"}),  # SO_MARK (the pinned map needs none from 5.19)
    # The lab overlay's warm standby (l7proxy/standby.py): the same process as its sibling.
    ("tulle-waypoint", "waypoint-standby"): frozenset({"NET_ADMIN"}),
}
# An agent given --announce-interface answers ARP through an AF_PACKET socket
# (agent/announce/responder.py): that one flag justifies NET_RAW (overlays/lab gives it).
ANNOUNCE_FLAG, ANNOUNCE_CAPABILITY = "--announce-interface", "NET_RAW"
# Seccomp: RuntimeDefault for all but the agent and the waypoint: containerd's default
# profile refuses the waypoint's bpf() without SYS_ADMIN, a far larger grant; the agent holds
# SYS_ADMIN, but RuntimeDefault is not measured with it (deploy/daemonset/agent.yaml).
UNCONFINED = {("tulle-agent", "agent"), ("tulle-waypoint", "waypoint"),
              ("tulle-waypoint", "waypoint-standby")}
# The one privileged container: Bidirectional mount propagation (bpffs mounted on the host)
# is allowed by the API server only for privileged containers; it runs `mount` and exits.
PRIVILEGED_INIT = {("tulle-agent", "mount-bpffs")}
# hostNetwork: the agent attaches to the host side of pods' veths; the waypoint listens on
# the node's waypoint address.
HOST_NETWORK = {"tulle-agent", "tulle-waypoint"}
# hostPath volumes per workload: what the agent reads or pins (agent.yaml says each one).
HOST_PATHS = {
    "tulle-agent": frozenset({"/sys/fs/bpf", "/sys/kernel/tracing", "/sys/kernel/debug",
                              "/sys/fs/cgroup", "/lib/modules", "/usr/src", "/var/run/tulle",
                              # deploy/components/cni-chaining: tulle-cni and the conflist
                              "/etc/cni/net.d", "/opt/cni/bin"}),
    "tulle-waypoint": frozenset({"/sys/fs/bpf", "/var/run/tulle"}),
}


def findings(obj: dict[str, Any], image: str, tag: str) -> list[str]:
    """What is wrong with one DaemonSet or Deployment."""
    name = obj["metadata"]["name"]
    pod = obj["spec"]["template"]["spec"]
    out = [f"{name}: {f}" for f in _pod(name, pod)]
    pod_seccomp = pod.get("securityContext", {}).get("seccompProfile", {}).get("type")
    for container, init in _containers(pod):
        where = f"{name}/{container['name']}"
        out += [f"{where}: {f}" for f in _container(name, container, init, image, tag)]
        seccomp = container.get("securityContext", {}).get("seccompProfile", {}).get(
            "type", pod_seccomp)
        privileged = container.get("securityContext", {}).get("privileged", False)
        wanted = "Unconfined" if (name, container["name"]) in UNCONFINED else "RuntimeDefault"
        if not privileged and seccomp != wanted:
            out.append(f"{where}: seccomp profile {seccomp}, not {wanted}")
    return out


def _containers(pod: dict[str, Any]) -> Iterator[tuple[dict[str, Any], bool]]:
    for c in pod.get("initContainers", []):
        yield c, True
    for c in pod["containers"]:
        yield c, False


def _pod(name: str, pod: dict[str, Any]) -> list[str]:
    out = []
    if pod.get("serviceAccountName", "default") == "default":
        out.append("runs as the default ServiceAccount")
    if pod.get("hostNetwork") and name not in HOST_NETWORK:
        out.append("hostNetwork")
    if pod.get("hostPID") or pod.get("hostIPC"):
        out.append("hostPID or hostIPC")
    if not pod.get("priorityClassName"):
        out.append("no priorityClassName")
    for volume in pod.get("volumes", []):
        path = volume.get("hostPath", {}).get("path")
        if path is not None and path not in HOST_PATHS.get(name, frozenset()):
            out.append(f"hostPath {path} is not one the workload needs")
    return out


def _container(workload: str, c: dict[str, Any], init: bool, image: str, tag: str
               ) -> list[str]:
    out = []
    key = (workload, c["name"])
    repo, _, version = c.get("image", "").rpartition(":")
    if repo != image or version != tag:
        out.append(f"image {c.get('image')!r} is not {image}:{tag} (no :latest, no untagged)")
    sc = c.get("securityContext", {})
    privileged = sc.get("privileged", False)
    if privileged and not (init and key in PRIVILEGED_INIT):
        out.append("privileged")
    if not sc.get("readOnlyRootFilesystem"):
        out.append("root filesystem not read-only")
    if not privileged and sc.get("allowPrivilegeEscalation", True):
        out.append("allowPrivilegeEscalation not false")
    caps = sc.get("capabilities", {})
    if not privileged and "ALL" not in caps.get("drop", []):
        out.append("capabilities: does not drop ALL")
    allowed = ALLOWED_CAPABILITIES.get(key, frozenset())
    if key == ("tulle-agent", "agent") and any(
            a.split("=")[0] == ANNOUNCE_FLAG for a in c.get("args", [])):
        allowed |= {ANNOUNCE_CAPABILITY}
    extra = set(caps.get("add", [])) - allowed
    if extra:
        out.append(f"capabilities not justified: {sorted(extra)}")
    resources = c.get("resources", {})
    requests, limits = resources.get("requests", {}), resources.get("limits", {})
    if not {"cpu", "memory"} <= requests.keys():
        out.append("no cpu and memory requests")
    if "memory" not in limits:
        out.append("no memory limit")
    if not init and not ("livenessProbe" in c and "readinessProbe" in c):
        out.append("no liveness and readiness probes")
    return out
