"""A pod's process starts only once the datapath polices its veth (the lab's CNI ADD).

Each probe pod's command connects to a server the moment it starts, once. Before the fix the
kubelet started it while the agent was still attaching, so that first packet escaped egress
policy and was never recorded by the client's node.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from lab.state import LabPaths

from .conftest import Lab
from .test_datapath import PY, apply, deployment, namespace, pods_of, wait_for

pytestmark = pytest.mark.netns
NS = "podstart"
FIRST_CONNECT = """
import os, socket, sys
s = socket.socket()
s.settimeout(2.0)
try:
    s.connect((os.environ["TARGET"], 8080))
    print("FIRST ok", flush=True)
except OSError as err:
    print("FIRST blocked", type(err).__name__, flush=True)
s.close()
import time
time.sleep(3600)
"""


def probe_pod(name: str, target: str, node: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": node},
                     "containers": [{"name": "probe", "image": "tulle/python",
                                     "command": [PY, "-c", FIRST_CONNECT],
                                     "env": [{"name": "TARGET", "value": target}]}]}}


def first_result(lab: Lab, pod: str) -> str:
    log = LabPaths.for_lab(lab.name).pod_log(NS, pod, "probe")
    lines = Path(log).read_text().splitlines() if Path(log).exists() else []
    return next((line for line in lines if line.startswith("FIRST")), "")


def test_first_packets_are_policed_and_recorded(lab: Lab) -> None:
    apply(lab, namespace(NS), deployment(NS, "target", 1, node="node1"),
          {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "fence", "namespace": NS},
           "spec": {"podSelector": {"matchLabels": {"app": "fenced"}}, "policyTypes": ["Egress"]}})
    lab.wait_pods_ready(NS, 1, timeout=90)
    target = pods_of(lab, NS, "target")[0]["status"]["podIP"]
    try:
        apply(lab, probe_pod("fenced", target, "node2"), probe_pod("open", target, "node2"))
        def both() -> dict[str, str] | None:
            found = {p: first_result(lab, p) for p in ("fenced", "open")}
            return found if all(found.values()) else None

        results = wait_for(both, timeout=60, what="both probes' first connection")
        assert results["fenced"].startswith("FIRST blocked"), results
        assert results["open"] == "FIRST ok", results
        time.sleep(0.5)
        out = lab.tulle("observe", "--last", "2000", "-n", NS, "-o", "json").stdout
        records = [json.loads(line) for line in out.splitlines() if line.strip()]
        at_client = [r["flow"] for r in records if r["node_name"] == "node2"
                     and r["flow"].get("l4", {}).get("TCP", {}).get("destination_port") == 8080]
        opened = [f for f in at_client if f["source"].get("pod_name") == "open"
                  and f.get("verdict") != "DROPPED"]
        assert opened, at_client[-5:]
        denied = [f for f in at_client if f["source"].get("pod_name") == "fenced"
                  and f.get("verdict") == "DROPPED"]
        assert denied and denied[0]["drop_reason_desc"] == "POLICY_DENIED", at_client[-5:]
    finally:
        for kind, name in (("pod", "fenced"), ("pod", "open"), ("deployment", "target"),
                           ("networkpolicy", "fence")):
            lab.tulle("delete", kind, name, "-n", NS, check=False)


def echo_pod(ns: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": "node1"},
                     "containers": [{"name": "echo", "image": "tulle/echo",
                                     "ports": [{"containerPort": 8080}]}]}}


def test_pods_whose_names_read_alike_across_namespaces_get_their_own_netns(lab: Lab) -> None:
    """`kq-a-b/c` and `kq-a/b-c` both read `kq-a-b-c`: once they shared a netns name, so the
    second pod's sandbox replaced the first's."""
    pods = (("kq-a-b", "c"), ("kq-a", "b-c"))
    apply(lab, *(namespace(ns) for ns, _ in pods), *(echo_pod(ns, name) for ns, name in pods))
    try:
        ips = {}
        for ns, name in pods:
            ready = lab.wait_pods_ready(ns, 1, timeout=60)
            ips[(ns, name)] = ready[0]["status"]["podIP"]
        for (ns, name), (peer_ns, peer) in ((pods[0], pods[1]), (pods[1], pods[0])):
            out = lab.exec(ns, name, "curl", "-s", "--max-time", "3",
                           f"http://{ips[(peer_ns, peer)]}:8080/", check=False).stdout
            answer = json.loads(out) if out.startswith("{") else {}
            assert (answer.get("namespace"), answer.get("pod")) == (peer_ns, peer), out
    finally:
        for ns, name in pods:
            lab.tulle("delete", "pod", name, "-n", ns, check=False)
