"""The OCI image (image/build.sh): built from Debian and PyPI here, then its root filesystem
runs Tulle's entry points, and the agent's datapath compiles and loads from it with the node's
kernel headers, as a DaemonSet pod on a node would (image/run-in-rootfs.sh gives the rootfs
what the pod's hostPath mounts give it).

The build took 83 to 148 s from nothing here, 49 s after a code change and 0.3 s when up to
date (image/README.md), so it runs in `make test` (root tier).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

# The first test also waits for the build (module fixture): allow it past the default 300 s.
pytestmark = [pytest.mark.root, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "image" / "build.sh"
RUN = ROOT / "image" / "run-in-rootfs.sh"
OUT = ROOT / "build" / "image"
ROOTFS = OUT / "rootfs"


@pytest.fixture(scope="module")
def built() -> Path:
    """Build (or find up to date) the image; a failed build fails every test loudly."""
    env = {**os.environ, "PYTHON": sys.executable}  # the venv's: Debian's python3, as the image
    done = subprocess.run(
        ["bash", str(BUILD)], env=env, capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, f"image/build.sh failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert (OUT / "tulle-oci.tar").is_file()
    return ROOTFS


def in_rootfs(
    rootfs: Path, *argv: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    extra = [f"{k}={v}" for k, v in (env or {}).items()]
    return subprocess.run(
        [str(RUN), str(rootfs), "env", *extra, *argv],
        input=stdin, capture_output=True, text=True, timeout=180,
    )


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["tulle", "--help"], "Usage: tulle"),
        (["python", "-m", "agent.cli.node", "agent", "--help"], "Run the node agent"),
        (["python", "-m", "agent.cli.node", "waypoint", "--help"], "waypoint"),
        (["python", "-m", "controlplane", "--help"], "usage: python -m controlplane"),
    ],
)
def test_entry_points_run_from_the_rootfs(built: Path, argv: list[str], expect: str) -> None:
    done = in_rootfs(built, *argv)
    assert done.returncode == 0, done.stderr
    assert expect in done.stdout


def test_python_is_debians_with_bcc_and_tulle_from_the_wheel(built: Path) -> None:
    code = "import agent, bcc, sys; print(sys.executable, bcc.__file__, agent.__file__)"
    done = in_rootfs(built, "python", "-c", code)
    assert done.returncode == 0, done.stderr
    exe, bcc_file, agent_file = done.stdout.split()
    assert exe == "/opt/tulle/bin/python"
    assert bcc_file.startswith("/usr/lib/python3/dist-packages/bcc/")  # python3-bpfcc
    assert agent_file.startswith("/opt/tulle/lib/python3.11/site-packages/agent/")  # not the checkout


def test_every_package_the_wheel_declares_imports_from_the_rootfs(built: Path) -> None:
    """The recipe copies sources by an explicit list: a package pyproject.toml ships but the
    list forgets (authz was) would leave the waypoint failing on import in the image only."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]["find"]["include"]
    packages = sorted(p.rstrip("*") for p in declared if p.rstrip("*") != "bpf")  # bpf: C only
    code = f"import importlib; [importlib.import_module(p) for p in {packages!r}]; print('ok')"
    done = in_rootfs(built, "python", "-c", code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_cni_plugin_answers_version_and_refuses_an_unknown_command(built: Path) -> None:
    done = in_rootfs(built, "tulle-cni", env={"CNI_COMMAND": "VERSION"}, stdin="{}")
    assert done.returncode == 0, done.stderr
    assert "1.0.0" in json.loads(done.stdout)["supportedVersions"]
    bad = in_rootfs(built, "tulle-cni", env={"CNI_COMMAND": "BOGUS"}, stdin="{}")
    assert bad.returncode != 0
    assert json.loads(bad.stdout)["code"] == 4  # the spec's "invalid environment variables"


LOAD = """
import sys
from pathlib import Path
from agent.datapath.programs import load_datapath
dp = load_datapath(Path(sys.argv[1]))
print(dp.programs_loaded, dp.compiled, sorted(p.name for p in Path(sys.argv[1]).iterdir()))
dp.close()
"""


@pytest.mark.bpf
def test_agent_datapath_compiles_and_loads_from_the_image(built: Path) -> None:
    """Tulle's tc programs, compiled by the image's BCC from the C the wheel carries, against
    the node's headers (/lib/modules, /usr/src bound read-only), verified and their maps pinned
    on the host's bpffs."""
    pin_dir = Path(f"/sys/fs/bpf/tulle/test-image-{os.getpid()}")
    try:
        done = in_rootfs(built, "python", "-c", LOAD, str(pin_dir))
        assert done.returncode == 0, done.stderr[-4000:]
        loaded, compiled, pins = done.stdout.strip().split(" ", 2)
        assert (loaded, compiled) == ("True", "True")
        assert "events_lost_v1" in pins
        assert (pin_dir / "events_lost_v1").exists()  # pinned where the host sees it
    finally:
        shutil.rmtree(pin_dir, ignore_errors=True)


def test_oci_layout_has_both_layers_the_tags_and_the_venv_on_path(built: Path) -> None:
    layout = OUT / "oci"
    index = json.loads((layout / "index.json").read_text())
    tags = {m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]}
    version = subprocess.run(
        ["sed", "-n", r's/^version = "\(.*\)"$/\1/p', str(ROOT / "pyproject.toml")],
        capture_output=True, text=True, check=True,
    ).stdout.split()[0]
    assert tags == {"latest", version}
    names = {m["annotations"]["io.containerd.image.name"] for m in index["manifests"]}
    assert names == {f"ghcr.io/tulle-mesh/tulle:{t}" for t in tags}  # what `ctr import` names

    def blob(digest: str) -> bytes:
        algo, hexd = digest.split(":")
        data = (layout / "blobs" / algo / hexd).read_bytes()
        assert hashlib.sha256(data).hexdigest() == hexd  # content-addressed, intact
        return data

    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    assert len(manifest["layers"]) == 2  # Debian, then /opt/tulle
    for layer in manifest["layers"]:
        blob(layer["digest"])
    config = json.loads(blob(manifest["config"]["digest"]))
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    path = next(e for e in config["config"]["Env"] if e.startswith("PATH="))
    assert path.startswith("PATH=/opt/tulle/bin:")  # `python -m …` in the manifests is the venv's


def test_build_is_idempotent(built: Path) -> None:
    before = (OUT / "tulle-oci.tar").stat().st_mtime_ns
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(BUILD)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout
    assert (OUT / "tulle-oci.tar").stat().st_mtime_ns == before


def test_run_in_rootfs_refuses_what_is_not_a_rootfs(tmp_path: Path) -> None:
    for target, why in ((tmp_path, "not a root filesystem"), (Path("/"), "refusing to use /")):
        done = subprocess.run([str(RUN), str(target), "true"], capture_output=True, text=True)
        assert done.returncode == 2
        assert why in done.stderr
    done = subprocess.run([str(RUN), str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2 and "usage:" in done.stderr


def test_smoke_workload_echo_serves_from_the_image_as_nobody(built: Path) -> None:
    """vagrant/smoke/echo.yaml's container (runAsUser 65534, read-only root): the image's echo
    server answers a request on loopback with its pod name."""
    import socket
    import time
    import urllib.request

    with socket.socket() as probe:  # a free loopback port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(RUN), str(built), "env", "POD_NAME=echo-0", "POD_NAMESPACE=tulle-smoke",
         "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
         "python", "-m", "lab.echo.server", "--address", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        body = None
        for _ in range(100):  # until it listens (bounded: 100 tries), or it exits
            assert server.poll() is None, server.communicate()[1]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello?n=1", timeout=5) as r:
                    body = json.load(r)
                break
            except OSError:
                time.sleep(0.1)
        assert body is not None, "the echo server never answered"
        assert (body["pod"], body["namespace"], body["path"]) == ("echo-0", "tulle-smoke", "/hello?n=1")
    finally:
        # unshare(1) ignores SIGTERM while it waits: signal its whole group (the server too).
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.communicate(timeout=30)


@pytest.mark.parametrize(
    ("prefix", "env", "why"),
    [
        (["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"], {},
         "building the image needs root"),
        ([], {"PYTHON": "/nonexistent/python"}, "/nonexistent/python not found"),
    ],
)
def test_build_refuses_clearly(prefix: list[str], env: dict[str, str], why: str) -> None:
    done = subprocess.run(
        [*prefix, "bash", str(BUILD)], env={**os.environ, **env},
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert why in done.stderr
