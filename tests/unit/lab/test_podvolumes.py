"""lab/podvolumes.py: the machine's directory behind each of a lab container's mount paths
(design: /work/notes/lab_install_design.md §2), read from the deploy/ manifests themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.model.convert import from_dict
from agent.model.core import HostPathVolumeSource, Pod
from lab import podvolumes
from lab.podvolumes import Bind, NodeFS, VolumeError
from lab.state import LabPaths

REPO = Path(__file__).resolve().parents[3]
PATHS = LabPaths(name="lab1", root=Path("/run/tulle/lab1"))
NODE = NodeFS.for_node(PATHS, "node2")
POD_DIR = podvolumes.pod_dir(PATHS, "tulle-system", "tulle-agent-x")


def daemonset_pod(manifest: str, name: str) -> Pod:
    """The DaemonSet's pod template as the Pod the lab would run."""
    docs = yaml.safe_load_all((REPO / "deploy" / "daemonset" / manifest).read_text())
    (ds,) = [d for d in docs if d and d["kind"] == "DaemonSet" and d["metadata"]["name"] == name]
    pod = from_dict({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": f"{name}-x", "namespace": "tulle-system"},
                     "spec": ds["spec"]["template"]["spec"]})
    assert isinstance(pod, Pod)
    return pod


def pod_with(volumes: list[dict[str, Any]], mounts: list[dict[str, Any]]) -> Pod:
    pod = from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
                     "spec": {"containers": [{"name": "c", "volumeMounts": mounts}],
                              "volumes": volumes}})
    assert isinstance(pod, Pod)
    return pod


def binds_of(pod: Pod, container: str, **extra: bool) -> tuple[Bind, ...]:
    (c,) = [c for c in pod.spec.containers if c.name == container]
    return podvolumes.container_binds(pod, c, NODE, POD_DIR, **extra)


def test_node_dirs() -> None:
    assert NODE == NodeFS(root=Path("/run/tulle/lab1/nodes/node2/root"),
                          bpffs=Path("/sys/fs/bpf/tulle/lab1/node2"),
                          cgroup=Path("/sys/fs/cgroup/unified/tulle/lab1/node2"))
    assert POD_DIR == Path("/run/tulle/lab1/pods/tulle-system_tulle-agent-x")


def test_every_volume_type_the_manifests_use_is_run() -> None:
    """hostPath, emptyDir and secret (the agent's optional observer-tls, bound read-only:
    a Secret volume always is)."""
    agent = daemonset_pod("agent.yaml", "tulle-agent")
    assert {b.target: b for b in binds_of(agent, "agent")}["/var/lib/tulle/observer-tls"] == (
        Bind(POD_DIR / "volumes" / "observer-tls", "/var/lib/tulle/observer-tls", True, False))
    projected = pod_with([{"name": "p", "projected": {"sources": []}}],
                         [{"name": "p", "mountPath": "/run/p"}])
    with pytest.raises(VolumeError, match="volume 'p': the lab runs hostPath, emptyDir, secret "
                                          "and configMap volumes only"):
        binds_of(projected, "c")


def test_a_config_map_volume_is_read_only_even_if_the_mount_says_otherwise() -> None:
    pod = pod_with([{"name": "cfg", "configMap": {"name": "settings"}}],
                   [{"name": "cfg", "mountPath": "/run/cfg", "readOnly": False}])
    assert binds_of(pod, "c") == (Bind(POD_DIR / "volumes" / "cfg", "/run/cfg", True, False),)


def test_the_agent_containers_mounts_map_per_the_table() -> None:
    agent = daemonset_pod("agent.yaml", "tulle-agent")
    got = {(b.target, str(b.source), b.read_only, b.lab_owned)
           for b in binds_of(agent, "agent", token=True, resolv=True)}
    root, pod = "/run/tulle/lab1/nodes/node2/root", str(POD_DIR)
    assert got == {
        ("/sys/fs/bpf", "/sys/fs/bpf/tulle/lab1/node2", False, True),
        ("/sys/kernel/tracing", "/sys/kernel/tracing", True, False),
        ("/sys/kernel/debug", "/sys/kernel/debug", True, False),
        ("/run/tulle/cgroupv2", "/sys/fs/cgroup/unified/tulle/lab1/node2", True, True),
        ("/lib/modules", "/lib/modules", True, False),
        ("/usr/src", "/usr/src", True, False),
        ("/run/tulle", f"{root}/run/tulle", False, True),  # /var/run is /run on both sides
        ("/run/tulle-health", f"{pod}/volumes/health", False, True),
        ("/tmp", f"{pod}/volumes/tmp", False, True),
        ("/run/secrets/kubernetes.io/serviceaccount", f"{pod}/serviceaccount", True, True),
        ("/etc/resolv.conf", f"{pod}/resolv.conf", True, True),
        ("/var/lib/tulle/observer-tls", f"{pod}/volumes/observer-tls", True, False),
    }


def test_parents_are_bound_before_what_lies_below_them() -> None:
    agent = daemonset_pod("agent.yaml", "tulle-agent")
    targets = [b.target for b in binds_of(agent, "agent")]
    assert targets.index("/run/tulle") < targets.index("/run/tulle/cgroupv2")
    pod = pod_with([{"name": "a", "emptyDir": {}}, {"name": "b", "emptyDir": {}}],
                   [{"name": "b", "mountPath": "/data/b/c"}, {"name": "a", "mountPath": "/data"}])
    assert [b.target for b in binds_of(pod, "c")] == ["/data", "/data/b/c"]


def test_the_waypoint_reads_the_agents_node_state_read_only() -> None:
    binds = {b.target: b for b in binds_of(daemonset_pod("waypoint.yaml", "tulle-waypoint"),
                                          "waypoint")}
    assert binds["/run/tulle"].source == NODE.root / "run" / "tulle"
    assert binds["/run/tulle"].read_only
    assert binds["/sys/fs/bpf"].source == NODE.bpffs


@pytest.mark.parametrize(("host_path", "want", "owned"), [
    ("/sys/fs/bpf", "/sys/fs/bpf/tulle/lab1/node2", True),
    ("/sys/fs/bpf/tulle", "/sys/fs/bpf/tulle/lab1/node2/tulle", True),
    ("/sys/fs/cgroup/", "/sys/fs/cgroup/unified/tulle/lab1/node2", True),
    ("/proc", "/proc", False),
    ("/dev/net/tun", "/dev/net/tun", False),
    ("/var/run/tulle", "/run/tulle/lab1/nodes/node2/root/run/tulle", True),
    ("/etc/cni/net.d", "/run/tulle/lab1/nodes/node2/root/etc/cni/net.d", True),
    ("/opt//cni/./bin", "/run/tulle/lab1/nodes/node2/root/opt/cni/bin", True),
    ("/sys/fs/bpfx", "/run/tulle/lab1/nodes/node2/root/sys/fs/bpfx", True),  # not below bpf
    ("/procfs", "/run/tulle/lab1/nodes/node2/root/procfs", True),
])
def test_host_path_mapping(host_path: str, want: str, owned: bool) -> None:
    assert podvolumes.host_source(host_path, NODE) == (Path(want), owned)


def test_the_type_checks_run_on_the_mapped_path() -> None:
    got = podvolumes.resolved_host_path(HostPathVolumeSource("/var/run/tulle", "Directory"), NODE)
    assert got == HostPathVolumeSource(str(NODE.root / "run" / "tulle"), "Directory")


@pytest.mark.parametrize(("host_path", "error"), [
    ("var/run/tulle", "hostPath 'var/run/tulle': must be an absolute path"),
    ("/var/run/../../etc", "must not contain '..'"),
    ("/sys/fs/bpf/..", "must not contain '..'"),
    ("/", "holds /sys/fs/bpf, /sys/fs/cgroup"),
    ("/sys", "holds /sys/fs/bpf"),
    ("/usr", "holds /usr/src"),
])
def test_a_host_path_the_lab_cannot_map_is_refused(host_path: str, error: str) -> None:
    with pytest.raises(VolumeError, match=error.replace(".", r"\.").replace("(", r"\(")):
        podvolumes.host_source(host_path, NODE)


@pytest.mark.parametrize(("volumes", "mounts", "error"), [
    ([{"name": "cfg", "downwardAPI": {"items": []}}], [{"name": "cfg", "mountPath": "/etc/x"}],
     "volume 'cfg': the lab runs hostPath, emptyDir, secret and configMap volumes only"),
    ([{"name": "s", "hostPath": {"path": "/srv/x/../y"}}], [{"name": "s", "mountPath": "/srv"}],
     "hostPath '/srv/x/../y': must not contain '..'"),
    ([{"name": "s", "emptyDir": {}}], [{"name": "s", "mountPath": "data"}],
     "mountPath 'data': must be an absolute path"),
    ([{"name": "s", "emptyDir": {}}], [{"name": "s", "mountPath": "/data/../etc"}],
     "mountPath '/data/../etc': must not contain '..'"),
    ([{"name": "ro", "hostPath": {"path": "/srv"}}, {"name": "w", "emptyDir": {}}],
     [{"name": "ro", "mountPath": "/srv", "readOnly": True}, {"name": "w", "mountPath": "/srv/w"}],
     "mountPath /srv/w: lies below the readOnly mount /srv"),
    ([{"name": "a", "emptyDir": {}}, {"name": "b", "emptyDir": {}}],
     [{"name": "a", "mountPath": "/var/run/x"}, {"name": "b", "mountPath": "/run/x/"}],
     "mountPath /run/x: mounted twice"),
])
def test_a_mount_the_lab_cannot_give_is_refused(
        volumes: list[dict[str, Any]], mounts: list[dict[str, Any]], error: str) -> None:
    with pytest.raises(VolumeError) as err:
        binds_of(pod_with(volumes, mounts), "c")
    assert error in str(err.value)


def test_a_readonly_root_mount_refuses_the_token_below_it() -> None:
    pod = pod_with([{"name": "run", "emptyDir": {}}],
                   [{"name": "run", "mountPath": "/run", "readOnly": True}])
    assert [b.target for b in binds_of(pod, "c")] == ["/run"]
    with pytest.raises(VolumeError, match="below the readOnly mount /run"):
        binds_of(pod, "c", token=True)


def test_the_containers_own_mount_wins_over_the_token_and_resolv_conf() -> None:
    pod = pod_with([{"name": "dns", "hostPath": {"path": "/etc/resolv.conf", "type": "File"}}],
                   [{"name": "dns", "mountPath": "/etc/resolv.conf"}])
    (bind,) = binds_of(pod, "c", resolv=True)
    assert bind.source == NODE.root / "etc" / "resolv.conf" and not bind.read_only


def test_serviceaccount_files() -> None:
    assert podvolumes.serviceaccount_files("t0k", "PEM", "ns") == {
        "token": "t0k", "ca.crt": "PEM", "namespace": "ns"}
    with pytest.raises(VolumeError, match="needs a token"):
        podvolumes.serviceaccount_files("", "PEM", "ns")
