"""Two `python -m controlplane.controller` processes against the lab API server (loopback,
as the tulle-controller ServiceAccount, short election durations): one leads and writes
status; SIGKILL it and the other takes over the Lease and the work; SIGTERM releases it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.controller import ACCOUNT, LEASE_NAME
from identity.system import SYSTEM_NAMESPACE
from lab.apiserver.certs import write_kubeconfig
from lab.seed import DEFAULT_POOL, GATEWAY_CLASS
from tests.unit.kube.conftest import free_port
from tests.unit.lab.apilab import ApiLab
from tests.unit.lab.test_controller_rbac import GATEWAY

REPO = Path(__file__).resolve().parents[3]
QUICK = ["--leader-elect-lease-duration=3s", "--leader-elect-renew-deadline=2s",
         "--leader-elect-retry-period=0.5s"]


def wait_for(what: str, until: Callable[[], bool], rounds: int = 600) -> None:
    for _ in range(rounds):
        if until():
            return
        time.sleep(0.05)
    raise AssertionError(f"never: {what}")


@pytest.fixture
def kubeconfig(apilab: ApiLab, tmp_path: Path) -> Path:
    apilab.store.create({"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": SYSTEM_NAMESPACE}})
    return write_kubeconfig(tmp_path / "ctl.kubeconfig", "t", f"https://127.0.0.1:{apilab.port}",
                            apilab.creds, token=apilab.tokens[ACCOUNT], user=ACCOUNT)


@pytest.fixture
def start(kubeconfig: Path, tmp_path: Path) -> Iterator[Callable[[str, int], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def run(identity: str, metrics: int) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"{identity}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "controlplane.controller", f"--kubeconfig={kubeconfig}",
             f"--leader-elect-identity={identity}", f"--metrics=127.0.0.1:{metrics}", *QUICK],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        started.append(proc)
        return proc

    try:
        yield run
    finally:
        for proc in started:  # only the processes this test started, by their PID
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def _lease(apilab: ApiLab) -> dict[str, Any]:
    lease = apilab.store.get("Lease", SYSTEM_NAMESPACE, LEASE_NAME)
    return dict((lease or {}).get("spec") or {})


def _gateway_status(apilab: ApiLab, name: str) -> dict[str, Any]:
    gw = apilab.store.get("Gateway", "default", name)
    return dict((gw or {}).get("status") or {})


def _leader_gauge(port: int) -> float | None:
    """tulle_controller_leader from the process's metrics endpoint (None: not serving yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as got:
            text = got.read().decode()
    except OSError:
        return None
    found = re.search(r"^tulle_controller_leader (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_the_leader_is_killed_and_the_other_takes_over(
    apilab: ApiLab, start: Callable[[str, int], subprocess.Popen[bytes]]
) -> None:
    for obj in (GATEWAY_CLASS, DEFAULT_POOL, GATEWAY):
        apilab.store.create(obj)
    ports = {"a": free_port(), "b": free_port()}
    procs = {name: start(name, port) for name, port in ports.items()}
    wait_for("a leader", lambda: _lease(apilab).get("holderIdentity") in procs)
    leader = _lease(apilab)["holderIdentity"]
    follower = "b" if leader == "a" else "a"
    wait_for("the leader says so", lambda: _leader_gauge(ports[leader]) == 1.0)
    wait_for("the follower says so", lambda: _leader_gauge(ports[follower]) == 0.0)
    wait_for("the leader's Gateway status", lambda: bool(_gateway_status(apilab, "gw")
                                                         .get("addresses")))
    assert _lease(apilab)["leaseTransitions"] == 0

    procs[leader].send_signal(signal.SIGKILL)  # no release: the Lease must expire
    procs[leader].wait(timeout=10)
    wait_for("the follower takes over", lambda: _lease(apilab).get("holderIdentity") == follower)
    assert _lease(apilab)["leaseTransitions"] == 1
    second = {**GATEWAY, "metadata": {"name": "gw2", "namespace": "default"}}
    apilab.store.create(second)
    wait_for("the new leader's Gateway status",
             lambda: bool(_gateway_status(apilab, "gw2").get("addresses")))
    assert _leader_gauge(ports[follower]) == 1.0

    procs[follower].send_signal(signal.SIGTERM)  # a graceful stop releases the Lease
    assert procs[follower].wait(timeout=20) == 0
    released = _lease(apilab)
    assert (released["holderIdentity"], released["leaseTransitions"]) == ("", 1)
