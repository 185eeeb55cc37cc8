"""The lab kubelet runs a container with the capabilities its securityContext grants, as a
node's runtime does (lab/capabilities.py), so a manifest's ``capabilities`` are what its
process holds in every lab: checked against the kernel's own view of each process
(/proc/self/status), and by what the process can then no longer do.

Pods in a namespace of their own on the session's lab (removed at the end)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.capabilities import DEFAULT
from lab.state import LabPaths

from .conftest import Lab
from .test_kubectl_lab import Kubectl, newest_in_namespace

pytestmark = [pytest.mark.netns, pytest.mark.root]

NS = "caps-lab"
# linux/capability.h bit numbers of what the pods below are granted or probe.
BIT = {"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_BPF": 39, "CAP_PERFMON": 38}
PROBE = """
import json, socket, time
status = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
try:
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
    raw = "opened"
except PermissionError:
    raw = "EPERM"
print(json.dumps({"eff": int(status["CapEff"], 16), "bnd": int(status["CapBnd"], 16),
                  "nnp": int(status["NoNewPrivs"]), "raw": raw}), flush=True)
time.sleep(3600)
"""


def pod(name: str, context: dict[str, Any] | None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "probe", "command": [sys.executable, "-c", PROBE]}
    if context is not None:
        container["securityContext"] = context
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"containers": [container], "terminationGracePeriodSeconds": 1}}


PODS = {
    "agent-like": {"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "BPF", "PERFMON"]}},
    "no-raw": {"capabilities": {"drop": ["NET_RAW"]}},
    "nothing": {"capabilities": {"drop": ["ALL"]}, "allowPrivilegeEscalation": False},
    "unset": None,
    "unknown": {"capabilities": {"add": ["NOT_A_CAP"]}},
}


@pytest.fixture(scope="module")
def k(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    yield from newest_in_namespace(lab, tmp_path_factory.mktemp("kubectl-caps"), NS)


@pytest.fixture(scope="module")
def seen(lab: Lab, k: Kubectl) -> dict[str, dict[str, Any]]:
    """What each running pod's process printed of itself (the unknown one never runs)."""
    k.out("apply", "-f", k.write("caps.yaml", [pod(n, c) for n, c in PODS.items()]))
    paths = LabPaths(lab.name, Path(lab.env["TULLE_STATE_DIR"]) / lab.name)
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(found) < len(PODS) - 1:
        for name in PODS:
            log = paths.pod_log(NS, name, "probe")
            lines = log.read_text().splitlines() if log.exists() else []
            if name != "unknown" and lines:
                found[name] = json.loads(lines[0])
        time.sleep(0.5)
    assert len(found) == len(PODS) - 1, f"pods that printed nothing in 60 s: {set(PODS) - set(found)}"
    return found


def mask(*names: str) -> int:
    return sum(1 << BIT[n] for n in names)


def test_drop_all_then_add_holds_exactly_the_added_capabilities(seen: dict[str, Any]) -> None:
    agent = seen["agent-like"]
    assert agent["eff"] == agent["bnd"] == mask("CAP_NET_ADMIN", "CAP_BPF", "CAP_PERFMON")
    assert agent["raw"] == "EPERM"  # NET_RAW was not added back


def test_a_dropped_capability_is_gone_and_the_default_set_is_the_runtimes(
    seen: dict[str, Any],
) -> None:
    no_raw = seen["no-raw"]
    assert no_raw["raw"] == "EPERM"
    assert not no_raw["eff"] & mask("CAP_NET_RAW")
    assert not no_raw["eff"] & mask("CAP_NET_ADMIN")  # not in containerd's default
    assert bin(no_raw["eff"]).count("1") == len(DEFAULT) - 1


def test_no_capability_and_no_new_privileges(seen: dict[str, Any]) -> None:
    assert seen["nothing"]["eff"] == seen["nothing"]["bnd"] == 0
    assert seen["nothing"]["nnp"] == 1
    assert seen["agent-like"]["nnp"] == 0


def test_a_container_that_asks_nothing_keeps_the_kubelets_set(seen: dict[str, Any]) -> None:
    """The lab's documented deviation (a node would give containerd's default set)."""
    assert seen["unset"]["raw"] == "opened"
    assert seen["unset"]["eff"] & mask("CAP_NET_ADMIN", "CAP_BPF")


def test_an_unknown_capability_keeps_the_container_from_starting_with_its_name(
    k: Kubectl, seen: dict[str, Any],
) -> None:
    deadline = time.monotonic() + 30
    waiting: dict[str, Any] = {}
    while time.monotonic() < deadline and not waiting.get("message"):
        status = json.loads(k.out("get", "pod", "unknown", "-n", NS, "-o", "json")).get("status") or {}
        states = status.get("containerStatuses") or [{}]
        waiting = (states[0].get("state") or {}).get("waiting") or {}
        time.sleep(0.5)
    assert waiting.get("reason") == "CreateContainerConfigError", waiting
    assert "CAP_NOT_A_CAP" in waiting.get("message", ""), waiting
