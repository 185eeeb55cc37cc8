"""A Service with an HTTPRoute in front of an enrolled STRICT backend on the other node, in a
live lab (issue 11 item 4): the waypoint still routes at L7, and its upstream hop rides an
HBONE tunnel presenting the client pod's SVID. The fabric link between the nodes carries
TLS only (an AF_PACKET capture of node2's port finds no byte of the request), node2's
waypoint accepted the tunnel as the client's identity, and node1's L7 flow is encrypted and
names both identities. A client outside the mesh gets 503 and a flow naming AUTH_REQUIRED."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from identity.hbone import HBONE_PORT
from lab.topology import plan_lab

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, service, wait_for
from .test_hbone import Capture

pytestmark = [pytest.mark.netns, pytest.mark.root]
NS, PLAIN = "l7mtls", "l7plain"
CLIENT_ID = f"spiffe://cluster.local/ns/{NS}/sa/default"
ECHO_ID = f"spiffe://cluster.local/ns/{NS}/sa/echo-sa"


def _with_service_account(obj: dict[str, Any], name: str) -> dict[str, Any]:
    obj["spec"]["template"]["spec"]["serviceAccountName"] = name
    return obj


def routed(name: str) -> list[dict[str, Any]]:
    """Service ``name`` with an HTTPRoute to Service ``<name>-b``: the same pods."""
    backend = service(NS, f"{name}-b")
    backend["spec"]["selector"] = {"app": name}
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": name, "namespace": NS},
             "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": name, "port": 80}],
                      "rules": [{"backendRefs": [{"name": f"{name}-b", "port": 80}]}]}}
    return [service(NS, name), backend, route]


@pytest.fixture(scope="module")
def mesh(lab: Lab) -> dict[str, str]:
    """echo (STRICT, ServiceAccount echo-sa) on node2 behind Service ``echo`` with an HTTPRoute
    to Service ``echo-b`` (the same pods), and near (the same) on node1; an enrolled client
    and one outside the mesh, both on node1."""
    strict = {"apiVersion": "security.tulle.io/v1", "kind": "PeerAuthentication",
              "metadata": {"name": "default", "namespace": NS},
              "spec": {"mtls": {"mode": "STRICT"}}}
    sa = {"apiVersion": "v1", "kind": "ServiceAccount",
          "metadata": {"name": "echo-sa", "namespace": NS}}
    apply(lab, namespace(NS, {"tulle.io/mtls": "true"}), namespace(PLAIN), sa, strict,
          _with_service_account(deployment(NS, "echo", 1, node="node2"), "echo-sa"),
          _with_service_account(deployment(NS, "near", 1, node="node1"), "echo-sa"),
          deployment(NS, "client", 1, node="node1"), deployment(PLAIN, "client", 1, node="node1"),
          *routed("echo"), *routed("near"))
    lab.wait_pods_ready(NS, 3, timeout=90)
    lab.wait_pods_ready(PLAIN, 1, timeout=90)
    found = {
        "client": pods_of(lab, NS, "client")[0]["metadata"]["name"],
        "plain": pods_of(lab, PLAIN, "client")[0]["metadata"]["name"],
        "echo_ip": pods_of(lab, NS, "echo")[0]["status"]["podIP"],
        "near_ip": pods_of(lab, NS, "near")[0]["status"]["podIP"],
    }
    # The client's SVID reaches node1's waypoint within the agent's first rounds.
    wait_for(lambda: curl(lab, NS, found["client"], "/ready")[0] == "200", timeout=60,
             what="the route is served through the tunnel")
    return found


def curl(lab: Lab, ns: str, pod: str, path: str, to: str = "echo") -> tuple[str, str]:
    """(status code, body) of GET http://<to>.<NS><path> from ``pod``."""
    out = lab.exec(ns, pod, "curl", "-s", "--max-time", "5", "-w", "\n%{http_code}",
                   f"http://{to}.{NS}{path}", check=False).stdout
    body, _, code = out.rpartition("\n")
    return code, body


def flows(lab: Lab, *args: str) -> list[dict[str, Any]]:
    out = lab.tulle("observe", "-o", "json", "--last", "2000", *args).stdout
    return [json.loads(line)["flow"] for line in out.splitlines() if '"flow"' in line]


def test_httproute_to_a_strict_backend_on_the_other_node_rides_the_tunnel(
    lab: Lab, mesh: dict[str, str]
) -> None:
    canary = f"/tulle-l7-canary-{uuid.uuid4().hex}"
    node2_port = plan_lab(lab.name, 2).node("node2").fabric_peer
    capture = Capture(f"tulle-{lab.name}-fabric", node2_port)
    try:
        code, body = curl(lab, NS, mesh["client"], canary)
    finally:
        time.sleep(0.2)  # the last frames
        capture.stop()
    assert code == "200", body
    answer = json.loads(body)
    assert answer["path"] == canary and answer["pod"].startswith("echo-")  # routed at L7
    # The fabric carried the hop inside TLS to node2's waypoint, and no byte of it in clear.
    assert len(capture.tcp_payloads(HBONE_PORT)) > 200, "no HBONE bytes on the fabric link"
    assert not any(canary.encode() in frame for frame in capture.frames), "plaintext on the fabric"
    assert capture.tcp_payloads(8080) == b"", "a plaintext hop to the backend port"

    def seen() -> tuple[dict[str, Any], dict[str, Any]] | None:
        l7 = [f for f in flows(lab, "--type", "l7")
              if canary in ((f.get("l7") or {}).get("http") or {}).get("url", "")]
        accepted = [f for f in flows(lab, "--node-name", "node2", "--verdict", "FORWARDED")
                    if ((f.get("tulle") or {}).get("tunnel") or {}).get("side") == "server"
                    and f["IP"]["destination"] == mesh["echo_ip"]]
        return (l7[0], accepted[-1]) if l7 and accepted else None

    l7_flow, accepted = wait_for(seen, timeout=10, what="the L7 flow and node2's tunnel flow")
    # node2's waypoint accepted the tunnel as the client's identity: its check that the
    # certificate names the pod it speaks for passed (else: DROPPED, MTLS_WRONG_IDENTITY).
    assert accepted["tulle"]["source_spiffe_id"] == CLIENT_ID
    assert accepted["tulle"]["destination_spiffe_id"] == ECHO_ID
    assert not accepted["tulle"].get("peer_spiffe_id")
    # node1's L7 flow: encrypted, both identities.
    assert l7_flow["verdict"] == "FORWARDED" and l7_flow["l7"]["http"]["code"] == 200
    assert l7_flow["IP"].get("encrypted") is True
    assert l7_flow["tulle"]["source_spiffe_id"] == CLIENT_ID
    assert l7_flow["tulle"]["destination_spiffe_id"] == ECHO_ID


def test_a_client_outside_the_mesh_gets_503_auth_required(
    lab: Lab, mesh: dict[str, str]
) -> None:
    canary = f"/tulle-l7-plain-{uuid.uuid4().hex}"
    code, body = curl(lab, PLAIN, mesh["plain"], canary)
    assert code == "503", body
    assert "accepts only mutual TLS" in body

    def dropped() -> list[dict[str, Any]]:
        return [f for f in flows(lab, "--type", "l7", "--verdict", "DROPPED")
                if canary in ((f.get("l7") or {}).get("http") or {}).get("url", "")]

    [flow] = wait_for(dropped, timeout=10, what="the DROPPED L7 flow")
    assert flow["drop_reason_desc"] == "AUTH_REQUIRED"
    assert flow["l7"]["http"]["code"] == 503
    assert not flow["IP"].get("encrypted")


def test_a_strict_backend_on_the_same_node_is_reached_through_the_nodes_own_tunnel_end(
    lab: Lab, mesh: dict[str, str]
) -> None:
    """Same node: the hop still rides HBONE (node1's own 15008), so node1's receiving end
    asserted the client's identity as for any enrolled connection."""
    canary = f"/tulle-l7-near-{uuid.uuid4().hex}"
    code, body = curl(lab, NS, mesh["client"], canary, to="near")
    assert code == "200", body
    assert json.loads(body)["pod"].startswith("near-")

    def seen() -> tuple[dict[str, Any], dict[str, Any]] | None:
        l7 = [f for f in flows(lab, "--type", "l7")
              if canary in ((f.get("l7") or {}).get("http") or {}).get("url", "")]
        accepted = [f for f in flows(lab, "--node-name", "node1", "--verdict", "FORWARDED")
                    if ((f.get("tulle") or {}).get("tunnel") or {}).get("side") == "server"
                    and f["IP"]["destination"] == mesh["near_ip"]]
        return (l7[0], accepted[-1]) if l7 and accepted else None

    l7_flow, accepted = wait_for(seen, timeout=10, what="the L7 flow and node1's tunnel flow")
    assert accepted["tulle"]["source_spiffe_id"] == CLIENT_ID
    assert l7_flow["IP"].get("encrypted") is True
    assert l7_flow["tulle"]["destination_spiffe_id"] == ECHO_ID
