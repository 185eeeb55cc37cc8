"""lab/imageroot.py: the lab's image stand-in, the source root and the interpreter's venv
bound read-only at fixed paths below the container's private /run (never the checkout's
own paths, which a pod's emptyDir at /tmp hides in CI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.model.convert import from_dict
from agent.model.core import Pod
from lab import imageroot, mountns, podvolumes
from lab.imageroot import Image
from lab.podvolumes import Bind, NodeFS, VolumeError
from lab.state import LabPaths

SOURCE_ROOT = Path(imageroot.__file__).resolve().parent.parent


def _venv(tmp_path: Path) -> Path:
    venv = tmp_path / "checkout" / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "bin" / "python3").symlink_to("/usr/bin/python3")
    return venv


def test_a_venv_interpreter_is_bound_with_the_source_root_below_run(tmp_path: Path) -> None:
    venv = _venv(tmp_path)
    image = Image.of(str(venv / "bin" / "python3"))
    assert image.venv == venv and image.source_root == SOURCE_ROOT
    assert image.binds() == (Bind(SOURCE_ROOT, "/run/tulle-image/src", True, False),
                             Bind(venv, "/run/tulle-image/venv", True, False))
    # The venv's own link, not where it points: python finds pyvenv.cfg beside it.
    assert image.container_python() == "/run/tulle-image/venv/bin/python3"


def test_a_symlinked_venv_directory_binds_its_target(tmp_path: Path) -> None:
    """CI's checkout may hold .venv as a symlink to a venv elsewhere."""
    venv = _venv(tmp_path)
    (tmp_path / "clone").mkdir()
    (tmp_path / "clone" / ".venv").symlink_to(venv)
    image = Image.of(str(tmp_path / "clone" / ".venv" / "bin" / "python3"))
    assert image.venv == venv
    assert image.container_python() == "/run/tulle-image/venv/bin/python3"


def test_a_system_interpreter_has_no_venv_and_runs_as_itself(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    image = Image.of(str(tmp_path / "bin" / "python3"))  # no pyvenv.cfg above it
    assert image.venv is None
    assert image.binds() == (Bind(SOURCE_ROOT, "/run/tulle-image/src", True, False),)
    assert image.container_python() == str(tmp_path / "bin" / "python3")
    assert image.env({"PATH": "/usr/bin"}, set()) == {"PATH": "/usr/bin",
                                                      "PYTHONPATH": "/run/tulle-image/src"}


def test_the_env_puts_the_image_first_unless_the_container_sets_it(tmp_path: Path) -> None:
    image = Image.of(str(_venv(tmp_path) / "bin" / "python3"))
    env = image.env({"PATH": "/usr/bin:/bin", "HOME": "/root"}, set())
    assert env == {"PATH": "/run/tulle-image/venv/bin:/usr/bin:/bin", "HOME": "/root",
                   "PYTHONPATH": "/run/tulle-image/src"}
    own = image.env({"PATH": "/mine", "PYTHONPATH": "/p"}, {"PATH", "PYTHONPATH"})
    assert own == {"PATH": "/mine", "PYTHONPATH": "/p"}


def _pod(mount_path: str) -> Pod:
    pod = from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
                     "spec": {"containers": [{"name": "c", "volumeMounts": [
                         {"name": "tmp", "mountPath": mount_path}]}],
                              "volumes": [{"name": "tmp", "emptyDir": {}}]}})
    assert isinstance(pod, Pod)
    return pod


def test_the_image_binds_come_with_a_containers_volumes_and_are_made_below_run(
    tmp_path: Path,
) -> None:
    """Their mountpoints lie in the /run tmpfs (made there, never on the host), and a
    volume mounted below the read-only image is refused."""
    image = Image.of(str(_venv(tmp_path) / "bin" / "python3"))
    node = NodeFS.for_node(LabPaths("l", tmp_path / "state"), "n1")
    pod = _pod("/tmp")
    binds = podvolumes.container_binds(pod, pod.spec.containers[0], node, tmp_path / "pod",
                                       image=image.binds())
    assert [b.target for b in binds] == ["/tmp", "/run/tulle-image/src", "/run/tulle-image/venv"]
    assert "tulle_mountpoint make \"$tulle_fd1\" /run/tulle-image/src" in mountns.script(
        binds, pod_netns=False)
    pod = _pod("/run/tulle-image/src/x")
    with pytest.raises(VolumeError, match="below the readOnly mount /run/tulle-image/src"):
        podvolumes.container_binds(pod, pod.spec.containers[0], node, tmp_path / "pod",
                                   image=image.binds())
