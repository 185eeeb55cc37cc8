"""The policy check (policy.py) over every rendered workload: no findings; and each rule
finds what it is for, so a regression in the manifests fails here."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.deploy.policy import findings
from tests.unit.deploy.rendered import IMAGE, OVERLAYS, one, render, version

LAB_IMAGE = "localhost/tulle"


def _workloads(overlay: str) -> list[dict[str, Any]]:
    return [o for o in render(overlay) if o["kind"] in ("DaemonSet", "Deployment")]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_passes_the_policy(overlay: str) -> None:
    image = LAB_IMAGE if overlay == "lab" else IMAGE
    workloads = _workloads(overlay)
    assert {w["metadata"]["name"] for w in workloads} == {"tulle-agent", "tulle-waypoint",
                                                          "tulle-controlplane",
                                                          "tulle-controller", "tulle-relay"}
    found = [f for w in workloads for f in findings(w, image, version())]
    assert found == []


def _agent() -> dict[str, Any]:
    return one(render("production"), "DaemonSet", "tulle-agent")


def _container(obj: dict[str, Any], name: str) -> dict[str, Any]:
    pod = obj["spec"]["template"]["spec"]
    [found] = [c for c in pod.get("initContainers", []) + pod["containers"] if c["name"] == name]
    return found


def _check(obj: dict[str, Any]) -> list[str]:
    return findings(obj, IMAGE, version())


def test_net_raw_is_justified_only_by_the_announcer_flag() -> None:
    """overlays/lab announces (ARP) and so adds NET_RAW; the same grant without the flag is
    refused, as in production."""
    agent = one(render("lab"), "DaemonSet", "tulle-agent")
    container = _container(agent, "agent")
    assert "NET_RAW" in container["securityContext"]["capabilities"]["add"]
    assert findings(agent, LAB_IMAGE, version()) == []
    container["args"] = [a for a in container["args"] if not a.startswith("--announce-interface")]
    assert "tulle-agent/agent: capabilities not justified: ['NET_RAW']" in findings(
        agent, LAB_IMAGE, version())


def test_privileged_is_refused_beyond_the_bpffs_mount() -> None:
    agent = _agent()
    _container(agent, "agent")["securityContext"]["privileged"] = True
    assert "tulle-agent/agent: privileged" in _check(agent)


def test_a_capability_without_a_reason_is_refused() -> None:
    agent = _agent()
    _container(agent, "agent")["securityContext"]["capabilities"]["add"].append("NET_RAW")
    assert "tulle-agent/agent: capabilities not justified: ['NET_RAW']" in _check(agent)


@pytest.mark.parametrize("image", [f"{IMAGE}:latest", IMAGE, "docker.io/evil/tulle:0.1.0"])
def test_latest_untagged_or_foreign_images_are_refused(image: str) -> None:
    agent = _agent()
    _container(agent, "check-kernel-headers")["image"] = image
    [finding] = _check(agent)
    assert finding.startswith("tulle-agent/check-kernel-headers: image")


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("readOnlyRootFilesystem", "root filesystem not read-only"),
        ("allowPrivilegeEscalation", "allowPrivilegeEscalation not false"),
        ("capabilities", "capabilities: does not drop ALL"),
    ],
)
def test_each_hardening_field_is_required(field: str, expected: str) -> None:
    deployment = one(render("production"), "Deployment", "tulle-controlplane")
    _container(deployment, "controlplane")["securityContext"].pop(field)
    assert f"tulle-controlplane/controlplane: {expected}" in _check(deployment)


def test_probes_resources_and_host_paths_are_required() -> None:
    agent = _agent()
    container = _container(agent, "agent")
    container.pop("livenessProbe")
    container["resources"] = {}
    agent["spec"]["template"]["spec"]["volumes"].append(
        {"name": "root", "hostPath": {"path": "/"}})
    assert set(_check(agent)) == {
        "tulle-agent/agent: no liveness and readiness probes",
        "tulle-agent/agent: no cpu and memory requests",
        "tulle-agent/agent: no memory limit",
        "tulle-agent: hostPath / is not one the workload needs",
    }


def test_host_network_is_the_agents_alone() -> None:
    deployment = one(render("production"), "Deployment", "tulle-controlplane")
    deployment["spec"]["template"]["spec"]["hostNetwork"] = True
    deployment["spec"]["template"]["spec"]["serviceAccountName"] = "default"
    assert set(_check(deployment)) == {"tulle-controlplane: hostNetwork",
                                       "tulle-controlplane: runs as the default ServiceAccount"}


def test_seccomp_is_the_runtimes_default_but_where_listed() -> None:
    agent = _agent()
    agent["spec"]["template"]["spec"].pop("securityContext")
    found = _check(agent)
    assert "tulle-agent/node-setup: seccomp profile None, not RuntimeDefault" in found
    assert "tulle-agent/agent: seccomp profile Unconfined, not RuntimeDefault" not in found
    assert "tulle-agent/mount-bpffs: seccomp profile None, not RuntimeDefault" not in found
    waypoint = one(render("production"), "DaemonSet", "tulle-waypoint")
    _container(waypoint, "waypoint")["securityContext"]["seccompProfile"] = {
        "type": "RuntimeDefault"}
    assert _check(waypoint) == [
        "tulle-waypoint/waypoint: seccomp profile RuntimeDefault, not Unconfined"]
