"""The VM lab (vagrant/) and the image recipe's shell: VMs cannot boot here, so what can be
checked is checked: `vagrant validate` (which also finds every provisioning script the
Vagrantfile names) and shellcheck over every script. Both tools come from Debian through
scripts/setup.sh; a missing one fails the test rather than skipping it."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
VAGRANT = ROOT / "vagrant"
SCRIPTS = sorted((VAGRANT / "provision").glob("*.sh")) + sorted((ROOT / "image").glob("*.sh"))


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed: run scripts/setup.sh (it installs Debian's {name})"
    return path


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    """A copy of vagrant/, so Vagrant's state (.vagrant/, the bootstrap token) stays in tmp."""
    copy = tmp_path / "vagrant"
    shutil.copytree(VAGRANT, copy, ignore=shutil.ignore_patterns(".vagrant"))
    return copy


def validate(where: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("vagrant"), "validate", "--ignore-provider"],
        cwd=where, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )


def test_vagrantfile_validates_with_three_nodes(lab: Path) -> None:
    done = validate(lab)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Vagrantfile validated successfully" in done.stdout
    for node in ("control-plane", "worker-1", "worker-2"):
        assert f"==> {node}:" in done.stdout


def test_bootstrap_token_is_made_once_and_kept_private(lab: Path) -> None:
    assert validate(lab).returncode == 0
    token_file = lab / ".vagrant" / "tulle-kubeadm-token"
    token = token_file.read_text()
    assert re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", token)  # kubeadm's bootstrap token format
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert validate(lab).returncode == 0
    assert token_file.read_text() == token  # workers and control plane agree across runs


def test_a_missing_provisioning_script_fails_validation(lab: Path) -> None:
    (lab / "provision" / "cni.sh").unlink()
    done = validate(lab)
    assert done.returncode != 0
    assert "provision/cni.sh" in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [("TULLE_VAGRANT_WORKERS", "0"), ("TULLE_VAGRANT_WORKERS", "10"),
     ("TULLE_VAGRANT_WORKERS", "two"), ("TULLE_VAGRANT_MEMORY", "512"), ("TULLE_VAGRANT_CPUS", "1")],
)
def test_a_bad_setting_is_refused_by_name(lab: Path, name: str, value: str) -> None:
    done = validate(lab, **{name: value})
    assert done.returncode != 0
    assert f'{name}="{value}": want a whole number in' in done.stdout + done.stderr


def test_every_provisioning_and_image_script_passes_shellcheck() -> None:
    names = {p.name for p in SCRIPTS}
    assert {"common.sh", "control-plane.sh", "worker.sh", "cni.sh", "tulle.sh", "smoke.sh",
            "build.sh", "run-in-rootfs.sh"} <= names
    done = subprocess.run(
        [tool("shellcheck"), "--external-sources", *map(str, SCRIPTS)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout


def test_shellcheck_catches_what_it_should(tmp_path: Path) -> None:
    """The check above can fail: an unquoted expansion is reported."""
    bad = tmp_path / "bad.sh"
    bad.write_text('#!/usr/bin/env bash\nrm -rf $1/tmp\n')
    done = subprocess.run([tool("shellcheck"), str(bad)], capture_output=True, text=True)
    assert done.returncode != 0 and "SC2086" in done.stdout


def test_smoke_workload_uses_the_built_image_without_pulling() -> None:
    text = (VAGRANT / "smoke" / "echo.yaml").read_text()
    images = re.findall(r"image: (\S+)", text)
    policies = re.findall(r"imagePullPolicy: (\S+)", text)
    assert images and set(images) == {"ghcr.io/tulle-mesh/tulle:latest"}
    assert policies == ["Never"] * len(images)  # no registry: the image is imported into containerd
