"""A pod's sandbox in the lab kubelet: its network namespace and address (the lab's own
veth and IPAM, or a CNI chain's ADD off the tick in a thread), and the wait until the node
agent polices its veth (asked of the node over netlink in a builtin lab; in a chain lab,
tulle-cni's ADD itself returns only then)."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from lab import ipam, network
from lab.cni_runtime import LabCni, PodKey
from lab.containerproc import BACKOFF_MAX, ContainerProcesses
from lab.podruntime import ATTACH_TIMEOUT, PodRuntime, sandbox_waiting
from lab.podspec import resolv_conf
from lab.topology import LabPlan, NodePlan, host_veth_name

log = logging.getLogger("lab.kubelet")

ATTACH_POLL = 0.2
ATTACH_POLL_SLOW = 1.0  # after the timeout

AttachedProbe = Callable[[NodePlan, str], bool]  # (node, host veth) -> datapath attached?


class PodSandboxes(ContainerProcesses):
    plan: LabPlan
    cni: LabCni | None
    adds: ThreadPoolExecutor
    attached: AttachedProbe | None  # None: nothing to probe (no datapath, or a chain lab)
    pods: dict[str, PodRuntime]

    def _pod_network(
        self, node: NodePlan, ns: str, name: str
    ) -> tuple[str, ipaddress.IPv4Address | None, str]:
        """A pod netns of its own: (netns, ip, host veth); ip None until CNI ADD gives one."""
        netns = self.plan.pod_netns(ns, name)
        network.remove_netns(netns)  # a leftover from a crashed controller would hold stale state
        ip, veth = None, ""
        if self.cni is None:
            used = {rt.ip for rt in self.pods.values() if rt.node.name == node.name and rt.ip}
            ip, veth = ipam.allocate(node.pod_cidr, used), host_veth_name(ns, name)
            network.add_pod(node, netns, veth, ip)
        else:
            network.add_pod_netns(netns)  # the chain's ptp adds eth0, its address and routes
        network.write_pod_resolv_conf(netns, resolv_conf(ns))
        return netns, ip, veth

    def _start_sandbox(self, rt: PodRuntime) -> None:
        if self.cni is not None and not rt.host_network:
            rt.sandbox = self.adds.submit(
                self.cni.add, rt.node, rt.netns, PodKey(rt.namespace, rt.name, rt.uid))

    def _check_sandbox(self, rt: PodRuntime, now: float) -> None:
        """Take a finished ADD's result; after a failed one, say why and retry with back-off
        (LabCni.add has already run DEL, as a kubelet does before it retries)."""
        if rt.sandbox is None:
            if rt.ip is None and now >= rt.sandbox_retry:
                self._start_sandbox(rt)
            return
        if not rt.sandbox.done():
            return
        future, rt.sandbox = rt.sandbox, None
        try:
            sandbox = future.result()
        except Exception as err:
            rt.sandbox_error = str(err)
            rt.sandbox_retry = now + rt.sandbox_backoff
            rt.sandbox_backoff = min(rt.sandbox_backoff * 2, BACKOFF_MAX)
            log.error("pod %s/%s: %s", rt.namespace, rt.name, err)
            self._event(rt, "FailedCreatePodSandBox", sandbox_waiting(rt)[1], "Warning")
            return
        rt.ip, rt.host_veth, rt.sandbox_error = sandbox.ip, sandbox.host_veth, ""
        rt.created_at = now  # the datapath's wait starts once there is a veth to police
        rt.attached = self.attached is None  # ADD waited for the agent (or nothing polices)
        for c in (*rt.init_containers, *rt.containers):
            if c.source is not None:  # $(VAR) references to the pod's IP expand only now
                c.argv, c.env, _ = self._process(*c.source, sandbox.ip, rt.node)
            for var in ("POD_IP", *c.ip_vars):
                c.env[var] = str(sandbox.ip)
        log.info("pod %s/%s: CNI ADD gave %s on %s", rt.namespace, rt.name, sandbox.ip,
                 sandbox.host_veth)

    def _check_attached(self, rt: PodRuntime, now: float) -> None:
        """Poll the node for the datapath on the pod's veth; never start a pod unpoliced."""
        if self.attached is None or now < rt.next_attach_check:
            return
        try:
            rt.attached = self.attached(rt.node, rt.host_veth)
        except Exception as err:  # a netlink hiccup: report and poll again
            log.warning("cannot check the datapath on %s: %s", rt.host_veth, err)
        waited = now - rt.created_at
        if rt.attached:
            log.info(
                "pod %s/%s: datapath attached to %s after %.1fs; starting containers",
                rt.namespace,
                rt.name,
                rt.host_veth,
                waited,
            )
            return
        if waited > ATTACH_TIMEOUT and not rt.attach_timed_out:
            rt.attach_timed_out = True
            log.error("pod %s/%s: %s", rt.namespace, rt.name, sandbox_waiting(rt)[1])
        rt.next_attach_check = now + (ATTACH_POLL_SLOW if rt.attach_timed_out else ATTACH_POLL)
