"""How the lab kubelet starts and stops a container's process (a mixin of lab.kubelet's
Kubelet): hostPaths checked, argv and env made from the spec with the Secrets and
ConfigMaps as they are at this start (lab.envsource; a missing one is the kubelet's
CreateContainerConfigError), the process spawned in the pod's network namespace and
cgroup, its probes started afresh (lab.prober); stopped for good when its pod goes, or
killed without waiting when a probe failed (its exit then restarted per restartPolicy).
A container of a pod with volumes runs in its own mount namespace (lab.mountns's wrapper
around lab.podvolumes' binds; lab.volumesetup) and its probes run inside it."""

from __future__ import annotations

import ipaddress
import logging
import signal
import time
from collections.abc import Sequence

from agent.model.core import Container, Pod
from l7proxy.listenfds import ENV as LISTEN_FDS_ENV
from lab import (
    capabilities,
    cgroups,
    envsource,
    hostpaths,
    mountns,
    objectvolumes,
    podvolumes,
    procs,
    satoken,
    volumesetup,
)
from lab.controllers.events import EventSink
from lab.envsource import Lookup, ResolvedEnv
from lab.imageroot import Image
from lab.podruntime import ContainerRuntime, PodRuntime, now_rfc3339
from lab.podspec import container_argv, declared_env, expand, pod_env
from lab.prober import Prober
from lab.satoken import TokenIssuer
from lab.state import LabPaths
from lab.topology import NodePlan

log = logging.getLogger("lab.kubelet")

BACKOFF_MAX = 10.0
STOP_GRACE = 2.0


def _bounded(argv: tuple[str, ...], c: Container) -> tuple[str, ...]:
    """``argv`` with the capabilities the container's securityContext grants
    (lab.capabilities); unchanged for a name the kernel lacks, whose container never starts
    (the kubelet's config error)."""
    try:
        return tuple(capabilities.bounded(argv, c.security_context, capabilities.known()))
    except capabilities.CapabilityError:
        return argv


class ContainerProcesses:
    paths: LabPaths
    events: EventSink | None
    python: str
    image: Image  # what a container in a mount namespace runs (lab.imageroot)
    lookup: Lookup
    prober: Prober
    tokens: TokenIssuer | None
    ca_pem: str

    def _process(
        self, pod: Pod, c: Container, ip: ipaddress.IPv4Address | None, node: NodePlan,
        sources: ResolvedEnv | None = None,
    ) -> tuple[tuple[str, ...], dict[str, str], tuple[tuple[int, str], ...]]:
        """The container's argv (``$(VAR)`` expanded), environment and readiness ports, as
        far as ``ip`` is known (None: CNI ADD still running; done again once it is) and
        with what ``sources`` read of Secrets and ConfigMaps (None: not yet, see
        _configure)."""
        image = volumesetup.uses_volumes(pod)  # a mount namespace: the image's python
        argv, ports = container_argv(c, self.image.container_python() if image else self.python)
        declared = declared_env(pod, ip, node, c, sources)
        env = pod_env(pod, ip, node, c, sources)
        if image:
            env = volumesetup.container_env(self.image, set(declared), env)
        return _bounded(tuple(expand(arg, declared) for arg in argv), c), env, ports

    def _start_container(self, rt: PodRuntime, c: ContainerRuntime) -> None:
        problem = (c.config_error or self._token_problem(rt) or self._object_volumes_problem(rt)
                   or next(filter(None, map(hostpaths.prepare, c.host_paths)), ""))
        if problem:  # a kubelet's FailedMount: said once, retried with back-off
            if problem != c.mount_error:
                log.error("pod %s/%s:%s: %s", rt.namespace, rt.name, c.name, problem)
                self._event(rt, "FailedMount", problem, "Warning")
            c.mount_error, c.next_start = problem, time.monotonic() + BACKOFF_MAX
            return
        c.mount_error = ""
        if not self._configure(rt, c):
            return
        argv = (self._in_pod(rt, c.argv) if c.binds is None else cgroups.in_cgroup(
            rt.cgroup, mountns.wrapper_argv(rt.netns, c.binds, c.argv,
                                            pod_netns=not rt.host_network)))
        try:
            c.proc, c.record = procs.spawn(
                f"{rt.namespace}_{rt.name}_{c.name}",
                argv,
                log=self.paths.pod_log(rt.namespace, rt.name, c.name),
                record_dir=self.paths.procs / "pods",
                env={**c.env, LISTEN_FDS_ENV: c.listen_fds} if c.listen_fds else c.env,
                pass_fds=c.pass_fds,
            )
        except OSError as err:
            log.error("cannot start %s/%s:%s: %s", rt.namespace, rt.name, c.name, err)
            c.next_start = time.monotonic() + BACKOFF_MAX
            return
        c.started_at = time.monotonic()
        c.started_at_text = now_rfc3339()
        self.prober.start(c, c.started_at)
        self._event(rt, "Started", f"Started container {c.name}")

    def _token_problem(self, rt: PodRuntime) -> str:
        """Write the pod's projected ServiceAccount token before its first container
        starts (lab.satoken); why it cannot be, else "" (a missing ServiceAccount, the API
        away: the container waits, retried)."""
        if not rt.token or rt.token_written or self.tokens is None:
            return ""
        try:
            token = self.tokens(rt.namespace, rt.service_account, rt.name, rt.uid,
                                satoken.TOKEN_SECONDS)
        except Exception as err:  # NotFound says which account; any other: the API's answer
            return satoken.failed_message(str(err) or type(err).__name__)
        pod_root = podvolumes.pod_dir(self.paths, rt.namespace, rt.name)
        try:
            satoken.write_files(pod_root, token, self.ca_pem, rt.namespace)
        except (OSError, podvolumes.VolumeError) as err:
            return satoken.failed_message(str(err))
        rt.token_written = True
        return ""

    def _object_volumes_problem(self, rt: PodRuntime) -> str:
        """Write the pod's Secret and ConfigMap volumes (lab.objectvolumes) from the watch
        cache before its first container starts; why one cannot be yet, else ""."""
        pod_root = podvolumes.pod_dir(self.paths, rt.namespace, rt.name)
        for volume in rt.object_volumes:
            ref = objectvolumes.object_ref(volume)
            if ref is None or volume.name in rt.objects_written:
                continue
            try:
                content = objectvolumes.files(
                    volume.name, ref, self.lookup(ref.kind, rt.namespace, ref.name))
                objectvolumes.write(podvolumes.empty_dir(pod_root, volume.name), content)
            except objectvolumes.ObjectVolumeError as err:
                return str(err)
            except OSError as err:
                return f'MountVolume.SetUp failed for volume "{volume.name}" : {err}'
            rt.objects_written.add(volume.name)
        return ""

    def _configure(self, rt: PodRuntime, c: ContainerRuntime) -> bool:
        """Argv and env from the Secrets and ConfigMaps as they are now, as a kubelet reads
        them at each start; a missing one keeps the container waiting
        (CreateContainerConfigError), retried with back-off."""
        if c.source is None or not envsource.uses_objects(c.source[1]):
            return True
        pod, spec = c.source
        try:
            sources = envsource.resolve(spec, pod.metadata.namespace, self.lookup)
        except envsource.EnvConfigError as err:
            if str(err) != c.env_error:
                log.error("pod %s/%s:%s: %s", rt.namespace, rt.name, c.name, err)
                self._event(rt, "Failed", f"Error: {err}", "Warning")
            c.env_error, c.next_start = str(err), time.monotonic() + c.backoff
            c.backoff = min(c.backoff * 2, BACKOFF_MAX)
            return False
        c.env_error = ""
        for source, names in sources.skipped.items():
            self._event(rt, "InvalidEnvironmentVariableNames",
                        envsource.skipped_message(source, names), "Warning")
        c.argv, c.env, _ = self._process(pod, spec, rt.ip, rt.node, sources)
        return True

    def _in_pod(self, rt: PodRuntime, argv: Sequence[str]) -> list[str]:
        """``argv`` in the pod's network namespace and cgroup. The cgroup first, from the
        host's /sys (`ip netns exec` remounts it): every socket the process opens is then
        the pod's for the node's sock_ops tracer."""
        return cgroups.in_cgroup(rt.cgroup, procs.netns_argv(rt.netns, argv) if rt.host_network
                                 else ["ip", "netns", "exec", rt.netns, *argv])

    def _in_container(self, rt: PodRuntime, c: ContainerRuntime, argv: Sequence[str]) -> list[str]:
        """``argv`` beside the running container ``c`` (its probes): in a container with a
        mount namespace, that namespace and its network's (``nsenter --target``: what the
        container sees at its mount paths), as a CRI exec runs; else as _in_pod."""
        if c.binds is None or c.proc is None:
            return self._in_pod(rt, argv)
        return cgroups.in_cgroup(rt.cgroup, ["nsenter", f"--target={c.proc.pid}", "--mount",
                                             "--net", "--", *argv])

    def _event(self, rt: PodRuntime, reason: str, message: str, type_: str = "Normal") -> None:
        if self.events is None:
            return
        about = {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": rt.namespace,
            "name": rt.name,
            "uid": rt.uid,
        }
        self.events.record(about, reason, message, "kubelet", type_)

    def _stop_container(self, rt: PodRuntime, c: ContainerRuntime) -> None:
        """Stop the container's process for good (its pod goes), waiting for it."""
        self.prober.stop(c)
        if c.record is not None:
            procs.terminate(c.record, timeout=STOP_GRACE)
        if c.proc is not None:
            c.proc.wait(timeout=STOP_GRACE)
        c.proc, c.kill_at = None, None
        (self.paths.procs / "pods" / f"{rt.namespace}_{rt.name}_{c.name}.json").unlink(
            missing_ok=True
        )

    def _kill_container(self, c: ContainerRuntime, now: float) -> None:
        """A failed liveness or startup probe's kill, without holding up the tick (and so
        every other pod): SIGTERM now, SIGKILL from STOP_GRACE later (_kill_progress). The
        supervision then sees the exit (143 or 137), and restarts and counts it per
        restartPolicy, as for any exit."""
        self.prober.stop(c)
        if c.record is not None:
            procs.signal_group(c.record, signal.SIGTERM)
        c.kill_at = now + STOP_GRACE

    def _kill_progress(self, c: ContainerRuntime, now: float) -> None:
        """A container being killed that outlived its grace period gets SIGKILL."""
        if c.kill_at is not None and now >= c.kill_at and c.record is not None:
            procs.signal_group(c.record, signal.SIGKILL)
