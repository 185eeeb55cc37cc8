"""The lab kubelet: runs Pods bound to the lab's nodes as processes in their own netns.

`sync` is level-triggered on the desired Pods; `tick` restarts exited containers with
back-off, evaluates readiness and writes Pod status when it changed.

A pod's network comes from the lab (`lab.network.add_pod`, the default) or, in a lab built
with `--cni chain`, from a real CNI chain run off the tick in a thread (`lab.cni_runtime`):
the pod gets its address only once ADD returned, and a failed ADD is reported on the pod
(FailedCreatePodSandBox) and retried with back-off. Either way a pod's sandbox is ready only
once the node agent polices its veth: no container starts before the datapath's programs are
attached to the host-side veth (the agent writes the endpoint entry before it attaches), so
a pod's first packet is policed.

A ``hostNetwork`` pod has none of that: its containers run in the node's network namespace
(``nsenter --net``, so bpffs and tracefs stay the host's), its IP is the node's, and they
start at once. Containers get the downward API's ``fieldRef`` variables and ``$(VAR)``
expansion of command and args; a pod with volumes runs each container in a mount namespace
of its own, its hostPaths the node's share of the machine, checked (or created) by type
before each start (lab.volumesetup, lab.podvolumes, lab.mountns, lab.hostpaths); env from
Secrets and ConfigMaps is read at each start (lab.envsource, lab.containerproc). Init
containers run one by one to completion before the app containers (lab.initcontainers);
probes run beside a running container (lab.probes, lab.prober).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agent.model.core import Pod
from lab import (
    capabilities,
    cgroups,
    initcontainers,
    listeners,
    network,
    objectvolumes,
    probes,
    satoken,
    volumesetup,
)
from lab.cni_runtime import CNI_ATTACH_TIMEOUT, LabCni, PodKey
from lab.containerproc import BACKOFF_MAX
from lab.controllers.events import EventSink
from lab.envsource import Lookup, no_objects
from lab.imageroot import Image
from lab.kubeapi import NotFound, StatusWriter
from lab.podruntime import (
    ATTACH_TIMEOUT,
    BACKOFF_START,
    ContainerRuntime,
    PodRuntime,
    exit_code,
    pod_status,
)
from lab.podspec import pod_ip_vars, resolv_conf
from lab.prober import Prober
from lab.readiness import ports_ready
from lab.sandboxes import AttachedProbe, PodSandboxes
from lab.satoken import TokenIssuer
from lab.state import LabPaths, read_json
from lab.topology import LabPlan

log = logging.getLogger(__name__)

__all__ = ["ATTACH_TIMEOUT", "ContainerRuntime", "Kubelet", "PodRuntime", "pod_status"]

BACKOFF_RESET_AFTER = 10.0  # a container that ran this long starts its back-off afresh
READY_RECHECK = 5.0  # once ready, re-check listening ports this often


class Kubelet(PodSandboxes):
    def __init__(
        self,
        plan: LabPlan,
        paths: LabPaths,
        api: StatusWriter,
        python: str = sys.executable,
        *,
        probe: AttachedProbe | None = None,
        events: EventSink | None = None,
        lookup: Lookup = no_objects,
        tokens: TokenIssuer | None = None,
        ca_pem: str = "",
    ):
        """`probe`: is the datapath on a pod's veth (default: ask the node over netlink).
        A lab without Tulle's datapath (lab.json) starts containers at once. `events`:
        where the kubelet's Events go (a container started, a crashed one backing off),
        which `kubectl describe pod` and `kubectl events` show as on a cluster. `lookup`:
        Secrets and ConfigMaps as served (the controller's watch cache), read at each
        container start for env (lab.envsource), and the ServiceAccounts a pod's token
        is for. `tokens` and `ca_pem`: TokenRequests and the API server's CA for the
        projected ServiceAccount token (lab.satoken); None: no token is mounted."""
        self.plan = plan
        self.paths = paths
        self.api = api
        self.events = events
        self.python = python
        self.image = Image.of(python)
        self.lookup = lookup
        self.tokens, self.ca_pem = tokens, ca_pem
        # role -> held listening sockets, as `lab up` gave this process (lab.listeners).
        self.held = listeners.held_from_environ()
        self.prober = Prober(python)
        lab = read_json(paths.lab_file) or {}
        wait = bool(lab.get("datapath", True))
        # `--cni chain`: pods' networks from a real CNI chain, ADD off the tick in threads.
        # tulle-cni's ADD returns once the agent marked the veth policed (attachTimeout):
        # the kubelet does not look for itself. Without the datapath nothing waits.
        self.cni = (LabCni(plan, paths, attach_timeout=CNI_ATTACH_TIMEOUT if wait else 0)
                    if lab.get("cni") == "chain" else None)
        self.netlink: network.DatapathProbe | None = None
        if wait and probe is None and self.cni is None:
            probe = self.netlink = network.DatapathProbe()
        self.attached = probe if wait and self.cni is None else None
        self.pod_cgroups = bool(lab.get("pod_cgroups"))  # decided by `tulle lab up`
        for node in plan.nodes if self.pod_cgroups else ():  # the nodes' kubepods.slice
            cgroups.make(cgroups.kubepods_cgroup(plan.name, node.name))
        self.adds = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cni-add")
        self.pods: dict[str, PodRuntime] = {}
        (paths.procs / "pods").mkdir(parents=True, exist_ok=True)

    # -- desired state -------------------------------------------------------------------
    def sync(self, pods: Sequence[Pod]) -> None:
        lab_nodes = {n.name for n in self.plan.nodes}
        wanted = {p.metadata.uid: p for p in pods if p.spec.node_name in lab_nodes}
        for uid in [u for u in self.pods if u not in wanted]:
            self._teardown(self.pods.pop(uid))
        for uid, pod in wanted.items():
            if uid not in self.pods:
                try:
                    self.pods[uid] = self._create(pod)
                except Exception:
                    log.exception(
                        "could not create pod %s/%s", pod.metadata.namespace, pod.metadata.name
                    )

    def _create(self, pod: Pod) -> PodRuntime:
        node = self.plan.node(pod.spec.node_name or "")
        ns, name = pod.metadata.namespace, pod.metadata.name
        host = bool(pod.spec.host_network)
        ip: ipaddress.IPv4Address | None
        if host:  # the node's netns and address: no veth, no IPAM, no datapath to wait for
            netns, ip, veth = node.netns, node.fabric_ip, ""
        else:
            netns, ip, veth = self._pod_network(node, ns, name)
        log.info("creating pod %s/%s on %s: netns %s%s, ip %s", ns, name, node.name, netns,
                 " (hostNetwork)" if host else "", ip or "from CNI ADD")
        cgroup = (cgroups.make(cgroups.pod_cgroup(self.plan.name, node.name, ns, name))
                  if self.pod_cgroups else None)
        # Volumes: every container in its own mount namespace (lab.volumesetup); the pod's
        # resolv.conf is then bound there too (`ip netns exec` no longer runs), in a pod
        # netns or for a ClusterFirstWithHostNet pod in the node's.
        fs = pod_root = None
        token, resolv = False, volumesetup.cluster_resolver(pod)
        if volumesetup.uses_volumes(pod):
            fs = volumesetup.node_fs(self.paths, node.name)
            pod_root = volumesetup.prepare_pod(self.paths, pod, resolv_conf(ns) if resolv else None)
            account = self.lookup("ServiceAccount", ns, pod.spec.service_account)
            token = self.tokens is not None and satoken.automount(pod, account)
        # lab.tulle.io/held-listeners: the node's held sockets for every container.
        held, held_fds, held_error = listeners.pod_listeners(
            pod.metadata.annotations, node.name, self.held, namespace=ns, host_network=host)
        containers: list[ContainerRuntime] = []
        init: list[ContainerRuntime] = []
        # Sidecars (init containers with restartPolicy Always) run here beside the app
        # containers, started with them after the other init containers succeeded: the
        # lab's approximation (a kubelet starts each in its init order and reports it among
        # initContainerStatuses; lab/README.md).
        run_once = [c for c in pod.spec.init_containers if c.restart_policy != "Always"]
        sidecars = [c for c in pod.spec.init_containers if c.restart_policy == "Always"]
        for c in (*run_once, *sidecars, *pod.spec.containers):
            # Secrets and ConfigMaps are read at each start (_start_container), not here.
            argv, env, ports = self._process(pod, c, ip, node)
            mounts = (volumesetup.Mounts() if fs is None or pod_root is None else
                      volumesetup.container_mounts(pod, c, fs, pod_root, resolv=resolv,
                                                    image=self.image, token=token))
            is_init = len(init) < len(run_once)
            (init if is_init else containers).append(ContainerRuntime(
                c.name, argv, env, ports, ip_vars=pod_ip_vars(c), host_paths=mounts.host_paths,
                binds=None if fs is None else mounts.binds,
                config_error=(mounts.error or held_error or capabilities.problem(
                    c.security_context, capabilities.known())),
                listen_fds=held, pass_fds=held_fds,
                source=(pod, c), init=is_init,
                python="" if fs is None else self.image.container_python(),
            ))
        rt = PodRuntime(pod.metadata.uid, ns, name, node, netns, ip,
                        pod.spec.restart_policy or "Always", containers, host_veth=veth,
                        attached=host or (self.attached is None and self.cni is None),
                        cgroup=cgroup, host_network=host,
                        init_containers=init, service_account=pod.spec.service_account,
                        token=token, object_volumes=() if fs is None else tuple(
                            v for v in pod.spec.volumes if objectvolumes.object_ref(v)))
        self._start_sandbox(rt)
        return rt

    def _teardown(self, rt: PodRuntime) -> None:
        log.info("removing pod %s/%s from %s", rt.namespace, rt.name, rt.node.name)
        for c in (*rt.init_containers, *rt.containers):
            self._stop_container(rt, c)
        # A hostNetwork pod's netns is the node's: it has no sandbox of its own to remove.
        if self.cni is not None and not rt.host_network:
            # An ADD still queued is dropped; one running is waited for (up to tulle-cni's
            # attachTimeout): DEL after it, not beside it.
            if rt.sandbox is not None and not rt.sandbox.cancel():
                rt.sandbox.exception()
            try:  # DEL before the netns goes, as a kubelet does (host-local frees the address)
                self.cni.delete(rt.node, rt.netns, PodKey(rt.namespace, rt.name, rt.uid))
            except Exception as err:  # the netns still goes; `tulle lab down` removes the rest
                log.error("pod %s/%s: CNI DEL: %s", rt.namespace, rt.name, err)
        if not rt.host_network:
            network.remove_netns(rt.netns)
        volumesetup.remove_pod(self.paths, rt.namespace, rt.name)  # after its containers
        if rt.cgroup is not None:
            try:
                cgroups.remove(rt.cgroup)
            except OSError as err:  # `tulle lab down` tries again
                log.error("pod %s/%s: %s", rt.namespace, rt.name, err)

    def shutdown(self) -> None:
        for rt in list(self.pods.values()):
            self._teardown(rt)
        self.pods.clear()
        self.adds.shutdown(wait=True)
        if self.netlink is not None:
            self.netlink.close()

    # -- runtime -----------------------------------------------------------------------
    def tick(self) -> None:
        """Supervise every pod; a status write that fails (API away) is retried next tick and
        never stops the other pods' supervision. The first such error is raised at the end."""
        now = time.monotonic()
        failed: Exception | None = None
        for rt in list(self.pods.values()):
            if rt.ip is None:
                self._check_sandbox(rt, now)
            if rt.ip is not None and not rt.attached:
                self._check_attached(rt, now)
            if rt.attached:
                self._supervise_pod(rt, now)
            ready = {c.name: self._ready(c, now) for c in rt.containers}
            status = pod_status(rt, ready)
            if status != rt.last_status:
                try:
                    self._write_status(rt, status)
                except Exception as err:
                    failed = failed or err
        if failed is not None:
            raise failed

    def _supervise_pod(self, rt: PodRuntime, now: float) -> None:
        """Init containers one at a time until all have succeeded, then the app containers
        and their probes (lab.initcontainers, lab.prober)."""
        plan = initcontainers.plan(rt.init_containers)
        if plan.run is not None:
            self._supervise(rt, rt.init_containers[plan.run], now)
        if not plan.done:
            return
        for c in rt.containers:
            self._supervise(rt, c, now)
            if c.terminating:  # a failed probe's kill under way: no probes meanwhile
                self._kill_progress(c, now)
                continue
            event = functools.partial(self._event, rt)
            if self.prober.tick(c, rt.ip, functools.partial(self._in_container, rt, c), event,
                                now):
                self._kill_container(c, now)  # its exit is restarted per policy

    def _ready(self, c: ContainerRuntime, now: float) -> bool:
        """A readinessProbe's verdict; without one, the lab's implicit readiness (every
        declared port listens, once started): every tick until ready, then every
        READY_RECHECK seconds like a probe period (/proc/PID/net/tcp costs real CPU when a
        pod holds many sockets)."""
        if not c.running or c.proc is None or c.terminating or not probes.started(c.probes):
            c.ready = False
            return False
        if (verdict := probes.ready(c.probes)) is not None:
            c.ready = verdict
            return verdict
        if not c.ready or now - c.ready_checked >= READY_RECHECK:
            c.ready = ports_ready(c.proc.pid, c.ports)
            c.ready_checked = now
        return c.ready

    def _supervise(self, rt: PodRuntime, c: ContainerRuntime, now: float) -> None:
        if c.proc is not None and c.proc.poll() is not None:
            c.last_exit = exit_code(c.proc.returncode)
            c.kill_at = None
            ran_for = now - (c.started_at or now)
            log.warning(
                "container %s/%s:%s exited with %s after %.1fs",
                rt.namespace,
                rt.name,
                c.name,
                c.last_exit,
                ran_for,
            )
            c.proc = None
            c.backoff = (
                BACKOFF_START if ran_for >= BACKOFF_RESET_AFTER else min(c.backoff * 2, BACKOFF_MAX)
            )
            c.next_start = now + c.backoff
            restart = rt.restart_policy == "Always" or (
                rt.restart_policy == "OnFailure" and c.last_exit != 0
            )
            if c.init:
                restart = initcontainers.restarts_after_exit(c.last_exit, rt.restart_policy)
            if restart:
                c.restarts += 1
                self._event(
                    rt,
                    "BackOff",
                    f"Back-off restarting failed container {c.name} in pod "
                    f"{rt.name}_{rt.namespace}({rt.uid})",
                    "Warning",
                )
            else:
                c.finished = True
        if c.proc is None and not c.finished and now >= c.next_start:
            self._start_container(rt, c)

    def _write_status(self, rt: PodRuntime, status: dict[str, Any]) -> None:
        try:
            self.api.update_status("Pod", rt.namespace, rt.name, status)
            rt.last_status = status
        except NotFound:
            pass  # deleted meanwhile; the next sync tears it down
