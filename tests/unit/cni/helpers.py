"""A fake node for the plugin's conformance tests: a prevResult as ptp gives it, the env a
Kubernetes runtime sets, and a peer finder standing in for netlink."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cni.link import HostPeer
from cni.spec import CniError

NETNS = "/var/run/netns/cni-1234"
CID = "3f1e0c9a7b2d"
HOST_VETH = HostPeer("veth5a1b2c3d", 17, 2)

PREV_RESULT: dict[str, Any] = {
    "cniVersion": "1.0.0",
    "interfaces": [
        {"name": "veth5a1b2c3d", "mac": "6e:1a:00:00:00:01"},
        {"name": "eth0", "mac": "6e:1a:00:00:00:02", "sandbox": NETNS},
    ],
    "ips": [{"address": "10.244.1.5/24", "gateway": "10.244.1.1", "interface": 1}],
    "routes": [{"dst": "0.0.0.0/0"}],
    "dns": {},
}


def env(command: str, **over: str) -> dict[str, str]:
    base = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": CID,
        "CNI_NETNS": NETNS,
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-1;"
        "K8S_POD_INFRA_CONTAINER_ID=3f1e0c9a7b2d;K8S_POD_UID=7c1d-uid",
        "CNI_PATH": "/opt/cni/bin",
    }
    base.update(over)
    return {k: v for k, v in base.items() if v != "<unset>"}


def conf(state: Path, version: str = "1.0.0", prev: bool = True, **over: Any) -> bytes:
    doc: dict[str, Any] = {
        "cniVersion": version,
        "name": "k8s-pod-network",
        "type": "tulle-cni",
        "stateDir": str(state),
        "attachTimeout": 10,
    }
    if prev:
        doc["prevResult"] = dict(PREV_RESULT, cniVersion=version)
    doc.update(over)
    return json.dumps({k: v for k, v in doc.items() if v != "<unset>"}).encode()


class Peers:
    """The netlink lookup: answers ``peer`` (or raises ``error``) and counts its calls."""

    def __init__(self, peer: HostPeer = HOST_VETH, error: CniError | None = None) -> None:
        self.peer, self.error, self.calls = peer, error, 0

    def __call__(self, netns: str, ifname: str) -> HostPeer:
        self.calls += 1
        assert (netns, ifname) == (NETNS, "eth0")
        if self.error is not None:
            raise self.error
        return self.peer


class Waiter:
    """The wait for the agent's mark: answers ``attached`` and records what it was asked."""

    def __init__(self, attached: bool = True) -> None:
        self.attached = attached
        self.asked: list[tuple[Path, int, float]] = []

    def __call__(self, state: Path, rec: Any, timeout: float) -> bool:
        self.asked.append((state, rec.host_ifindex, timeout))
        return self.attached


def error(out: str) -> dict[str, Any]:
    doc = json.loads(out)
    assert set(doc) <= {"cniVersion", "code", "msg", "details"}, doc
    assert isinstance(doc["code"], int) and isinstance(doc["msg"], str) and doc["msg"]
    return doc
