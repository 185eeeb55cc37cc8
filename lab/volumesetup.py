"""What the lab kubelet does on the machine for a pod's volumes (the I/O around the pure
lab.podvolumes and lab.mountns; design: /work/notes/lab_install_design.md §2, §6 step 3).

A pod with a volumeMount runs every container in its own mount namespace: at pod create
the node's root (``nodes/<node>/root``, 0700, ``var/run -> ../run``) and the pod's directory
(its emptyDirs, and resolv.conf for a pod network namespace) are made; the emptyDirs outlive
container restarts and go with the pod (``remove_pod``). A pod without volumeMounts is run
as before: in its network namespace only, on the host's filesystem. A hostNetwork pod with
``dnsPolicy: ClusterFirstWithHostNet`` gets a mount namespace too, for the cluster DNS's
resolv.conf at /etc/resolv.conf (``cluster_resolver``): the node's /etc is the machine's.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from agent.model.core import Container, HostPathVolumeSource, Pod
from agent.model.core_container import DnsPolicy
from lab import podvolumes, procs, satoken
from lab.imageroot import Image
from lab.podvolumes import Bind, NodeFS, VolumeError
from lab.state import LabPaths
from lab.topology import API_SERVER_IP, API_SERVER_PORT

__all__ = ["Mounts", "cluster_resolver", "container_env", "container_mounts", "mount_ns_pid",
           "node_fs", "prepare_pod", "remove_pod", "uses_volumes"]


@dataclass(frozen=True, slots=True)
class Mounts:
    """A container's mounts, or why the lab cannot give them (``error``)."""

    binds: tuple[Bind, ...] = ()
    host_paths: tuple[HostPathVolumeSource, ...] = ()  # at their place on the machine
    error: str = ""


def cluster_resolver(pod: Pod) -> bool:
    """Whether the pod's containers get the cluster DNS's resolv.conf, as a kubelet decides:
    in a pod network namespace the lab always gives it; in the node's, only for
    ``ClusterFirstWithHostNet`` (else the node's own resolver, as on a cluster)."""
    if not pod.spec.host_network:
        return True
    return pod.spec.dns_policy is DnsPolicy.CLUSTER_FIRST_WITH_HOST_NET


def uses_volumes(pod: Pod) -> bool:
    """Whether the pod's containers get mount namespaces: one of them mounts a volume, the
    Pod asks for its ServiceAccount token itself (lab.satoken), or it is a hostNetwork pod
    that asks for the cluster DNS (``cluster_resolver``: only a mount namespace can give it
    its own /etc/resolv.conf in the node's network)."""
    return satoken.mount_namespace(pod) or (bool(pod.spec.host_network)
                                            and cluster_resolver(pod))


def node_fs(paths: LabPaths, node: str) -> NodeFS:
    """The node's share of the machine, its root made (0700: a lab node's files are its
    own; ``var/run`` is ``run`` there as on Debian)."""
    fs = NodeFS.for_node(paths, node)
    (fs.root / "run").mkdir(mode=0o700, parents=True, exist_ok=True)
    fs.root.chmod(0o700)
    link = fs.root / "var" / "run"
    if not link.is_symlink():
        link.parent.mkdir(exist_ok=True)
        link.symlink_to("../run")
    return fs


def prepare_pod(paths: LabPaths, pod: Pod, resolv: str | None) -> Path:
    """Make the pod's directory: its emptyDirs (empty) and its resolv.conf (``resolv``:
    the content, None for none); the directory."""
    root = podvolumes.pod_dir(paths, pod.metadata.namespace, pod.metadata.name)
    shutil.rmtree(root, ignore_errors=True)  # a leftover of a crashed controller
    root.mkdir(mode=0o700, parents=True)
    for volume in pod.spec.volumes:
        if volume.empty_dir is not None:
            podvolumes.empty_dir(root, volume.name).mkdir(mode=0o777, parents=True)
            podvolumes.empty_dir(root, volume.name).chmod(0o777)  # as a kubelet makes it
    if resolv is not None:
        podvolumes.resolv_conf_file(root).write_text(resolv)
    return root


def container_mounts(
    pod: Pod, container: Container, fs: NodeFS, pod_root: Path, *, resolv: bool,
    image: Image, token: bool = False,
) -> Mounts:
    """The container's binds (its volumes, then ``image``'s) and the hostPaths to check (or
    make) before each start."""
    try:
        binds = podvolumes.container_binds(pod, container, fs, pod_root, resolv=resolv,
                                           token=token, image=image.binds())
        volumes = {v.name: v for v in pod.spec.volumes}
        sources = tuple(
            podvolumes.resolved_host_path(source, fs)
            for m in container.volume_mounts
            if (source := volumes[m.name].host_path) is not None
        )
    except VolumeError as err:
        return Mounts(error=str(err))
    return Mounts(binds, sources)


def container_env(image: Image, declared: set[str], env: dict[str, str]) -> dict[str, str]:
    """``env`` with what a container in a mount namespace also gets (design §2), unless the
    container sets it itself: the image's PATH and PYTHONPATH (lab.imageroot) and the API
    server as KUBERNETES_SERVICE_* (the fabric address: the lab has no ``kubernetes``
    Service)."""
    extra = {
        "KUBERNETES_SERVICE_HOST": str(API_SERVER_IP),
        "KUBERNETES_SERVICE_PORT": str(API_SERVER_PORT),
    }
    env = image.env(env, declared)
    return {**env, **{k: v for k, v in extra.items() if k not in declared}}


def remove_pod(paths: LabPaths, namespace: str, name: str) -> None:
    """The pod's directory (emptyDirs, resolv.conf), once its containers are gone (their
    mount namespaces with them: nothing is mounted there any more)."""
    shutil.rmtree(podvolumes.pod_dir(paths, namespace, name), ignore_errors=True)


def mount_ns_pid(paths: LabPaths, namespace: str, pod: str, container: str) -> int | None:
    """The running container's pid when it has a mount namespace of its own (``tulle lab
    exec`` then enters it, as a CRI exec does); None for a container on the host's
    filesystem, or one not running."""
    record = paths.procs / "pods" / f"{namespace}_{pod}_{container}.json"
    found = [r for r in procs.load_records(record.parent) if r.role == record.stem]
    if not found or not procs.is_alive(found[0]):
        return None
    pid = found[0].pid
    try:
        own = os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    except OSError:  # exited meanwhile
        return None
    return pid if own else None
