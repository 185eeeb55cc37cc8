"""lab/install.py's pure parts: the generated overlay (rendered by the real kubectl), the
readiness verdict over DaemonSets and Deployments, and the not-ready pods' reasons."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from lab import install


def _render(tmp_path: Path, svid_lifetime: int | None) -> list[dict]:
    base = os.path.relpath(install.LAB_OVERLAY, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(install.overlay(base, svid_lifetime=svid_lifetime)))
    done = subprocess.run([str(install.kubectl_binary()), "kustomize", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def _pod(objs: list[dict], name: str) -> dict:
    [found] = [o for o in objs if o["kind"] in install.KIND.values()
               and o["metadata"]["name"] == name]
    return found["spec"]["template"]["spec"]


def test_the_generated_overlay_adds_the_lifetime_and_leaves_dns_to_the_kubelet(
    tmp_path: Path,
) -> None:
    objs = _render(tmp_path, svid_lifetime=120)
    for workload in ("tulle-agent", "tulle-waypoint"):  # the kubelet's resolv.conf, as a node's
        pod = _pod(objs, workload)
        assert (pod["hostNetwork"], pod["dnsPolicy"]) == (True, "ClusterFirstWithHostNet")
        assert not any(m["mountPath"] == "/etc/resolv.conf"
                       for c in (*pod.get("initContainers", ()), *pod["containers"])
                       for m in c.get("volumeMounts", ()))
    for workload in ("tulle-controlplane", "tulle-controller"):  # pod netns: the kubelet's
        assert "volumes" not in _pod(objs, workload)
        assert _pod(objs, workload)["automountServiceAccountToken"] is True
    agent = _pod(objs, "tulle-agent")
    assert "--svid-lifetime=120" in agent["containers"][0]["args"]
    # in-cluster: the kubelet's projected token, no kubeconfig flag
    assert not any(a.startswith("--kubeconfig") for c in agent["containers"]
                   for a in c.get("args", []))


def test_no_svid_lifetime_no_flag(tmp_path: Path) -> None:
    agent = _pod(_render(tmp_path, svid_lifetime=None), "tulle-agent")["containers"][0]
    assert not any(a.startswith("--svid-lifetime") for a in agent["args"])


def test_an_absolute_base_is_refused() -> None:
    with pytest.raises(install.InstallError, match="relative"):
        install.overlay(str(install.LAB_OVERLAY), svid_lifetime=None)


def _ds(name: str, available: int, *, desired: int = 2, updated: int | None = None,
        generation: int = 1, observed: int | None = None) -> dict:
    status = {"desiredNumberScheduled": desired, "numberReady": available,
              "numberAvailable": available,
              "updatedNumberScheduled": desired if updated is None else updated,
              "observedGeneration": generation if observed is None else observed}
    return {"kind": "DaemonSet", "metadata": {"name": name, "generation": generation},
            "status": status}


def _deploy(name: str, available: int | None, replicas: int = 1, *, updated: int | None = None,
            total: int | None = None, generation: int = 1, observed: int | None = None,
            condition: str | None = None) -> dict:
    status: dict = {} if available is None else {
        "availableReplicas": available, "replicas": replicas if total is None else total,
        "updatedReplicas": replicas if updated is None else updated,
        "observedGeneration": generation if observed is None else observed,
        "conditions": [{"type": "Available", "reason": "MinimumReplicas",
                        "status": condition or ("True" if available >= replicas else "False")}]}
    return {"kind": "Deployment", "metadata": {"name": name, "generation": generation},
            "spec": {"replicas": replicas}, "status": status}


def _ready_set() -> list[dict]:
    return [_ds("tulle-agent", 2), _ds("tulle-waypoint", 2),
            _deploy("tulle-controlplane", 1), _deploy("tulle-controller", 1)]


def test_ready_when_every_daemonset_covers_the_nodes_and_deployments_are_available() -> None:
    objs = _ready_set()
    assert install.not_ready(objs, nodes=2) == []
    assert install.not_ready(objs, nodes=3) == ["daemonset/tulle-agent 2/3 updated",
                                                "daemonset/tulle-waypoint 2/3 updated"]


def test_not_ready_names_each_missing_or_short_workload() -> None:
    objs = [_ds("tulle-agent", 1), _deploy("tulle-controlplane", None),
            _deploy("tulle-controller", 1, replicas=2, updated=2)]
    assert install.not_ready(objs, nodes=2) == [
        "daemonset/tulle-agent 1/2 available", "daemonset/tulle-waypoint does not exist",
        "deployment/tulle-controlplane generation 1 not observed yet (status is of 0)",
        "deployment/tulle-controller 1/2 available",
    ]


@pytest.mark.parametrize(("changed", "expected"), [
    # A re-apply that changed the template: every pod of the old generation is still ready.
    (_ds("tulle-agent", 2, generation=3, observed=2),
     "daemonset/tulle-agent generation 3 not observed yet (status is of 2)"),
    # Observed, one node still runs the old template (ready, so numberReady alone says 2/2).
    (_ds("tulle-agent", 2, generation=3, updated=1),
     "daemonset/tulle-agent 1/2 updated"),
    (_ds("tulle-agent", 1, desired=1, updated=1),
     "daemonset/tulle-agent 1/2 updated"),  # a node the DaemonSet does not cover yet
    (_deploy("tulle-controller", 1, generation=2, observed=1),
     "deployment/tulle-controller generation 2 not observed yet (status is of 1)"),
    (_deploy("tulle-controller", 1, updated=0, total=1),
     "deployment/tulle-controller 0/1 updated"),
    (_deploy("tulle-controller", 1, total=2),  # surge: the old pod still there
     "deployment/tulle-controller 1 old replica(s) pending termination"),
    (_deploy("tulle-controller", 1, condition="False"),
     "deployment/tulle-controller not Available (MinimumReplicas)"),
])
def test_not_ready_until_the_rollout_is_what_kubectl_rollout_status_accepts(
    changed: dict, expected: str,
) -> None:
    objs = [o for o in _ready_set() if o["metadata"]["name"] != changed["metadata"]["name"]]
    assert install.not_ready([*objs, changed], nodes=2) == [expected]


def test_a_deployment_without_its_available_condition_is_not_ready() -> None:
    bare = _deploy("tulle-controller", 1)
    del bare["status"]["conditions"]
    objs = [o for o in _ready_set() if o["metadata"]["name"] != "tulle-controller"]
    assert install.not_ready([*objs, bare], nodes=2) == [
        "deployment/tulle-controller not Available (no Available condition)"]


def test_pod_problems_quote_the_container_reasons_of_unready_pods_only() -> None:
    ready = {"metadata": {"name": "a"}, "spec": {"nodeName": "node1"},
             "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    stuck = {"metadata": {"name": "b"}, "spec": {"nodeName": "node2"},
             "status": {"phase": "Pending",
                        "initContainerStatuses": [{"name": "setup", "state": {
                            "terminated": {"reason": "Completed"}}}],
                        "containerStatuses": [{"name": "agent", "state": {
                            "waiting": {"reason": "ContainerCreating",
                                        "message": "agent not attached"}}}]}}
    assert install.pod_problems([ready, stuck]) == [
        "pod b on node2: Pending (agent: ContainerCreating: agent not attached)"]


def test_lab_up_refuses_an_unknown_install_mode_or_manifests_without_a_datapath() -> None:
    from lab import lifecycle

    with pytest.raises(lifecycle.LabError, match="install mode 'helm': expected one of spawn, "
                                                 "manifests"):
        lifecycle.up("never", 2, lambda _m: None, mode="helm")
    with pytest.raises(lifecycle.LabError, match="--install manifests installs the datapath: --no-datapath labs are spawned"):
        lifecycle.up("never", 2, lambda _m: None, mode="manifests", datapath=False)


def test_a_wait_that_runs_out_names_what_is_not_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lab.state import LabPaths
    from lab.topology import plan_lab

    paths = LabPaths(name="lab7", root=tmp_path / "lab7")
    calls: list[tuple[str, ...]] = []
    stuck = {"metadata": {"name": "tulle-agent-abcde"}, "spec": {"nodeName": "node2"},
             "status": {"phase": "Running", "containerStatuses": [
                 {"name": "agent", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}

    def fake(_kubeconfig: Path, *args: str, timeout: float = 0) -> str:
        calls.append(args)
        if args[:2] == ("get", "daemonsets,deployments"):
            return json.dumps({"items": [_ds("tulle-agent", 1), _ds("tulle-waypoint", 2),
                                         _deploy("tulle-controlplane", 1),
                                         _deploy("tulle-controller", 1)]})
        if args[:2] == ("get", "pods"):
            return json.dumps({"items": [stuck]})
        return ""

    monkeypatch.setattr(install, "kubectl", fake)
    with pytest.raises(install.InstallError) as err:
        install.apply_and_wait(paths, plan_lab("lab7", 2), tmp_path / "kubeconfig",
                               lambda _m: None, svid_lifetime=None, timeout=0.5)
    message = str(err.value)
    assert message.startswith(
        "Tulle's workloads not ready within 0s: daemonset/tulle-agent 1/2 available")
    assert "pod tulle-agent-abcde on node2: Running (agent: CrashLoopBackOff)" in message
    assert calls[0] == ("apply", "-k", str(install.install_dir(paths)))
    written = yaml.safe_load((install.install_dir(paths) / "kustomization.yaml").read_text())
    assert not written["resources"][0].startswith("/")


def test_a_kubectl_that_does_not_answer_is_an_install_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A hung kubectl (an API server that accepts and never answers) must end `lab up` with
    # a clear error, not a traceback.
    slow = tmp_path / "kubectl"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(0o755)
    monkeypatch.setattr(install, "kubectl_binary", lambda: slow)
    with pytest.raises(install.InstallError, match=r"kubectl get nodes: no answer in 1 s"):
        install.kubectl(tmp_path / "kubeconfig", "get", "nodes", timeout=1.0)
