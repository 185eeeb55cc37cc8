"""What a lab container sees at each of its mount paths (pure): its volumes resolved to
directories on the machine, for lab/mountns.py to bind into the container's own mount
namespace. Design: /work/notes/lab_install_design.md §2.

A lab node is not a machine, so a hostPath is mapped to the node's share of the machine:

    hostPath (and below it)              source on the machine
    /sys/fs/bpf                          /sys/fs/bpf/tulle/<lab>/<node>   (the node's bpffs dir)
    /sys/fs/cgroup                       the node's cgroup v2 subtree (lab/cgroups.py)
    /sys/kernel/tracing, /sys/kernel/debug,
    /lib/modules, /usr/src, /proc, /dev  itself (one kernel: shared, bound only to apply readOnly)
    anything else                        <state>/<lab>/nodes/<node>/root/<path>

``/var/run`` is ``/run`` (as on Debian, and in the container, whose /run is a private tmpfs),
on both sides. An ``emptyDir`` is ``<state>/<lab>/pods/<ns>_<pod>/volumes/<name>``, and so
is a ``secret`` or ``configMap`` volume (its files written by lab.objectvolumes, always bound
read-only); a pod's ServiceAccount token and resolv.conf are files in that pod directory
too. Other volume types (projected, ...) are not emulated: a container mounting one is
refused.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.model.core import Container, HostPathVolumeSource, Pod, Volume
from lab import cgroups
from lab.state import LabPaths, pin_dir

__all__ = [
    "RESOLV_CONF",
    "SERVICEACCOUNT_DIR",
    "SHARED",
    "Bind",
    "NodeFS",
    "VolumeError",
    "clean_path",
    "container_binds",
    "container_path",
    "empty_dir",
    "host_source",
    "pod_dir",
    "resolv_conf_file",
    "resolved_host_path",
    "serviceaccount_dir",
    "serviceaccount_files",
]

BPFFS = "/sys/fs/bpf"
CGROUP = "/sys/fs/cgroup"
# The kernel's own views and the machine's kernel headers: one per machine, not per node.
SHARED = ("/sys/kernel/tracing", "/sys/kernel/debug", "/lib/modules", "/usr/src", "/proc", "/dev")
SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
RESOLV_CONF = "/etc/resolv.conf"


class VolumeError(ValueError):
    """A volume or mount the lab cannot give a container (the kubelet's FailedMount)."""


@dataclass(frozen=True, slots=True)
class NodeFS:
    """Where one lab node's host paths live on the machine."""

    root: Path  # <state>/<lab>/nodes/<node>/root, 0700, with var/run -> ../run
    bpffs: Path  # the node's bpffs directory (the agent pins below it)
    cgroup: Path  # the node's cgroup v2 subtree

    @classmethod
    def for_node(cls, paths: LabPaths, node: str) -> NodeFS:
        return cls(
            root=paths.root / "nodes" / node / "root",
            bpffs=pin_dir(paths.name, node),
            cgroup=cgroups.node_cgroup(paths.name, node),
        )


@dataclass(frozen=True, slots=True)
class Bind:
    """One mount of a container: ``source`` on the machine, bound at ``target``."""

    source: Path
    target: str  # absolute, normalised, /var/run spelled /run
    read_only: bool
    # The source is the lab's own (a node root, the node's bpffs or cgroup dir, a pod dir):
    # a mountpoint below this target may be created in it. Never in a shared source.
    lab_owned: bool


def clean_path(path: str, what: str) -> str:
    """``path`` normalised; absolute and without ``..`` (Kubernetes refuses backsteps in a
    hostPath; the lab refuses them in a mountPath too, where they mean nothing)."""
    if not path.startswith("/"):
        raise VolumeError(f"{what} {path!r}: must be an absolute path")
    if ".." in path.split("/"):
        raise VolumeError(f"{what} {path!r}: must not contain '..'")
    clean = posixpath.normpath(path)
    return "/" + clean.lstrip("/")  # normpath keeps a leading "//"


def container_path(path: str) -> str:
    """``/var/run/...`` as ``/run/...`` (a symlink on Debian; mounts resolve it anyway, and
    the checks below compare paths)."""
    return "/run" + path[len("/var/run"):] if _below_or_at(path, "/var/run") else path


def _below_or_at(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def host_source(host_path: str, node: NodeFS) -> tuple[Path, bool]:
    """The machine's directory for ``host_path`` on ``node``, and whether it is the lab's own."""
    path = container_path(clean_path(host_path, "hostPath"))
    for top, base in ((BPFFS, node.bpffs), (CGROUP, node.cgroup)):
        if _below_or_at(path, top):
            return base / path[len(top):].lstrip("/"), True
    for top in SHARED:
        if _below_or_at(path, top):
            return Path(path), False
    inner = [top for top in (BPFFS, CGROUP, *SHARED) if _below_or_at(top, path)]
    if inner:
        raise VolumeError(
            f"hostPath {host_path!r}: holds {', '.join(inner)}, which the lab maps apart per "
            "node or shares; mount those paths (or one below) instead"
        )
    return node.root / path.lstrip("/"), True


def resolved_host_path(source: HostPathVolumeSource, node: NodeFS) -> HostPathVolumeSource:
    """``source`` at its place on the machine, for lab.hostpaths.prepare's type checks."""
    path, _ = host_source(source.path, node)
    return HostPathVolumeSource(str(path), source.type)


def pod_dir(paths: LabPaths, namespace: str, pod: str) -> Path:
    """A pod's own files (emptyDirs, token, resolv.conf), removed at its teardown."""
    return paths.root / "pods" / f"{namespace}_{pod}"


def empty_dir(pod_root: Path, volume: str) -> Path:
    return pod_root / "volumes" / volume


def serviceaccount_dir(pod_root: Path) -> Path:
    return pod_root / "serviceaccount"


def resolv_conf_file(pod_root: Path) -> Path:
    return pod_root / "resolv.conf"


def serviceaccount_files(token: str, ca_pem: str, namespace: str) -> dict[str, str]:
    """The projected ServiceAccount volume's three files, as a kubelet writes them."""
    if not token or not ca_pem or not namespace:
        raise VolumeError("a ServiceAccount volume needs a token, the cluster's CA and a namespace")
    return {"token": token, "ca.crt": ca_pem, "namespace": namespace}


def _volume_source(volume: Volume, node: NodeFS, pod_root: Path) -> tuple[Path, bool]:
    if volume.host_path is not None:
        return host_source(volume.host_path.path, node)
    if volume.empty_dir is not None:
        return empty_dir(pod_root, volume.name), True
    if volume.secret is not None or volume.config_map is not None:
        # Written by the kubelet (lab.objectvolumes); bound read-only whatever the mount says.
        return empty_dir(pod_root, volume.name), False
    raise VolumeError(
        f"volume {volume.name!r}: the lab runs hostPath, emptyDir, secret and configMap "
        "volumes only (projected and the others are not emulated)"
    )


def container_binds(
    pod: Pod, container: Container, node: NodeFS, pod_root: Path, *,
    token: bool = False, resolv: bool = False, image: Sequence[Bind] = (),
) -> tuple[Bind, ...]:
    """The container's mounts in the order to make them (a parent before what lies below
    it), with the pod's ServiceAccount token (``token``) and resolv.conf (``resolv``) unless
    the container mounts something at their place itself, and the ``image`` binds
    (lab.imageroot). Raises VolumeError for
    what the lab cannot give (the container does not start)."""
    volumes: Mapping[str, Volume] = {v.name: v for v in pod.spec.volumes}
    binds: list[Bind] = []
    for mount in container.volume_mounts:
        volume = volumes.get(mount.name)
        if volume is None:
            raise VolumeError(f"volumeMount {mount.name!r}: the pod has no such volume")
        source, owned = _volume_source(volume, node, pod_root)
        target = container_path(clean_path(mount.mount_path, "mountPath"))
        object_volume = volume.secret is not None or volume.config_map is not None
        binds.append(Bind(source, target, bool(mount.read_only) or object_volume, owned))
    taken = {b.target for b in binds}
    extra = (
        (token, serviceaccount_dir(pod_root), container_path(SERVICEACCOUNT_DIR)),
        (resolv, resolv_conf_file(pod_root), RESOLV_CONF),
    )
    binds += [Bind(src, target, True, True) for on, src, target in extra
              if on and target not in taken]
    binds += image
    _check(binds)
    # Parents first; the sort is stable, so equal depths keep the spec's order.
    return tuple(sorted(binds, key=lambda b: b.target.count("/") - (b.target == "/")))


def _check(binds: list[Bind]) -> None:
    seen: set[str] = set()
    for bind in binds:
        if bind.target in seen:
            raise VolumeError(f"mountPath {bind.target}: mounted twice (must be unique)")
        seen.add(bind.target)
    for bind in binds:
        for outer in binds:
            if outer.read_only and outer.target != bind.target and _below_or_at(
                bind.target, outer.target
            ):
                # A mountpoint would have to be made inside a read-only volume, i.e. written
                # into its source on the machine (and after the ro remount it cannot be).
                raise VolumeError(
                    f"mountPath {bind.target}: lies below the readOnly mount {outer.target}"
                )
