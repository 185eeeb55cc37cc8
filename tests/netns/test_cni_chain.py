"""tulle-cni chained after Debian's real ptp + host-local, as a runtime runs them.

The "node" is a network namespace the test makes (ptp adds an address, a route and enables
forwarding on the host side, which must never touch the root namespace), and so is the pod.
An agent stand-in, a thread using ``agent.cni.registry`` as the agent will, answers the
plugin's records with attach marks.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.cni import registry
from cni import store
from cni.record import record_key
from cni.runtime import Attachment, Chain, ChainError

pytestmark = [pytest.mark.root, pytest.mark.netns]

REPO = Path(__file__).resolve().parents[2]
DEBIAN_CNI = Path("/usr/lib/cni")  # containernetworking-plugins (scripts/setup.sh)
NETWORK = "tulle-test-net"
SUBNET = "10.199.7.0/24"


def ip(*args: str) -> Any:
    out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out) if out.strip() else []


@dataclass
class Node:
    host: str  # the node's netns name
    pods: list[str]
    state: Path
    chain: Chain

    def pod(self) -> str:
        name = f"{self.host}-p{len(self.pods)}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.pods.append(name)
        return name

    def attachment(self, pod: str, cid: str) -> Attachment:
        args = {
            "IgnoreUnknown": "1",
            "K8S_POD_NAMESPACE": "shop",
            "K8S_POD_NAME": pod,
            "K8S_POD_UID": f"uid-{cid}",
        }
        return Attachment(cid, f"/run/netns/{pod}", "eth0", args)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    for plugin in ("ptp", "host-local"):
        assert (DEBIAN_CNI / plugin).exists(), "run scripts/setup.sh (containernetworking-plugins)"
    host = f"tulle-test-cni{secrets.token_hex(3)}"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "tulle-cni"  # what an install puts in the node's CNI bin directory
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m cni "$@"\n')
    wrapper.chmod(0o755)
    state = tmp_path / "state"
    conflist = {
        "cniVersion": "1.0.0",
        "name": NETWORK,
        "plugins": [
            {
                "type": "ptp",
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": SUBNET}]],
                    "dataDir": str(tmp_path / "ipam"),
                },
            },
            {"type": "tulle-cni", "stateDir": str(state), "attachTimeout": 10},
        ],
    }
    subprocess.run(["ip", "netns", "add", host], check=True)
    chain = Chain(conflist, [str(DEBIAN_CNI), str(bindir)], prefix=["ip", "netns", "exec", host])
    n = Node(host, [], state, chain)
    try:
        yield n
    finally:
        for name in [*n.pods, host]:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


class Agent(threading.Thread):
    """Marks every record it finds attached, as the node agent does after attaching."""

    def __init__(self, state: Path) -> None:
        super().__init__(daemon=True)
        self.state, self.stop, self.seen = state, threading.Event(), []

    def run(self) -> None:
        while not self.stop.wait(0.02):
            snap = registry.read_records(self.state)
            for rec in registry.unattached(snap.records.values(), registry.read_marks(self.state)):
                self.seen.append(rec)
                registry.mark_attached(self.state, rec)


def test_add_check_del_del_after_ptp_and_host_local(node: Node) -> None:
    pod = node.pod()
    att = node.attachment(pod, "c0ffee01")
    key = record_key(NETWORK, att.container_id, "eth0")
    agent = Agent(node.state)
    agent.start()
    try:
        result = node.chain.add(att)
    finally:
        agent.stop.set()
        agent.join()

    # The record names the pod and the host end of ptp's veth, as the kernel has it.
    rec = store.read_record(node.state, key)
    assert rec is not None and agent.seen == [rec]
    assert (rec.pod.namespace, rec.pod.name, rec.pod.uid) == ("shop", pod, "uid-c0ffee01")
    assert rec.netns == f"/run/netns/{pod}" and rec.ifname == "eth0"
    [host_link] = [
        link
        for link in ip("-n", node.host, "-d", "link", "show")
        if link["ifindex"] == rec.host_ifindex
    ]
    assert host_link["ifname"] == rec.host_ifname
    assert host_link["linkinfo"]["info_kind"] == "veth"
    [pod_link] = ip("-n", pod, "-d", "link", "show", "eth0")
    assert host_link["link_index"] == pod_link["ifindex"]
    [pod_addr] = [
        a for a in ip("-n", pod, "addr", "show", "eth0")[0]["addr_info"] if a["family"] == "inet"
    ]
    assert rec.ips == (f"{pod_addr['local']}/{pod_addr['prefixlen']}",)
    # The chain's result is ptp's, passed on unchanged, and it agrees with the record.
    assert rec.host_ifname in [i["name"] for i in result["interfaces"] if not i.get("sandbox")]
    assert [i["address"] for i in result["ips"]] == list(rec.ips)

    node.chain.check(att, result)
    registry.clear_mark(node.state, key)  # the agent lost the pod: CHECK says so
    with pytest.raises(ChainError) as err:
        node.chain.check(att, result)
    assert (err.value.plugin, err.value.code) == ("tulle-cni", 102)

    node.chain.delete(att, result)
    assert store.keys(node.state) == []
    assert not [
        link for link in ip("-n", node.host, "link", "show") if link["ifname"] == rec.host_ifname
    ]
    node.chain.delete(att, result)  # DEL again: success
    subprocess.run(["ip", "netns", "del", pod], check=True)
    node.chain.delete(att, None)  # and with the netns gone and no prevResult


def test_a_pod_the_agent_never_attaches_gets_try_again_and_del_cleans_up(node: Node) -> None:
    chain = Chain(
        {
            **node.chain.conflist,
            "plugins": [
                node.chain.conflist["plugins"][0],
                {**node.chain.conflist["plugins"][1], "attachTimeout": 0.5},
            ],
        },
        node.chain.cni_path,
        node.chain.prefix,
    )
    pod = node.pod()
    att = node.attachment(pod, "deadbeef02")
    with pytest.raises(ChainError) as err:
        chain.add(att)
    assert (err.value.plugin, err.value.command, err.value.code) == ("tulle-cni", "ADD", 11)
    assert store.keys(node.state) == [record_key(NETWORK, att.container_id, "eth0")]
    chain.delete(att, None)  # what a kubelet does after a failed ADD
    assert store.keys(node.state) == []
    assert ip("-n", pod, "link", "show", "type", "veth") == []
