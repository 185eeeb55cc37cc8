"""The kubelet's view of a pod (its sandbox, its containers) and the Pod status it writes
from that view (pure). `lab/kubelet.py` drives it."""

from __future__ import annotations

import ipaddress
import subprocess
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.model.core import Container, HostPathVolumeSource, Pod, Volume
from lab import initcontainers, procs
from lab.cni_runtime import Sandbox
from lab.podvolumes import Bind
from lab.probe_runner import ProbeRun
from lab.probes import Kind, Worker, started
from lab.topology import NodePlan

BACKOFF_START = 0.5
ATTACH_TIMEOUT = 30.0  # past this the pod reports DatapathNotAttached (and keeps waiting)


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def exit_code(returncode: int) -> int:
    """A container's exitCode as the runtime reports it: a process a signal ended is 128 +
    the signal (containerd: SIGTERM 143, SIGKILL 137), not Popen's negative number."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass
class ContainerRuntime:
    name: str
    argv: tuple[str, ...]
    env: dict[str, str]
    ports: tuple[tuple[int, str], ...]
    proc: subprocess.Popen[bytes] | None = None
    record: procs.ProcRecord | None = None
    restarts: int = 0
    started_at: float | None = None
    started_at_text: str | None = None
    next_start: float = 0.0
    backoff: float = BACKOFF_START
    last_exit: int | None = None
    finished: bool = False  # exited and will not be restarted (restartPolicy)
    ready: bool = False
    ready_checked: float = 0.0
    ip_vars: tuple[str, ...] = ()  # variables set to the pod's IP once it has one
    host_paths: tuple[HostPathVolumeSource, ...] = ()  # checked before each start
    # Its own mount namespace with these (lab.volumesetup); None: the host's filesystem.
    binds: tuple[Bind, ...] | None = None
    config_error: str = ""  # what the lab cannot run of the spec (lab.podspec)
    mount_error: str = ""  # why the last start did not happen, until one does
    env_error: str = ""  # a missing Secret, ConfigMap or key (lab.envsource), until started
    source: tuple[Pod, Container] | None = None  # what argv and env were made from
    init: bool = False  # an init container: runs to exit 0 (lab.initcontainers)
    python: str = ""  # the interpreter as the container sees it (probes); "": the kubelet's
    # The node's held listening sockets it gets (lab.listeners.pod_listeners): the
    # TULLE_LISTEN_FDS value and the fds passed at each start.
    listen_fds: str = ""
    pass_fds: tuple[int, ...] = ()
    probes: dict[Kind, Worker] = field(default_factory=dict)  # this run's (lab.probes)
    probe_runs: dict[Kind, ProbeRun] = field(default_factory=dict)  # probes running now
    kill_at: float | None = None  # being killed (a failed probe): SIGKILL from then on

    @property
    def terminating(self) -> bool:
        return self.kill_at is not None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class PodRuntime:
    uid: str
    namespace: str
    name: str
    node: NodePlan
    netns: str
    ip: ipaddress.IPv4Address | None  # None until the sandbox's network is set up (CNI ADD)
    restart_policy: str
    containers: list[ContainerRuntime]
    start_time: str = field(default_factory=now_rfc3339)
    last_status: dict[str, Any] | None = None
    host_veth: str = ""
    attached: bool = False  # the datapath polices the veth: containers may start
    attach_timed_out: bool = False
    created_at: float = field(default_factory=time.monotonic)
    next_attach_check: float = 0.0
    cgroup: Path | None = None  # the pod's, below its node's (lab.cgroups); None: not used
    sandbox: Future[Sandbox] | None = None  # a CNI ADD running (lab.cni_runtime)
    sandbox_error: str = ""  # the last failed ADD's error, until one succeeds
    sandbox_retry: float = 0.0  # monotonic time of the next ADD after a failure
    sandbox_backoff: float = BACKOFF_START
    host_network: bool = False  # in the node's netns: no veth, no sandbox of its own
    init_containers: list[ContainerRuntime] = field(default_factory=list)
    # The projected ServiceAccount token (lab.satoken): asked for before the first start.
    service_account: str = "default"
    token: bool = False
    token_written: bool = False
    # Secret and ConfigMap volumes (lab.objectvolumes): written before the first start.
    object_volumes: tuple[Volume, ...] = ()
    objects_written: set[str] = field(default_factory=set)


def sandbox_waiting(rt: PodRuntime) -> tuple[str, str]:
    if rt.ip is None:  # the network first: no address, no veth to police yet
        if rt.sandbox_error:  # the kubelet's event reason for a failed CNI ADD
            return "FailedCreatePodSandBox", f"Failed to create pod sandbox: {rt.sandbox_error}"
        return "CreatingSandbox", f"setting up the pod's network on {rt.node.name} (CNI ADD)"
    if rt.attach_timed_out:
        return "DatapathNotAttached", (
            f"the node agent has not attached its programs to {rt.host_veth} on "
            f"{rt.node.name} within {ATTACH_TIMEOUT:.0f}s; containers start only once it has "
            "(check the agent's log and health)"
        )
    return "WaitingForDatapath", f"waiting for the node agent to attach to {rt.host_veth}"


def _state(rt: PodRuntime, c: ContainerRuntime, waiting_init: bool) -> dict[str, Any]:
    """A container's ``state``; ``waiting_init``: an init container not reached yet, or an
    app container of a pod not initialized yet (PodInitializing, as a kubelet says)."""
    if not rt.attached:
        if waiting_init or c.init:
            return {"waiting": {"reason": "PodInitializing"}}
        return {"waiting": {"reason": "ContainerCreating", "message": sandbox_waiting(rt)[1]}}
    if c.running:
        return {"running": {"startedAt": c.started_at_text}}
    if c.finished:
        return {"terminated": initcontainers.terminated(c.last_exit)}
    if c.mount_error or c.env_error:
        reason = ("CreateContainerConfigError" if c.config_error or c.env_error
                  else "ContainerCreating")
        return {"waiting": {"reason": reason, "message": c.env_error or c.mount_error}}
    if waiting_init:
        return {"waiting": {"reason": "PodInitializing"}}
    reason = "CrashLoopBackOff" if c.restarts else "ContainerCreating"
    if c.init and not c.restarts:
        reason = "PodInitializing"
    return {"waiting": {"reason": reason}}


def _status(rt: PodRuntime, c: ContainerRuntime, ready: bool, waiting: bool) -> dict[str, Any]:
    status: dict[str, Any] = {
        "name": c.name,
        "ready": ready,
        "restartCount": c.restarts,
        "started": c.running and started(c.probes),
        "state": _state(rt, c, waiting),
    }
    if c.restarts and c.last_exit is not None and not c.finished:  # the run before this one
        status["lastState"] = {"terminated": initcontainers.terminated(c.last_exit)}
    return status


def pod_status(rt: PodRuntime, ready_by_container: dict[str, bool]) -> dict[str, Any]:
    """Kubernetes-shaped Pod status from the runtime view (pure)."""
    init = initcontainers.plan(rt.init_containers)
    initialized = init.done
    init_statuses = [
        _status(rt, c, initcontainers.succeeded(c), init.run is None or i > init.run)
        for i, c in enumerate(rt.init_containers)
    ]
    statuses = [_status(rt, c, initialized and ready_by_container.get(c.name, False),
                        not initialized) for c in rt.containers]
    all_ready = bool(statuses) and all(s["ready"] for s in statuses)
    if init.failed:  # an init container failed under restartPolicy Never
        phase = "Failed"
    elif not initialized:
        phase = "Pending"
    elif all(c.finished for c in rt.containers):
        phase = "Succeeded" if all(c.last_exit == 0 for c in rt.containers) else "Failed"
    else:
        phase = "Running" if any(c.running for c in rt.containers) else "Pending"
    ready = "True" if all_ready else "False"
    sandbox: dict[str, Any] = {"type": "PodReadyToStartContainers", "status": "True"}
    not_ready: dict[str, Any] = {}
    if not rt.attached:
        reason, message = sandbox_waiting(rt)
        sandbox = {**sandbox, "status": "False", "reason": reason, "message": message}
        not_ready = {"reason": reason, "message": message}
    # A kubelet reports the pod's IP once the sandbox's network is set up (CNI ADD returned).
    ips: dict[str, Any] = (
        {} if rt.ip is None else {"podIP": str(rt.ip), "podIPs": [{"ip": str(rt.ip)}]}
    )
    out = {
        "phase": phase,
        **ips,
        "hostIP": str(rt.node.fabric_ip),
        "startTime": rt.start_time,
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            sandbox,
            initcontainers.initialized_condition(rt.init_containers),
            {"type": "ContainersReady", "status": ready, **not_ready},
            {"type": "Ready", "status": ready, **not_ready},
        ],
        "containerStatuses": statuses,
    }
    if rt.init_containers:
        out["initContainerStatuses"] = init_statuses
    return out
