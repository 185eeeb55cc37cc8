"""The kubelet's side of a pod's volumes (lab.volumesetup): the env a container in a mount
namespace gets (its own variables win), and which running container ``tulle lab exec``
enters."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lab import procs, volumesetup
from lab.imageroot import Image
from lab.state import LabPaths


def test_the_env_adds_the_image_and_the_api_server_unless_the_container_sets_them():
    image = Image(Path("/src"), Path("/venv"), "/venv/bin/python")
    env = volumesetup.container_env(image, {"PYTHONPATH"},
                                    {"PATH": "/usr/bin", "PYTHONPATH": "/mine"})
    assert env["PATH"] == "/run/tulle-image/venv/bin:/usr/bin"  # the image's, not /venv
    assert env["PYTHONPATH"] == "/mine"  # declared by the container: kept
    assert (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]) == ("10.240.0.1",
                                                                                  "6443")
    own = volumesetup.container_env(image, {"PATH", "KUBERNETES_SERVICE_HOST"},
                                    {"PATH": "/only", "KUBERNETES_SERVICE_HOST": "h"})
    assert (own["PATH"], own["KUBERNETES_SERVICE_HOST"]) == ("/only", "h")


def test_exec_enters_only_a_running_container_with_a_mount_namespace_of_its_own(tmp_path: Path):
    paths = LabPaths("t", tmp_path)
    (paths.procs / "pods").mkdir(parents=True)
    assert volumesetup.mount_ns_pid(paths, "ns", "p", "c") is None  # no record
    proc, _ = procs.spawn("ns_p_c", [sys.executable, "-c", "import time; time.sleep(30)"],
                          log=tmp_path / "c.log", record_dir=paths.procs / "pods")
    try:
        # Running, but in this process's mount namespace: the host's files, nothing to enter.
        assert os.readlink(f"/proc/{proc.pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
        assert volumesetup.mount_ns_pid(paths, "ns", "p", "c") is None
        assert volumesetup.mount_ns_pid(paths, "ns", "p", "other") is None
    finally:
        proc.kill()
        proc.wait()
    assert volumesetup.mount_ns_pid(paths, "ns", "p", "c") is None  # exited
