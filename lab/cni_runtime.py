"""The lab kubelet's pod network through a real CNI chain (`tulle lab up --cni chain`).

Instead of building veths itself (`lab.network.add_pod`), the kubelet runs what a node's
container runtime runs: Debian's `ptp` with `host-local` IPAM for the node's pod CIDR, then
Tulle's chained plugin (`cni/`), through `cni.runtime.Chain` (libcni's order: ADD in order
with ``prevResult``, DEL in reverse). Each plugin runs in the node's network namespace
(``ip netns exec <node>``) on the pod's netns file, so the lab runs the code a node runs.

Like libcni, the ADD result is cached per attachment (under the lab's state) and handed to
DEL; a failed ADD is undone with DEL at once, as a kubelet does before it retries. All
plugin state (host-local's leases, tulle-cni's records) lives under the lab's state dir,
which `tulle lab down` removes: nothing goes to /var/lib/cni.

tulle-cni's ``stateDir`` is the node's ``/var/run/tulle/cni`` (under the node's root in the
lab's state), the agent's ``--cni-state-dir`` either way the lab installs it. In a lab with
the datapath, ``attachTimeout`` is ``CNI_ATTACH_TIMEOUT``: ADD returns only once the node's
agent has marked the pod's veth policed, so the kubelet starts containers as soon as ADD
returned, as a node's runtime does. Without the datapath no agent answers: 0, no wait.
"""

from __future__ import annotations

import ipaddress
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cni
from cni import store
from cni.record import record_key
from cni.runtime import Attachment, Chain, ChainError
from lab.state import LabPaths, write_json_atomic
from lab.topology import LabPlan, NodePlan

MODES = ("builtin", "chain")  # `tulle lab up --cni`; recorded as "cni" in lab.json
DEBIAN_CNI = Path("/usr/lib/cni")  # containernetworking-plugins (scripts/setup.sh)
NETWORK = "tulle-lab"
IFNAME = "eth0"
PLUGINS = ("ptp", "host-local")  # what the chain needs from DEBIAN_CNI
# Seconds tulle-cni's ADD waits for the agent (its README's default): a pod whose ADD runs
# out is deleted and retried with back-off, as a kubelet does.
CNI_ATTACH_TIMEOUT = 10


class SandboxError(RuntimeError):
    """The pod's network could not be set up: the message names the plugin and its error."""


@dataclass(frozen=True, slots=True)
class PodKey:
    namespace: str
    name: str
    uid: str  # the pod's UID: its sandbox's CNI_CONTAINERID (one sandbox per pod here)


@dataclass(frozen=True, slots=True)
class Sandbox:
    """What ADD gave the pod: its address (host-local's) and the host end of its veth (ptp's
    choice, as tulle-cni recorded it)."""

    ip: ipaddress.IPv4Address
    host_veth: str


def cni_root(paths: LabPaths) -> Path:
    return paths.root / "cni"


def tulle_state_dir(paths: LabPaths, node: str) -> Path:
    """tulle-cni's ``stateDir`` on a node, and its agent's ``--cni-state-dir``: the node's
    /var/run/tulle/cni, which the agent DaemonSet's /var/run/tulle hostPath holds
    (lab/podvolumes.py: a node's var/run is its root's run)."""
    return paths.root / "nodes" / node / "root" / "run" / "tulle" / "cni"


def ipam_dir(paths: LabPaths, node: str) -> Path:
    """host-local's ``dataDir``: one file per leased address under ``<dir>/<network>/``."""
    return cni_root(paths) / node / "ipam"


def conflist(node: NodePlan, paths: LabPaths, attach_timeout: int = CNI_ATTACH_TIMEOUT
             ) -> dict[str, Any]:
    """The node's network configuration list (pure). The range skips the node's gateway
    (first host, which ptp puts on each host veth as the pods' next hop) and its waypoint
    address (last-but-one), as the builtin allocator does (lab/ipam.py)."""
    cidr = node.pod_cidr
    return {
        "cniVersion": "1.0.0",
        "name": NETWORK,
        "plugins": [
            {
                "type": "ptp",
                "ipMasq": False,  # pod traffic stays inside the lab: nothing to masquerade
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{
                        "subnet": str(cidr),
                        "rangeStart": str(node.gateway_ip + 1),
                        "rangeEnd": str(node.waypoint_ip - 1),
                        "gateway": str(node.gateway_ip),
                    }]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(ipam_dir(paths, node.name)),
                },
            },
            {"type": "tulle-cni", "stateDir": str(tulle_state_dir(paths, node.name)),
             "attachTimeout": attach_timeout},
        ],
    }


def sandbox_from(result: Mapping[str, Any], host_veth: str) -> Sandbox:
    """The pod's IPv4 address from a chain's ADD result (pure)."""
    for entry in result.get("ips") or ():
        iface = ipaddress.ip_interface(str(entry.get("address", "")))
        if isinstance(iface, ipaddress.IPv4Interface):
            return Sandbox(iface.ip, host_veth)
    raise SandboxError(f"the CNI result has no IPv4 address: {json.dumps(result)[:200]}")


def missing_plugins(cni_path: Sequence[Path] = (DEBIAN_CNI,)) -> list[str]:
    return [p for p in PLUGINS if not any((d / p).exists() for d in cni_path)]


def mode_error(mode: str, cni_path: Sequence[Path] = (DEBIAN_CNI,)) -> str | None:
    """Why a lab cannot be built with ``--cni mode`` here; None when it can."""
    if mode not in MODES:
        return f"unknown --cni {mode!r}: use one of {', '.join(MODES)}"
    if mode == "chain" and (missing := missing_plugins(cni_path)):
        return (f"--cni chain needs the CNI plugins {', '.join(missing)} in "
                f"{':'.join(map(str, cni_path))}: run scripts/setup.sh "
                "(it installs containernetworking-plugins)")
    return None


class LabCni:
    """ADD, CHECK and DEL of pods' sandboxes on a lab's nodes. Safe to call from several
    threads for different pods: each plugin run is its own process, and host-local locks
    its data directory."""

    def __init__(self, plan: LabPlan, paths: LabPaths, *, cni_path: Sequence[Path] = (DEBIAN_CNI,),
                 python: str = sys.executable, in_node: bool = True,
                 attach_timeout: int = CNI_ATTACH_TIMEOUT) -> None:
        """`in_node` False runs plugins in this process's netns (unit tests' fake plugins).
        `attach_timeout` 0: ADD does not wait for an agent (a lab without the datapath)."""
        self.plan, self.paths, self.in_node = plan, paths, in_node
        self.attach_timeout = attach_timeout
        self.bin = cni_root(paths) / "bin"
        self.cni_path = [str(p) for p in cni_path] + [str(self.bin)]
        (cni_root(paths) / "results").mkdir(parents=True, exist_ok=True)
        self._install_plugin(python)

    def _install_plugin(self, python: str) -> None:
        """A node's CNI bin directory holds ``tulle-cni``; here a wrapper that runs this
        checkout's (or installed) ``cni`` package with the lab's interpreter."""
        self.bin.mkdir(parents=True, exist_ok=True)
        source = Path(cni.__file__).resolve().parents[1]
        wrapper = self.bin / "tulle-cni"
        text = f'#!/bin/sh\nPYTHONPATH={source} exec {python} -m cni "$@"\n'
        if not wrapper.exists() or wrapper.read_text() != text:
            tmp = wrapper.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.chmod(0o755)
            tmp.replace(wrapper)

    def chain(self, node: NodePlan) -> Chain:
        prefix = ["ip", "netns", "exec", node.netns] if self.in_node else []
        return Chain(conflist(node, self.paths, self.attach_timeout), self.cni_path,
                     prefix=prefix)

    def _cache(self, pod: PodKey) -> Path:
        return cni_root(self.paths) / "results" / f"{NETWORK}-{pod.uid}-{IFNAME}.json"

    @staticmethod
    def attachment(pod: PodKey, netns: str) -> Attachment:
        args = {"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": pod.namespace,
                "K8S_POD_NAME": pod.name, "K8S_POD_UID": pod.uid}
        return Attachment(pod.uid, f"/run/netns/{netns}", IFNAME, args)

    def add(self, node: NodePlan, netns: str, pod: PodKey) -> Sandbox:
        """ADD the pod's netns to the node's network. A cached result (a sandbox left by a
        controller that crashed) is deleted first; a failed ADD is deleted before raising."""
        chain, att = self.chain(node), self.attachment(pod, netns)
        if self._cache(pod).exists():
            self.delete(node, netns, pod)
        try:
            result = chain.add(att)
            rec = store.read_record(tulle_state_dir(self.paths, node.name),
                                    record_key(NETWORK, pod.uid, IFNAME))
            if rec is None:
                raise SandboxError("tulle-cni returned without recording the pod")
            sandbox = sandbox_from(result, rec.host_ifname)
        except (ChainError, SandboxError, OSError) as err:
            try:
                chain.delete(att, None)
            except (ChainError, OSError) as undo:
                err.add_note(f"and DEL after it failed too: {undo}")
            raise SandboxError(f"CNI ADD on {node.name}: {err}") from err
        write_json_atomic(self._cache(pod), result)
        return sandbox

    def check(self, node: NodePlan, netns: str, pod: PodKey) -> None:
        result = self._cached(pod)
        if result is None:
            raise SandboxError(f"no ADD result cached for {pod.namespace}/{pod.name}")
        self.chain(node).check(self.attachment(pod, netns), result)

    def delete(self, node: NodePlan, netns: str, pod: PodKey) -> None:
        """DEL with the cached result; idempotent (every plugin's DEL is)."""
        self.chain(node).delete(self.attachment(pod, netns), self._cached(pod))
        self._cache(pod).unlink(missing_ok=True)

    def _cached(self, pod: PodKey) -> dict[str, Any] | None:
        try:
            data = json.loads(self._cache(pod).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None
