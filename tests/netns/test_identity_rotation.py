"""Root rotation through a real lab's identity service: the user replaces Secret
tulle-system/tulle-ca; the running service (no restart) signs under the new root, the bundle
ConfigMap holds new + old for the overlap, and a restart of the service (SIGTERM, the
supervisor starts it again) keeps that schedule. Its own one-node lab: rotating the shared
lab's root would change what other tests trust."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.kube.resources import generic_resource
from controlplane.roots import RETIRING, fingerprint, secret_for
from identity.bundle import TrustBundle, verify_svid
from identity.ca import CertificateAuthority
from identity.certs import load_pem_chain
from lab import components, lifecycle, procs
from lab.controlplane import agent_kubeconfig, apiserver_dir
from lab.kubeapi import connect
from lab.state import LabPaths

from .conftest import Lab, new_lab_env
from .test_datapath import apply, deployment, namespace
from .test_identity_service import WEB, _call

pytestmark = pytest.mark.netns
CONFIGMAP = generic_resource("v1", "configmaps", "ConfigMap", namespaced=True)
SECRET = generic_resource("v1", "secrets", "Secret", namespaced=True)


def _wait(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout:.0f}s: {what}")


def test_a_replaced_root_takes_over_with_an_overlap_that_survives_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "test" + secrets.token_hex(3)
    monkeypatch.setenv("TULLE_STATE_DIR", str(tmp_path))
    try:
        lifecycle.up(name, 1, lambda _m: None)
        lab = Lab(name, new_lab_env(tmp_path, name))
        paths = LabPaths.for_lab(name)
        web = deployment("catest", "web", 1, node="node1")
        web["spec"]["template"]["spec"]["serviceAccountName"] = "web"
        apply(lab, namespace("catest"), web)
        lab.wait_pods_ready("catest", 1, timeout=90)
        with connect(apiserver_dir(paths) / "kubeconfig", "test") as client:

            def configmap() -> dict[str, Any]:
                return dict(client.get(CONFIGMAP, "tulle-trust-bundle", namespace="tulle-system"))

            [old] = load_pem_chain(configmap()["data"]["roots.pem"].encode())
            new = CertificateAuthority.generate_root("rotated", datetime.now(UTC))
            live = dict(client.get(SECRET, "tulle-ca", namespace="tulle-system"))
            replaced = secret_for(new)
            replaced["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
            client.replace(SECRET(replaced))

            def both() -> dict[str, Any] | None:
                cm = configmap()
                roots = load_pem_chain(cm["data"]["roots.pem"].encode())
                return cm if roots == [new.cert, old] else None

            cm = _wait("the bundle holds the new root, then the old one", both)
            schedule = cm["metadata"]["annotations"][RETIRING]
            assert fingerprint(old) in schedule
            bundle_file = tmp_path / "bundle.pem"
            bundle_file.write_text(cm["data"]["roots.pem"])
            kubeconfig = agent_kubeconfig(paths, "node1")
            got = _wait(
                "an SVID under the new root",
                lambda: (
                    (r := _call(lab, "node1", kubeconfig, bundle_file, WEB))["code"] == "OK"
                    and load_pem_chain(r["chain"][-1].encode())[0].issuer == new.cert.subject
                    and r
                ),
            )
            chain = [c for pem in got["chain"] for c in load_pem_chain(pem.encode())]
            verify_svid(chain, TrustBundle("cluster.local", (new.cert,)), datetime.now(UTC))

            # A restart (SIGTERM; the controller's supervisor starts it again) keeps the
            # schedule: the old root's retire-after time is not pushed back.
            rec = components.component_record(paths, "ca")
            assert rec is not None and procs.terminate(rec)
            _wait(
                "the identity service restarted",
                lambda: (r := components.component_record(paths, "ca")) is not None
                and r.pid != rec.pid and procs.is_alive(r),
            )
            assert _wait(
                "it serves again",
                lambda: _call(lab, "node1", kubeconfig, bundle_file, WEB)["code"] == "OK",
            )
            after = configmap()
            assert after["metadata"]["annotations"][RETIRING] == schedule
            assert load_pem_chain(after["data"]["roots.pem"].encode()) == [new.cert, old]
    finally:
        lifecycle.down(name, lambda _m: None)
