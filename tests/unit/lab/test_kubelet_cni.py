"""The kubelet in a `--cni chain` lab: no address and no container before CNI ADD returned (it
waits for the agent's mark), and containers start as soon as it did; a failed ADD shows on the
pod (condition and event) and is retried; teardown runs DEL."""

from __future__ import annotations

import ipaddress
import json
import threading
from pathlib import Path
from typing import Any

from lab.cni_runtime import PodKey, Sandbox, SandboxError
from lab.kubelet import ContainerRuntime, Kubelet, PodRuntime
from lab.state import LabPaths
from lab.topology import NodePlan, plan_lab


class _Statuses:
    def __init__(self) -> None:
        self.written: list[dict[str, Any]] = []

    def update_status(self, kind: str, ns: str, name: str, status: dict[str, Any]) -> None:
        self.written.append(status)


class _Events:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str, str]] = []

    def record(self, about: dict[str, str], reason: str, message: str, component: str,
               type_: str = "Normal") -> None:
        self.recorded.append((reason, message, type_))


class _Cni:
    """LabCni's interface; ADD blocks until the test releases it, then fails or succeeds."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.failures = [SandboxError("CNI ADD on node1: ptp ADD: [7] no IP addresses left")]
        self.calls: list[tuple[str, str]] = []

    def add(self, node: NodePlan, netns: str, pod: PodKey) -> Sandbox:
        self.calls.append(("ADD", pod.uid))
        assert self.release.wait(10)
        if self.failures:
            raise self.failures.pop(0)
        return Sandbox(ipaddress.IPv4Address("10.244.1.7"), "veth3f2a9c01")

    def delete(self, node: NodePlan, netns: str, pod: PodKey) -> None:
        self.calls.append(("DEL", pod.uid))


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def _kubelet(tmp_path: Path, attached: bool) -> tuple[Kubelet, PodRuntime, _Cni, _Statuses,
                                                      _Events, list[str], list[str]]:
    paths = LabPaths("t", tmp_path)
    paths.make_dirs()
    paths.lab_file.write_text(json.dumps({"name": "t", "nodes": 1, "cni": "chain"}))
    statuses, events, probed = _Statuses(), _Events(), []

    def probe(node: NodePlan, veth: str) -> bool:
        probed.append(veth)
        return attached

    kubelet = Kubelet(plan_lab("t", 1), paths, statuses, probe=probe,  # type: ignore[arg-type]
                      events=events)
    assert kubelet.cni is not None  # the lab's choice, read from lab.json
    fake = _Cni()
    kubelet.cni = fake  # type: ignore[assignment]
    started: list[str] = []
    kubelet._start_container = lambda rt, c: started.append(c.name)  # type: ignore[method-assign]
    rt = PodRuntime("uid-1", "shop", "web", kubelet.plan.nodes[0], "tulle-t-pod-web", None,
                    "Always", [ContainerRuntime("c", ("x",), {"POD_IP": ""}, ())])
    kubelet._start_sandbox(rt)
    kubelet.pods[rt.uid] = rt
    return kubelet, rt, fake, statuses, events, started, probed


def _finish_add(kubelet: Kubelet, rt: PodRuntime, fake: _Cni) -> None:
    fake.release.set()
    assert rt.sandbox is not None
    rt.sandbox.exception(timeout=10)
    kubelet.tick()


def test_no_address_and_no_container_until_add_returned(tmp_path: Path) -> None:
    kubelet, rt, fake, statuses, events, started, probed = _kubelet(tmp_path, attached=True)
    fake.failures.clear()
    kubelet.tick()  # ADD still running
    status = statuses.written[-1]
    assert "podIP" not in status and started == [] and probed == []
    sandbox = _condition(status, "PodReadyToStartContainers")
    assert (sandbox["status"], sandbox["reason"]) == ("False", "CreatingSandbox")

    _finish_add(kubelet, rt, fake)
    assert rt.ip == ipaddress.IPv4Address("10.244.1.7")
    # tulle-cni's ADD returned only once the agent marked ptp's veth policed (attachTimeout,
    # lab/cni_runtime.py): the kubelet does not look for the programs itself
    assert probed == []
    assert started == ["c"] and rt.containers[0].env["POD_IP"] == "10.244.1.7"
    assert statuses.written[-1]["podIP"] == "10.244.1.7"
    kubelet.shutdown()


def test_a_failed_add_shows_on_the_pod_and_is_retried(tmp_path: Path) -> None:
    kubelet, rt, fake, statuses, events, started, probed = _kubelet(tmp_path, attached=True)
    _finish_add(kubelet, rt, fake)
    assert started == [] and rt.ip is None
    status = statuses.written[-1]
    for kind in ("PodReadyToStartContainers", "Ready"):
        cond = _condition(status, kind)
        assert cond["status"] == "False" and cond["reason"] == "FailedCreatePodSandBox"
        assert "ptp ADD: [7] no IP addresses left" in cond["message"]
    assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    [(reason, message, type_)] = events.recorded
    assert (reason, type_) == ("FailedCreatePodSandBox", "Warning")
    assert message.startswith("Failed to create pod sandbox: CNI ADD on node1")

    kubelet.tick()  # within the back-off: no new ADD
    assert fake.calls == [("ADD", "uid-1")]
    rt.sandbox_retry = 0.0
    kubelet.tick()
    _finish_add(kubelet, rt, fake)
    assert fake.calls == [("ADD", "uid-1"), ("ADD", "uid-1")]
    assert started == ["c"] and rt.sandbox_error == ""
    assert _condition(statuses.written[-1], "PodReadyToStartContainers")["status"] == "True"
    kubelet.shutdown()


def test_teardown_runs_del_after_a_running_add(tmp_path: Path, monkeypatch: Any) -> None:
    from lab import network

    removed: list[str] = []
    monkeypatch.setattr(network, "remove_netns", removed.append)
    kubelet, rt, fake, *_ = _kubelet(tmp_path, attached=True)
    fake.failures.clear()
    threading.Timer(0.2, fake.release.set).start()
    kubelet.sync([])  # the pod was deleted while its ADD ran
    assert fake.calls == [("ADD", "uid-1"), ("DEL", "uid-1")]
    assert removed == ["tulle-t-pod-web"] and kubelet.pods == {}
    kubelet.shutdown()


def test_references_to_the_pods_ip_expand_once_add_gave_it(tmp_path: Path) -> None:
    """`$(MY_IP)` in args and env values, with MY_IP from status.podIP, is the address CNI
    ADD gave, not the empty value known when the pod was created."""
    from agent.model.convert import from_dict
    from agent.model.core import Pod

    kubelet, rt, fake, _statuses, _events, _started, _probed = _kubelet(tmp_path, attached=True)
    fake.failures.clear()
    pod = from_dict({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"containers": [{
            "name": "c", "image": "x", "command": ["serve"], "args": ["--bind=$(MY_IP)"],
            "env": [{"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "URL", "value": "http://$(MY_IP):80"}]}]},
    })
    assert isinstance(pod, Pod)
    (container,) = pod.spec.containers
    argv, env, _ = kubelet._process(pod, container, None, rt.node)
    assert argv == ("serve", "--bind=") and env["URL"] == "http://:80"  # before ADD
    rt.containers[0].source = (pod, container)
    _finish_add(kubelet, rt, fake)
    c = rt.containers[0]
    assert c.argv == ("serve", "--bind=10.244.1.7")
    assert (c.env["MY_IP"], c.env["URL"], c.env["POD_IP"]) == (
        "10.244.1.7", "http://10.244.1.7:80", "10.244.1.7")
    kubelet.shutdown()
