"""Two lab "node" containers through the real mount-namespace wrapper (lab/mountns.py with
lab/podvolumes.py's binds), with no lab: unshare only, the test's own directories and a bpffs
directory per node under /sys/fs/bpf/tulle/test-mountns-<random>. Each container sees its own
node's /var/run/tulle, its pins land in its node's bpffs directory, readOnly is enforced, its
/tmp is its pod's emptyDir (though the sources lie under the host's /tmp, Trap 1), and no
mount is left in the machine's namespace afterwards."""

from __future__ import annotations

import errno
import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.model.convert import from_dict
from agent.model.core import Pod
from lab import hostpaths, mountns, podvolumes
from lab.podvolumes import NodeFS
from lab.state import BPF_PIN_ROOT

pytestmark = [pytest.mark.root, pytest.mark.bpf]

NODES = ("n1", "n2")
RESOLV = "nameserver 169.254.20.10\nsearch t.svc.cluster.local\n"

# The container: what it sees, then a map pinned as the agent pins (bpf(2) through ctypes:
# BPF_MAP_CREATE an array, BPF_OBJ_PIN it at /sys/fs/bpf/tulle/m_v1).
CONTAINER = r"""
import ctypes, errno, json, os, sys
out = {"pid": os.getpid(), "node": sys.argv[1]}
with open("/var/run/tulle/who", "w") as f:
    f.write(sys.argv[1])
out["state"] = sorted(os.listdir("/run/tulle"))
try:
    open("/run/tulle-config/x", "w")
    out["ro"] = 0
except OSError as err:
    out["ro"] = err.errno
out["config"] = open("/run/tulle-config/setting").read()
with open("/tmp/scratch", "w") as f:
    f.write(sys.argv[1])
out["namespace"] = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
out["resolv"] = open("/etc/resolv.conf").read()
libc = ctypes.CDLL(None, use_errno=True)
attr = (ctypes.c_uint32 * 32)()
attr[0], attr[1], attr[2], attr[3] = 2, 4, 4, 1
fd = libc.syscall(321, 0, ctypes.byref(attr), ctypes.sizeof(attr))
os.makedirs("/sys/fs/bpf/tulle", exist_ok=True)
name = ctypes.create_string_buffer(b"/sys/fs/bpf/tulle/m_v1")
pin = (ctypes.c_uint64 * 3)()
pin[0], pin[1] = ctypes.addressof(name), fd
out["pinned"] = fd >= 0 and libc.syscall(321, 6, ctypes.byref(pin), ctypes.sizeof(pin)) == 0
print(json.dumps(out))
"""


def pod(command: list[str], mounts: list[dict[str, Any]] | None = None) -> Pod:
    obj = from_dict({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "agent", "namespace": "t"},
        "spec": {
            "containers": [{"name": "c", "command": command, "volumeMounts": mounts or [
                {"name": "bpffs", "mountPath": "/sys/fs/bpf"},
                {"name": "state", "mountPath": "/var/run/tulle"},
                {"name": "config", "mountPath": "/run/tulle-config", "readOnly": True},
                {"name": "tmp", "mountPath": "/tmp"},
            ]}],
            "volumes": [
                {"name": "bpffs", "hostPath": {"path": "/sys/fs/bpf", "type": "Directory"}},
                {"name": "state", "hostPath": {"path": "/var/run/tulle",
                                               "type": "DirectoryOrCreate"}},
                {"name": "config", "hostPath": {"path": "/etc/tulle", "type": "DirectoryOrCreate"}},
                {"name": "tmp", "emptyDir": {}},
            ],
        },
    })
    assert isinstance(obj, Pod)
    return obj


def mounts() -> list[str]:
    """The machine's mounts but the network namespaces' handles (nsfs on /run/netns): the
    session's lab makes and removes those for its pods meanwhile (a namespace an earlier
    test deleted), and no container here makes one."""
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if " - nsfs " not in line]


@dataclass
class Machine:
    state: Path
    bpf: Path
    nodes: dict[str, NodeFS]

    def run(self, node: str, spec: Pod) -> subprocess.CompletedProcess[str]:
        """Prepare the node's volumes as the kubelet will, then run the container."""
        fs = self.nodes[node]
        pod_root = self.state / "pods" / f"{node}_agent"
        for volume in spec.spec.volumes:
            if volume.host_path is not None:
                problem = hostpaths.prepare(podvolumes.resolved_host_path(volume.host_path, fs))
                assert problem is None, problem
            else:
                podvolumes.empty_dir(pod_root, volume.name).mkdir(parents=True, exist_ok=True)
        sa = podvolumes.serviceaccount_dir(pod_root)
        sa.mkdir(parents=True, exist_ok=True)
        for name, text in podvolumes.serviceaccount_files("tok", "PEM", "t").items():
            (sa / name).write_text(text)
        podvolumes.resolv_conf_file(pod_root).write_text(RESOLV)
        (container,) = spec.spec.containers
        binds = podvolumes.container_binds(spec, container, fs, pod_root, token=True, resolv=True)
        argv = mountns.wrapper_argv(None, binds, [*container.command, node])
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=60)
        done = subprocess.CompletedProcess(argv, proc.returncode, out, err)
        if proc.returncode == 0:
            assert json.loads(out)["pid"] == proc.pid  # every wrapper step execs the next
        return done


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Machine]:
    bpf = BPF_PIN_ROOT / f"test-mountns-{secrets.token_hex(3)}"
    state = tmp_path / "state"
    nodes = {}
    for name in NODES:
        fs = NodeFS(root=state / "nodes" / name / "root", bpffs=bpf / name,
                    cgroup=Path("/nonexistent"))
        (fs.root / "run").mkdir(parents=True)
        fs.root.chmod(0o700)
        (fs.root / "var").mkdir()
        (fs.root / "var" / "run").symlink_to("../run")
        fs.bpffs.mkdir(parents=True)
        nodes[name] = fs
    before = mounts()
    try:
        yield Machine(state, bpf, nodes)
        assert mounts() == before  # the containers' mounts died with their namespaces
    finally:
        shutil.rmtree(bpf, ignore_errors=True)  # unlinking a pin drops the map


def test_two_node_containers_see_their_own_node(machine: Machine) -> None:
    for name in NODES:
        config = machine.nodes[name].root / "etc" / "tulle"
        config.mkdir(parents=True)
        (config / "setting").write_text(f"for {name}")
    results = {}
    for name in NODES:
        # The system interpreter, not sys.executable: a CI checkout (hence its .venv) lives
        # below /tmp, which the pod's emptyDir hides inside the container.
        done = machine.run(name, pod(["/usr/bin/python3", "-I", "-c", CONTAINER]))
        assert done.returncode == 0, done.stderr
        results[name] = json.loads(done.stdout)
    for name in NODES:
        got, fs = results[name], machine.nodes[name]
        assert got["state"] == ["who"]  # its own node's /var/run/tulle, not the other's
        assert (fs.root / "run" / "tulle" / "who").read_text() == name
        assert got["ro"] == errno.EROFS and got["config"] == f"for {name}"
        assert got["namespace"] == "t" and got["resolv"] == RESOLV
        assert got["pinned"] is True
        assert (fs.bpffs / "tulle" / "m_v1").exists()  # in its node's bpffs directory
        scratch = machine.state / "pods" / f"{name}_agent" / "volumes" / "tmp" / "scratch"
        assert scratch.read_text() == name  # /tmp is the pod's emptyDir
    assert sorted(p.name for p in machine.bpf.rglob("m_v1")) == ["m_v1", "m_v1"]
    assert not Path("/sys/fs/bpf/tulle/m_v1").exists()  # nothing pinned at the machine's path


def test_a_mount_path_missing_on_the_machine_stops_the_container(machine: Machine) -> None:
    """Outside /run and the lab's own volumes a mountpoint is never made on the host."""
    missing = f"/tulle-test-missing-{secrets.token_hex(3)}"
    done = machine.run("n1", pod(["true"], [{"name": "tmp", "mountPath": missing}]))
    assert done.returncode == 1
    assert f"mountPath {missing} does not exist on this machine" in done.stderr
    assert not Path(missing).exists()


def test_a_mount_path_missing_below_an_existing_dir_is_made_in_a_private_layer(
    machine: Machine,
) -> None:
    """/var/lib/x (the agent's observer-tls mount) exists in an image, not on this machine:
    made in an overlayfs layer over /var/lib inside the container, never on the host."""
    missing = f"/var/lib/tulle-test-{secrets.token_hex(3)}/tls"
    script = ("import json, os, pathlib, sys; f = pathlib.Path(sys.argv[1], 'f'); "
              "f.write_text('seen'); print(json.dumps({'pid': os.getpid(), 'seen': "
              "f.read_text(), 'dpkg': os.path.isdir('/var/lib/dpkg')}))")
    done = machine.run("n1", pod(["/usr/bin/python3", "-I", "-c", script, missing],
                                 [{"name": "tmp", "mountPath": missing}]))
    assert done.returncode == 0, done.stderr
    # The volume, and /var/lib's own files beside it.
    got = json.loads(done.stdout)  # its pid: checked by run()
    assert (got["seen"], got["dpkg"]) == ("seen", True)
    assert not Path(missing).parent.exists()
    scratch = machine.state / "pods" / "n1_agent" / "volumes" / "tmp" / "f"
    assert scratch.read_text() == "seen"  # written through to the pod's emptyDir


def test_two_mount_paths_under_one_missing_dir_and_resolv_conf_all_stay_visible(
    machine: Machine,
) -> None:
    """Each missing mountPath needs a layer over an existing ancestor (/etc here); a layer
    made after a bind below that ancestor would hide it (/etc/resolv.conf, or the first
    volume), so every such mountpoint is made before any bind."""
    parent = f"/etc/tulle-test-{secrets.token_hex(3)}"
    script = ("import json, os, pathlib, sys; out = {'pid': os.getpid()}\n"
              "for d in sys.argv[1:3]:\n"
              "    pathlib.Path(d, 'f').write_text(d); out[d] = pathlib.Path(d, 'f').read_text()\n"
              "out['resolv'] = pathlib.Path('/etc/resolv.conf').read_text()\n"
              "print(json.dumps(out))")
    done = machine.run("n1", pod(["/usr/bin/python3", "-I", "-c", script,
                                  f"{parent}/a", f"{parent}/b"],
                                 [{"name": "tmp", "mountPath": f"{parent}/a"},
                                  {"name": "state", "mountPath": f"{parent}/b"}]))
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert (got[f"{parent}/a"], got[f"{parent}/b"]) == (f"{parent}/a", f"{parent}/b")
    assert got["resolv"] == RESOLV
    assert not Path(parent).exists()
    volumes = machine.state / "pods" / "n1_agent" / "volumes"
    assert (volumes / "tmp" / "f").read_text() == f"{parent}/a"  # through to the emptyDir
