"""tulle-controller beside a live lab: the lab's controller holds Lease
tulle-system/tulle-controller (it runs the Gateway, Ingress and LoadBalancer status work only
while it does); a tulle-controller started from the fabric with its own ServiceAccount's
kubeconfig (deploy/controller/rbac.yaml, seeded by the lab) reads the Lease, stays a follower
while the lab renews, writes nothing, and on SIGTERM leaves the lab's Lease alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controlplane.controller import LEASE_NAME
from controlplane.controller.__main__ import client
from controlplane.leader import KubeLeases
from identity.system import SYSTEM_NAMESPACE
from lab import lifecycle
from lab.state import LabPaths
from lab.topology import plan_lab
from tests.netns.conftest import Lab

pytestmark = [pytest.mark.root, pytest.mark.netns]
REPO = Path(__file__).resolve().parents[2]


def _wait(what: str, until: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = until()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not seen within {timeout}s: {what}")


def test_tulle_controller_follows_while_the_lab_leads(lab: Lab, tmp_path: Path) -> None:
    with client(lifecycle.kubeconfig_path(lab.name)) as admin:
        leases = KubeLeases(admin)

        def spec() -> dict[str, Any]:
            got = leases.get(SYSTEM_NAMESPACE, LEASE_NAME)
            return dict((got or {}).get("spec") or {})

        _wait("the lab controller leads",
              lambda: spec().get("holderIdentity", "").startswith("tulle-lab-controller_"))
        holder = spec()["holderIdentity"]
        paths = LabPaths.for_lab(lab.name)
        kubeconfig = lifecycle.component_kubeconfig(paths, "tulle-controller")
        log = tmp_path / "tulle-controller.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{plan_lab(lab.name, 2).fabric_netns}",
                 sys.executable, "-m", "controlplane.controller", f"--kubeconfig={kubeconfig}",
                 "--leader-elect-identity=netns-test", "--metrics=127.0.0.1:0"],
                env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=out, stderr=subprocess.STDOUT,
            )
        try:
            seen = [spec()["renewTime"]]

            def renewed_twice() -> bool:
                now = spec()["renewTime"]
                if now != seen[-1]:
                    seen.append(now)
                return len(seen) >= 3

            _wait("two renewals by the lab while tulle-controller runs", renewed_twice)
            assert proc.poll() is None, log.read_text()
            assert spec()["holderIdentity"] == holder
            text = log.read_text()
            assert "candidate netns-test" in text
            assert "started leading" not in text
            assert f"lease {SYSTEM_NAMESPACE}/{LEASE_NAME}:" not in text  # no API error, no 403
        finally:
            proc.send_signal(signal.SIGTERM)  # the process this test started, by its PID
            code = proc.wait(timeout=30)
        assert code == 0, log.read_text()
        assert spec()["holderIdentity"] == holder  # release touches only its own Lease
