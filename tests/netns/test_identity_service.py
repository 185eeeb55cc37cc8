"""Issue 11 item 2 in a lab: `lab up` runs the identity service in the fabric netns on
10.240.0.1:15012; an agent's node-bound token (tulle-agent-<node>.kubeconfig) gets SVIDs for
its own node's pods and no other, over real TLS gRPC verified against the bundle the
ConfigMap publishes; an unbound token is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.kube.resources import generic_resource
from identity.bundle import TrustBundle, verify_svid
from identity.certs import load_pem_chain
from identity.spiffe import SpiffeId
from lab import components, labstatus, procs
from lab.controlplane import CA_ADDRESS, agent_kubeconfig, apiserver_dir
from lab.kubeapi import connect
from lab.state import LabPaths

from .conftest import Lab
from .test_datapath import apply, deployment, namespace

pytestmark = pytest.mark.netns
REPO = Path(__file__).resolve().parents[2]
CLIENT = Path(__file__).with_name("casvc_client.py")
WEB = "spiffe://cluster.local/ns/catest/sa/web"
DB = "spiffe://cluster.local/ns/catest/sa/db"


def _bundle(lab: Lab) -> dict[str, Any]:
    paths = LabPaths.for_lab(lab.name)
    configmap = generic_resource("v1", "configmaps", "ConfigMap", namespaced=True)
    with connect(apiserver_dir(paths) / "kubeconfig", "test") as client:
        return dict(client.get(configmap, "tulle-trust-bundle", namespace="tulle-system"))


def _call(lab: Lab, node: str, kubeconfig: Path, bundle: Path, spiffe_id: str) -> dict[str, Any]:
    plan = labstatus.load_plan(LabPaths.for_lab(lab.name))
    assert plan is not None
    [netns] = [n.netns for n in plan.nodes if n.name == node]
    out = subprocess.run(
        [
            "nsenter",
            f"--net=/var/run/netns/{netns}",
            "--",
            sys.executable,
            str(CLIENT),
            CA_ADDRESS,
            str(kubeconfig),
            str(bundle),
            spiffe_id,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**lab.env, "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def test_agents_get_svids_for_their_own_nodes_pods_only(lab: Lab, tmp_path: Path) -> None:
    paths = LabPaths.for_lab(lab.name)
    ca = components.component_record(paths, "ca")
    assert ca is not None and procs.is_alive(ca)
    st = labstatus.status(lab.name)
    assert st is not None and any(p.role == components.role("ca") and p.alive for p in st.processes)
    web = deployment("catest", "web", 1, node="node1")
    web["spec"]["template"]["spec"]["serviceAccountName"] = "web"
    db = deployment("catest", "db", 1, node="node2")
    db["spec"]["template"]["spec"]["serviceAccountName"] = "db"
    apply(lab, namespace("catest"), web, db)
    lab.wait_pods_ready("catest", 2, timeout=90)

    cm = _bundle(lab)
    assert cm["data"]["trust-domain"] == "cluster.local"
    bundle_file = tmp_path / "bundle.pem"
    bundle_file.write_text(cm["data"]["roots.pem"])
    bundle = TrustBundle.from_pem("cluster.local", bundle_file.read_bytes())

    n1 = agent_kubeconfig(paths, "node1")
    got = _call(lab, "node1", n1, bundle_file, WEB)
    assert got["code"] == "OK", got
    chain = [c for pem in got["chain"] for c in load_pem_chain(pem.encode())]
    assert verify_svid(chain, bundle, datetime.now(UTC)) == SpiffeId.parse(WEB)
    assert got["bundle"] == [cm["data"]["roots.pem"]]

    # db runs only on node2: node1's agent may not have its identity; node2's may.
    refused = _call(lab, "node1", n1, bundle_file, DB)
    assert refused["code"] == "PERMISSION_DENIED", refused
    assert refused["details"].startswith("node-not-authorized: no pod of catest/db on node node1")
    assert _call(lab, "node2", agent_kubeconfig(paths, "node2"), bundle_file, DB)["code"] == "OK"
    # node1's token sent from node2's netns still speaks for node1 only (the binding, not
    # the source address, names the node).
    assert _call(lab, "node2", n1, bundle_file, DB)["code"] == "PERMISSION_DENIED"

    # The account's unbound token is refused: it names no node.
    unbound = apiserver_dir(paths) / "tulle-agent.kubeconfig"
    plain = _call(lab, "node1", unbound, bundle_file, WEB)
    assert plain["code"] == "UNAUTHENTICATED" and "bound to no node" in plain["details"]

    # A client trusting another root does not even reach the service (TLS fails).
    other = tmp_path / "other.pem"
    other.write_bytes(_other_root())
    assert _call(lab, "node1", n1, other, WEB)["code"] == "UNAVAILABLE"


def _other_root() -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    from identity.ca import CertificateAuthority

    return CertificateAuthority.generate_root("stranger", datetime.now(UTC)).cert.public_bytes(
        Encoding.PEM
    )
