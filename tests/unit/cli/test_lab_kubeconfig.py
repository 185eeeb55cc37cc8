"""The lab's kubeconfig as the CLI's default cluster, and `tulle lab exec`'s pod lookup
through the lab's API server (no lab, no root: a server on loopback where a lab's would be)."""

from __future__ import annotations

import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from agent.cli.lab import lab_pod
from agent.cli.main import cli
from lab.lifecycle import kubeconfig_path

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
       "spec": {"containers": [{"name": "c"}]}}


@pytest.fixture
def lab_named(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The run fixture's server, installed as lab NAME's kubeconfig in a fresh state dir."""
    monkeypatch.setenv("TULLE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("TULLE_LAB", "KUBECONFIG"):
        monkeypatch.delenv(var, raising=False)

    def install(name: str) -> None:
        path = kubeconfig_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(run.api.kubeconfig, path)

    return install


def test_the_default_lab_is_the_cluster_when_nothing_else_is_given(run, lab_named):
    lab_named("lab")
    result = CliRunner().invoke(cli, ["get", "ns", "default", "-o", "name"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "namespace/default"


def test_kubeconfig_in_the_environment_wins_over_the_default_lab(run, lab_named, tmp_path):
    lab_named("lab")
    elsewhere = tmp_path / "elsewhere.kubeconfig"
    elsewhere.write_text(run.api.kubeconfig.read_text().replace(run.api.url, "https://127.0.0.1:1"))
    result = CliRunner().invoke(cli, ["get", "ns"], env={"KUBECONFIG": str(elsewhere)})
    assert result.exit_code == 1
    assert "cannot reach the Kubernetes API at https://127.0.0.1:1 ($KUBECONFIG)" in result.output
    # --lab names the lab, over $KUBECONFIG
    named = CliRunner().invoke(cli, ["--lab", "lab", "get", "ns", "default", "-o", "name"],
                               env={"KUBECONFIG": str(elsewhere)})
    assert named.exit_code == 0, named.output


def test_lab_exec_finds_its_pod_through_the_labs_api_server(run, lab_named):
    lab_named("mylab")
    run.api.store.create(POD)
    assert lab_pod("mylab", "default", "web")["metadata"]["name"] == "web"
    with pytest.raises(click.ClickException, match="pod \"nope\" not found in namespace"):
        lab_pod("mylab", "default", "nope")
    with pytest.raises(click.ClickException, match="lab 'other' is not up"):
        lab_pod("other", "default", "web")
