"""STRICT in a live lab (issue 11 item 5): a client outside the mesh calling a STRICT pod is
refused at once by its own node's datapath (a reset, ECONNREFUSED), not left to time out, and
the flow names AUTH_REQUIRED. The tunnel itself needs the waypoint's listener: not tested here."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, run_py, wait_for

pytestmark = pytest.mark.netns
NS, PLAIN = "mtls-strict", "mtls-plain"

CONNECT = r"""
import errno, json, socket, sys, time
s = socket.socket()
s.settimeout(5)
started = time.monotonic()
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    result = "connected"
except socket.timeout:
    result = "timeout"
except OSError as e:
    result = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps({"result": result, "seconds": round(time.monotonic() - started, 4)}))
"""


def peer_authentication(mode: str) -> dict[str, Any]:
    return {"apiVersion": "security.tulle.io/v1", "kind": "PeerAuthentication",
            "metadata": {"name": "default", "namespace": NS}, "spec": {"mtls": {"mode": mode}}}


@pytest.fixture(scope="module")
def pods(lab: Lab) -> dict[str, str]:
    """An enrolled echo pod on node2; a client outside the mesh on node1."""
    apply(lab, namespace(NS, {"tulle.io/mtls": "true"}), namespace(PLAIN),
          deployment(NS, "echo", 1, node="node2"), deployment(PLAIN, "client", 1, node="node1"))
    echo = lab.wait_pods_ready(NS, 1, timeout=90)[0]
    client = lab.wait_pods_ready(PLAIN, 1, timeout=90)[0]
    return {"echo_ip": echo["status"]["podIP"], "client": client["metadata"]["name"]}


def connect(lab: Lab, pods: dict[str, str]) -> dict[str, Any]:
    return dict(run_py(lab, PLAIN, pods["client"], CONNECT, pods["echo_ip"], 8080))


def test_a_plaintext_client_is_reset_by_a_strict_pod_and_let_in_by_permissive(
    lab: Lab, pods: dict[str, str]
) -> None:
    # Enrolled, PERMISSIVE by default: plaintext is accepted.
    assert wait_for(lambda: connect(lab, pods)["result"] == "connected", what="plaintext accepted")
    apply(lab, peer_authentication("STRICT"))
    refused = wait_for(lambda: (r := connect(lab, pods))["result"] != "connected" and r,
                       what="STRICT applied")
    # A reset from the client's own node: refused, not a hang until the 5 s timeout.
    assert refused["result"] == "ECONNREFUSED", refused
    print(f"plaintext connect() to a STRICT pod refused after {refused['seconds']} s")
    time.sleep(0.5)
    out = lab.tulle("observe", "-o", "json", "--last", "500", "--verdict", "DROPPED",
                    "--to-namespace", NS).stdout
    drops = [json.loads(line)["flow"] for line in out.splitlines() if '"flow"' in line]
    assert any(f.get("drop_reason_desc") == "AUTH_REQUIRED" for f in drops), drops
    apply(lab, peer_authentication("PERMISSIVE"))
    assert wait_for(lambda: connect(lab, pods)["result"] == "connected", what="PERMISSIVE again")
