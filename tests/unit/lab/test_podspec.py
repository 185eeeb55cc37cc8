"""What a lab container gets from its spec: downward-API env, $(VAR) expansion, hostPath
mounts (lab.podspec), hostPath type checks (lab.hostpaths), and the kubelet's hostNetwork
pods (no netns of their own, the node's IP, nsenter --net)."""

from __future__ import annotations

import ipaddress
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from agent.model.convert import from_dict
from agent.model.core import HostPathVolumeSource, Pod
from lab import hostpaths, procs
from lab import kubelet as kubelet_mod
from lab.kubelet import Kubelet, pod_status
from lab.podspec import declared_env, expand, pod_env, pod_ip_vars
from lab.state import LabPaths
from lab.topology import plan_lab

NODE = plan_lab("t", 2).nodes[1]
IP = ipaddress.IPv4Address("10.244.2.9")


def _pod(host_network: bool = False, **container: Any) -> Pod:
    obj = from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "agent-x", "namespace": "sys", "uid": "u-1",
                     "labels": {"app": "agent"}, "annotations": {"note": "n"}},
        "spec": {
            "nodeName": NODE.name, "hostNetwork": host_network, "serviceAccountName": "tulle",
            "containers": [{"name": "c", **container}],
            "volumes": [{"name": "state", "hostPath": {"path": "/var/run/x"}},
                        {"name": "cfg", "downwardAPI": {"items": []}}],
        },
    })
    assert isinstance(obj, Pod)
    return obj


def _ref(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def test_field_refs_resolve_from_the_pod_and_its_node():
    paths = ["metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
             "spec.serviceAccountName", "status.hostIP", "status.podIP",
             "metadata.labels['app']", "metadata.annotations['note']", "metadata.labels['no']"]
    pod = _pod(env=[_ref(f"V{i}", p) for i, p in enumerate(paths)])
    env = declared_env(pod, IP, NODE, pod.spec.containers[0])
    assert list(env.values()) == ["agent-x", "sys", "u-1", NODE.name, "tulle",
                                  str(NODE.fabric_ip), str(IP), "agent", "n", ""]
    assert declared_env(pod, None, NODE, pod.spec.containers[0])["V6"] == ""  # before CNI ADD
    assert pod_ip_vars(pod.spec.containers[0]) == ("V6",)


def test_values_expand_earlier_variables_and_other_sources_are_empty():
    pod = _pod(env=[_ref("NODE", "spec.nodeName"), {"name": "ADDR", "value": "$(NODE):9965"},
                    {"name": "LATER", "value": "$(AFTER)"}, {"name": "AFTER", "value": "x"},
                    {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}])
    env = pod_env(pod, IP, NODE, pod.spec.containers[0])
    assert env["ADDR"] == f"{NODE.name}:9965" and env["LATER"] == "$(AFTER)"
    assert env["S"] == "" and env["POD_IP"] == str(IP)


@pytest.mark.parametrize(("text", "out"), [
    ("--node=$(N)", "--node=node2"), ("$(MISSING)", "$(MISSING)"), ("$$(N)", "$(N)"),
    ("a$b", "a$b"), ("$(N", "$(N"), ("$(N)$(N)", "node2node2"), ("$", "$"),
])
def test_expansion_follows_kubernetes(text, out):
    assert expand(text, {"N": "node2"}) == out


def test_host_path_types_are_checked_or_created(tmp_path: Path):
    made = tmp_path / "a" / "b"
    assert hostpaths.prepare(HostPathVolumeSource(str(made), "DirectoryOrCreate")) is None
    assert made.is_dir()
    touched = tmp_path / "c" / "f"
    assert hostpaths.prepare(HostPathVolumeSource(str(touched), "FileOrCreate")) is None
    assert touched.is_file()
    assert hostpaths.prepare(HostPathVolumeSource(str(touched), "Directory")) == (
        f"hostPath type check failed: {touched} is not a directory")
    assert "does not exist" in str(hostpaths.prepare(
        HostPathVolumeSource(str(tmp_path / "none"), "File")))
    assert hostpaths.prepare(HostPathVolumeSource(str(tmp_path / "none"))) is None  # no type
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "s"))
    try:
        assert hostpaths.prepare(HostPathVolumeSource(str(tmp_path / "s"), "Socket")) is None
        assert "is not a socket" in str(hostpaths.prepare(
            HostPathVolumeSource(str(made), "Socket")))
    finally:
        sock.close()


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def update_status(self, *args: Any) -> None:
        pass

    def record(self, about: Any, reason: str, message: str, component: str,
               type_: str = "Normal") -> None:
        self.events.append((reason, message))


def _kubelet(tmp_path: Path) -> tuple[Kubelet, _Recorder]:
    paths = LabPaths("t", tmp_path)
    paths.make_dirs()
    paths.lab_file.write_text(json.dumps({"name": "t", "nodes": 2, "datapath": True}))
    sink = _Recorder()
    return Kubelet(plan_lab("t", 2), paths, sink, probe=lambda n, v: False, events=sink), sink


def test_a_host_network_pod_runs_in_the_nodes_netns_with_its_ip(tmp_path, monkeypatch):
    kubelet, _ = _kubelet(tmp_path)
    touched: list[str] = []
    for name in ("add_pod", "add_pod_netns", "remove_netns", "write_pod_resolv_conf"):
        monkeypatch.setattr(kubelet_mod.network, name, lambda *a, n=name: touched.append(n))
    spawned: list[list[str]] = []

    def spawn(role: str, argv: list[str], **kw: Any) -> tuple[Any, Any]:
        spawned.append(list(argv))
        raise OSError("not here")  # what a start that failed does: the test reads the argv

    monkeypatch.setattr(procs, "spawn", spawn)
    pod = _pod(True, command=["serve", "--node=$(NODE_NAME)"],
               env=[_ref("NODE_NAME", "spec.nodeName"), _ref("MY_IP", "status.podIP")])
    kubelet.sync([pod])
    rt = kubelet.pods["u-1"]
    assert (rt.netns, rt.ip, rt.host_veth, rt.attached) == (NODE.netns, NODE.fabric_ip, "", True)
    assert rt.containers[0].env["MY_IP"] == str(NODE.fabric_ip)
    kubelet.tick()
    assert spawned == [["nsenter", f"--net=/var/run/netns/{NODE.netns}", "--", "serve",
                        f"--node={NODE.name}"]]
    status = pod_status(rt, {"c": False})
    assert status["podIP"] == status["hostIP"] == str(NODE.fabric_ip)
    kubelet.sync([])
    assert touched == [] and kubelet.pods == {}  # the node's netns is never the pod's to remove


def _spawned(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    spawned: list[list[str]] = []

    def spawn(role: str, argv: list[str], **kw: Any) -> tuple[Any, Any]:
        spawned.append(list(argv))
        raise OSError("not here")  # the test reads the argv

    monkeypatch.setattr(procs, "spawn", spawn)
    return spawned


def test_a_pod_with_volumes_runs_in_its_own_mount_namespace(tmp_path, monkeypatch):
    """A hostPath mounted elsewhere is bound there from the node's root (no longer refused);
    an emptyDir is made at create and goes at teardown; the env gets the image's PATH and
    PYTHONPATH and the API server."""
    kubelet, sink = _kubelet(tmp_path)
    spawned = _spawned(monkeypatch)
    pod = from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "agent-x", "namespace": "sys", "uid": "u-1"},
        "spec": {"nodeName": NODE.name, "hostNetwork": True, "containers": [{
            "name": "c", "command": ["serve"],
            "volumeMounts": [{"name": "state", "mountPath": "/elsewhere"},
                             {"name": "tmp", "mountPath": "/tmp"}]}],
            "volumes": [{"name": "state", "hostPath": {"path": "/var/run/x",
                                                       "type": "DirectoryOrCreate"}},
                        {"name": "tmp", "emptyDir": {}}]},
    })
    kubelet.sync([pod])
    scratch = tmp_path / "pods" / "sys_agent-x" / "volumes" / "tmp"
    assert scratch.is_dir()
    kubelet.tick()
    argv = spawned[0]
    assert argv[:5] == ["nsenter", f"--net=/var/run/netns/{NODE.netns}", "--", "unshare",
                        "--mount"]
    assert argv[-1] == "serve" and "mount --bind" in argv[argv.index("-c") + 1]
    made = tmp_path / "nodes" / NODE.name / "root" / "run" / "x"
    assert made.is_dir()  # DirectoryOrCreate, at the node's place for /var/run/x
    assert (tmp_path / "nodes" / NODE.name / "root" / "var" / "run").readlink() == Path("../run")
    env = kubelet.pods["u-1"].containers[0].env
    assert env["KUBERNETES_SERVICE_HOST"] == "10.240.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "6443"
    # The image stand-in (lab/imageroot.py): the source root and venv bound below /run.
    assert env["PYTHONPATH"] == "/run/tulle-image/src"
    binds = kubelet.pods["u-1"].containers[0].binds or ()
    (src,) = [b for b in binds if b.target == "/run/tulle-image/src"]
    assert (src.source / "lab" / "kubelet.py").is_file() and src.read_only
    if kubelet.image.venv is not None:  # this interpreter is a venv's (the project's is)
        assert env["PATH"].startswith("/run/tulle-image/venv/bin:")
    kubelet.sync([])
    assert not scratch.parent.parent.exists()  # the pod's directory went with it
    assert made.is_dir()  # a hostPath stays: it is the node's


def test_a_pod_without_volumes_runs_as_before(tmp_path, monkeypatch):
    kubelet, _ = _kubelet(tmp_path)
    spawned = _spawned(monkeypatch)
    kubelet.sync([_pod(True, command=["serve"])])
    kubelet.tick()
    assert spawned == [["nsenter", f"--net=/var/run/netns/{NODE.netns}", "--", "serve"]]
    assert "KUBERNETES_SERVICE_HOST" not in kubelet.pods["u-1"].containers[0].env
    assert not (tmp_path / "pods").exists()
    kubelet.shutdown()


@pytest.mark.parametrize(("mounts", "said"), [
    ([{"name": "cfg", "mountPath": "/etc/c"}],
     "hostPath, emptyDir, secret and configMap volumes only"),
    ([{"name": "state", "mountPath": "/var/run/s"}, {"name": "state", "mountPath": "/run/s"}],
     "mounted twice"),
    ([{"name": "state", "mountPath": "../up"}], "must be an absolute path"),
])
def test_a_volume_the_lab_cannot_give_keeps_the_container_from_starting(
    tmp_path, monkeypatch, mounts, said
):
    kubelet, sink = _kubelet(tmp_path)
    monkeypatch.setattr(procs, "spawn", lambda *a, **k: pytest.fail("started"))
    kubelet.sync([_pod(True, command=["x"], volumeMounts=mounts)])
    kubelet.tick()
    kubelet.tick()
    rt = kubelet.pods["u-1"]
    waiting = pod_status(rt, {})["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "CreateContainerConfigError"
    assert said in waiting["message"]
    assert [r for r, _ in sink.events] == ["FailedMount"]  # said once
    kubelet.shutdown()
