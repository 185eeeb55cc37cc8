"""The control plane's Deployments (tulle-controller, tulle-controlplane, tulle-relay) drop
every capability and add none; this shows they need none: each container's rendered command and
args, run with an empty bounding set inside a network namespace the test creates, reaches its
working state against a lab API server served in that namespace. Measured as uid 0 (the
manifests run uid 65532): what is measured is capabilities, not file ownership.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

from controlplane.controller.__main__ import client
from tests.netns.test_waypoint_capabilities import PROBE_TIMEOUT, Node, inside, namespace
from tests.unit.deploy.rendered import one, render
from tests.unit.kube.conftest import account_kubeconfig, serve_lab

pytestmark = [pytest.mark.root, pytest.mark.netns]


@pytest.fixture
def node() -> Iterator[Node]:
    with namespace() as made:
        yield made


DEPLOYMENTS = {  # each one's sign in its log that it does its work (None: its --ready-file)
    "tulle-controller": "started leading",  # it won the Lease and reconciles
    "tulle-controlplane": None,  # the CA loaded (or created), gRPC serving
    "tulle-relay": "relay serving on",
}


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_the_deployments_need_no_capability(node: Node, tmp_path: Path, name: str) -> None:
    """Each Deployment's container, with its rendered command and args (its ports as
    rendered: the namespace is the test's) and no capability at all, reaches its working
    state against a lab API server, through its own ServiceAccount (uid 0 here, not the
    manifest's 65532: this measures capabilities only)."""
    deployment = one(render("production"), "Deployment", name)
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    args = list(container.get("args", []))
    if name == "tulle-relay":  # the Secret's files, from the same generator as the lab's
        from agent.observer.certgen import generate

        pki = generate()
        files = {"tls.crt": pki.relay.cert_pem, "tls.key": pki.relay.key_pem,
                 "ca.crt": pki.ca_pem}
        for file, pem in files.items():
            (tmp_path / file).write_bytes(pem)
        args = [a.replace("/var/lib/tulle-relay/tls", str(tmp_path)) for a in args]
    if name == "tulle-controlplane":
        args.append(f"--ready-file={tmp_path / 'ready'}")
    with inside(node.netns):
        fixture = serve_lab(tmp_path, gateway_api=True)
        lab = next(fixture)
    try:
        with inside(node.netns):  # the API server is there; so is the admin's socket
            _create_namespace(lab.kubeconfig, "tulle-system")
        command = [sys.executable if a == "python3" else a for a in container["command"]]
        argv = [*command, *args, f"--kubeconfig={account_kubeconfig(lab, name)}"]
        log = tmp_path / f"{name}.log"
        with log.open("w") as out:
            proc = node.spawn([], argv, out)
        try:
            sign = DEPLOYMENTS[name]

            def working() -> bool:
                if sign is None:
                    return (tmp_path / "ready").exists()
                return sign in log.read_text(errors="replace")

            deadline = time.monotonic() + PROBE_TIMEOUT
            while proc.poll() is None and time.monotonic() < deadline and not working():
                time.sleep(0.2)
            done = working()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        assert done, log.read_text(errors="replace")[-3000:]
    finally:
        next(fixture, None)


def _create_namespace(kubeconfig: Path, name: str) -> None:
    with client(kubeconfig) as admin:
        admin.create(Namespace(metadata=ObjectMeta(name=name)))
