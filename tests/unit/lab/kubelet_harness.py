"""Running the lab kubelet on real processes on this machine without root: the pod's netns
wrapper replaced by nothing, a sink for its status writes and events, and a poll of the pod's
status until a condition holds (lab tests of init containers, probes, env sources)."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.model.convert import from_dict
from agent.model.core import Pod
from lab.kubelet import ContainerRuntime, Kubelet, PodRuntime, pod_status
from lab.podspec import container_argv, pod_env
from lab.state import LabPaths
from lab.topology import plan_lab

WAIT = 20.0  # a bound on polling, not a timing assertion


class Sink:
    def __init__(self) -> None:
        self.written: list[dict[str, Any]] = []
        self.events: list[tuple[str, str]] = []

    def update_status(self, kind: str, ns: str, name: str, status: dict[str, Any]) -> None:
        self.written.append(status)

    def record(self, about: dict[str, str], reason: str, message: str, component: str,
               type_: str = "Normal") -> None:
        self.events.append((reason, message))


def make_pod(spec: dict[str, Any]) -> Pod:
    pod = from_dict({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "p", "namespace": "shop", "uid": "u1"}, "spec": spec})
    assert isinstance(pod, Pod)
    return pod


def make_kubelet(
    tmp_path: Path, pod: Pod, objects: dict[tuple[str, str, str], Any] | None = None
) -> tuple[Kubelet, PodRuntime, Sink]:
    paths = LabPaths("t", tmp_path / "lab")
    paths.make_dirs()
    paths.lab_file.write_text('{"name": "t", "nodes": 1, "datapath": false}')
    sink = Sink()
    found = objects or {}
    kubelet = Kubelet(plan_lab("t", 1), paths, sink, events=sink,  # type: ignore[arg-type]
                      lookup=lambda kind, ns, name: found.get((kind, ns, name)))
    kubelet._in_pod = lambda rt, argv: list(argv)  # type: ignore[method-assign]
    node = plan_lab("t", 1).nodes[0]
    ip = ipaddress.IPv4Address("127.0.0.1")

    def runtime(c: Any, init: bool) -> ContainerRuntime:
        argv, ports = container_argv(c, "python3")
        return ContainerRuntime(c.name, argv, pod_env(pod, ip, node, c), ports,
                                source=(pod, c), init=init)

    rt = PodRuntime("u1", "shop", "p", node, "ns", ip, pod.spec.restart_policy,
                    [runtime(c, False) for c in pod.spec.containers], attached=True,
                    init_containers=[runtime(c, True) for c in pod.spec.init_containers])
    kubelet.pods[rt.uid] = rt
    return kubelet, rt, sink


def until(
    kubelet: Kubelet, rt: PodRuntime, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    while True:
        kubelet.tick()
        status = pod_status(rt, {c.name: c.ready for c in rt.containers})
        if done(status):
            return status
        assert time.monotonic() < deadline, f"never reached; last status {status}"
        time.sleep(0.05)


def sh(name: str, script: str) -> dict[str, Any]:
    return {"name": name, "command": ["sh", "-c", script]}


def cond(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


@pytest.fixture
def stop_all() -> Iterator[Callable[[Kubelet], None]]:
    """Shut down (its processes stopped) every kubelet a test hands it."""
    made: list[Kubelet] = []
    yield made.append
    for k in made:
        k.shutdown()
