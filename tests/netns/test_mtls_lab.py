"""Issue 11 through real lab pods (mtlslab.py: a lab of its own with one-minute SVIDs):
enrolled pods reach enrolled pods on both nodes inside TLS (the fabric link is captured), and
every way in that must fail does, as an attacker would try it: a certificate from another CA,
an expired one, one for another identity, a stream for a pod on another node or for the node
itself, garbage and silence on 15008, plaintext to STRICT. Each refusal is a DROPPED flow
naming its reason in `tulle observe -o json`."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from controlplane.roots import fingerprint, secret_for
from identity.ca import CertificateAuthority
from identity.hbone import HBONE_PORT
from l7proxy.hbone.identities import sni_name
from tests.unit.hbone.harness import root

from .mtlslab import (
    MESH,
    OTHER,
    PLAIN,
    SECRET,
    Mesh,
    forge,
    hbone_connect,
    mesh_lab,
    spiffe,
)
from .test_datapath import apply, run_py, wait_for
from .test_hbone import Capture, in_netns
from .test_mtls_kernel import CONNECT

pytestmark = pytest.mark.netns
CANARY = "tulle-plaintext-canary-7d1f"
CLIENT_ID, ECHO_ID = spiffe(MESH, "client"), spiffe(MESH, "echo")

GET = r"""
import json, sys, urllib.request
req = urllib.request.Request(f"http://{sys.argv[1]}:8080/mtls", headers={"X-Canary": sys.argv[2]})
with urllib.request.urlopen(req, timeout=10) as resp:
    print(json.dumps({"status": resp.status, "body": json.loads(resp.read())}))
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    yield from mesh_lab(tmp_path_factory.mktemp("tulle-mtls"))


def get(mesh: Mesh, pod: str, target: str, canary: str = CANARY) -> dict[str, Any]:
    ns = PLAIN if pod == "plain" else MESH
    return dict(run_py(mesh.lab, ns, pod, GET, mesh.ips[target], canary, timeout=30))


def dropped(mesh: Mesh, reason: str, node: str | None, **match: Any) -> dict[str, Any]:
    """The DROPPED flow with ``reason`` (on ``node``) whose fields match (``a__b`` for
    ``a.b``)."""

    def field(flow: dict[str, Any], path: str) -> Any:
        for part in path.split("."):
            flow = flow.get(part) if isinstance(flow, dict) else None  # type: ignore[assignment]
        return flow

    def find() -> dict[str, Any] | None:
        for flow in mesh.flows("--verdict", "DROPPED", *(["--node-name", node] if node else [])):
            if flow.get("drop_reason_desc") == reason and all(
                field(flow, k.replace("__", ".")) == v for k, v in match.items()
            ):
                return flow
        return None

    return dict(wait_for(find, timeout=10, what=f"a DROPPED {reason} flow on {node} {match}"))


def test_enrolled_pods_talk_inside_tls_on_the_fabric(mesh: Mesh) -> None:
    fabric = mesh.plan.fabric_netns
    capture = Capture(fabric, mesh.plan.node("node1").fabric_peer)
    try:
        far = get(mesh, "client", "echo2")
        near = get(mesh, "client", "echo1")
    finally:
        capture.stop()
    assert (far["status"], far["body"]["pod"]) == (200, "echo2")
    assert (near["status"], near["body"]["pod"]) == (200, "echo1")
    assert far["body"]["headers"]["X-Canary"] == [CANARY]  # it was in the request, both ways

    # On node1's fabric link: the tunnel's TLS records to node2's 15008, never the pods' bytes.
    raw = b"".join(capture.frames)
    assert CANARY.encode() not in raw
    assert capture.tcp_payloads(8080) == b""  # no segment of the pods' port crossed the link
    tunnel = capture.tcp_payloads(HBONE_PORT)
    assert b"\x17\x03\x03" in tunnel and len(tunnel) > 1000  # TLS application data records

    def tunnel_flows(node: str, dest: str) -> list[dict[str, Any]]:
        return [
            f for f in mesh.flows("--verdict", "FORWARDED", "--node-name", node, "--encrypted")
            if f.get("tulle", {}).get("tunnel") and f["IP"]["destination"] == mesh.ips[dest]
            and f["IP"]["source"] == mesh.ips["client"]
        ]

    for node, dest, point in (
        ("node1", "echo2", "TO_CRYPTO"),
        ("node2", "echo2", "FROM_CRYPTO"),
        ("node1", "echo1", "TO_CRYPTO"),
        ("node1", "echo1", "FROM_CRYPTO"),  # same node: through its own 15008
    ):
        flows = wait_for(lambda n=node, d=dest: tunnel_flows(n, d), what=f"{node} {dest}")
        [flow] = [f for f in flows if f["trace_observation_point"] == point]
        assert flow["IP"]["encrypted"] is True
        assert flow["tulle"]["source_spiffe_id"] == CLIENT_ID
        assert flow["tulle"]["destination_spiffe_id"] == ECHO_ID
        assert flow["source"]["pod_name"] == "client" and flow["destination"]["pod_name"] == dest


def _attack(mesh: Mesh, svid: Any, target: str, source: str = "client") -> Any:
    return hbone_connect(
        mesh.node_netns("node1"),
        mesh.waypoint("node2"),
        svid,
        target,
        f'for="{mesh.ips[source]}:4242"',
    )


def test_a_certificate_from_another_ca_is_refused_with_a_flow(mesh: Mesh) -> None:
    got = _attack(mesh, forge(root("rogue"), MESH, "client"), f"{mesh.ips['echo2']}:8080")
    assert got.status == 0 and got.refused and not got.echo
    flow = dropped(mesh, "MTLS_UNKNOWN_CA", "node2",
                   IP__destination=mesh.waypoint("node2")[0])
    # the dialling node (node1's fabric address) to node2's 15008, inside TLS
    assert flow["IP"]["source"] == str(mesh.plan.node("node1").fabric_ip)
    assert flow["l4"]["TCP"]["destination_port"] == HBONE_PORT
    assert flow["IP"]["encrypted"] is True
    assert "unable to get local issuer" in flow["tulle"]["tunnel"]["detail"]


def test_an_expired_certificate_from_the_real_ca_is_refused_with_a_flow(mesh: Mesh) -> None:
    now = datetime.now(UTC)
    expired = forge(mesh.ca(), MESH, "client", not_before=now - timedelta(hours=2),
                    not_after=now - timedelta(minutes=5))
    got = _attack(mesh, expired, f"{mesh.ips['echo2']}:8080")
    assert got.status == 0 and got.refused and not got.echo
    flow = dropped(mesh, "MTLS_CERT_EXPIRED", "node2")
    assert flow["IP"]["source"] == str(mesh.plan.node("node1").fabric_ip)
    assert "expired" in flow["tulle"]["tunnel"]["detail"]


def test_a_certificate_for_another_identity_cannot_speak_for_a_pod(mesh: Mesh) -> None:
    # mesh-other/intruder's valid certificate, asking to deliver as the client pod of mesh
    intruder = forge(mesh.ca(), OTHER, "intruder")
    got = _attack(mesh, intruder, f"{mesh.ips['echo2']}:8080")
    assert got.status == 403 and not got.echo
    flow = dropped(mesh, "MTLS_WRONG_IDENTITY", "node2", IP__source=mesh.ips["client"],
                   l4__TCP__source_port=4242)
    assert flow["tulle"]["peer_spiffe_id"] == spiffe(OTHER, "intruder")
    assert flow["tulle"]["source_spiffe_id"] == CLIENT_ID
    assert flow["destination"]["pod_name"] == "echo2"

    # signed by the lab's own root, but for another trust domain: refused at the handshake
    foreign = forge(mesh.ca(), MESH, "client", trust_domain="evil.example")
    got = _attack(mesh, foreign, f"{mesh.ips['echo2']}:8080")
    assert got.status == 0 and got.refused and not got.echo
    flow = dropped(mesh, "MTLS_WRONG_IDENTITY", "node2",
                   IP__destination=mesh.waypoint("node2")[0])
    assert flow["IP"]["source"] == str(mesh.plan.node("node1").fabric_ip)
    assert "evil.example" in flow["tulle"]["tunnel"]["detail"]


def test_the_waypoint_presents_the_identity_asked_for_and_keeps_the_connection_to_it(
    mesh: Mesh,
) -> None:
    """From node2's netns to node1's waypoint, with a valid client certificate: the server
    presents the SVID the SNI asks for; a connection opened for one identity (intruder's)
    reaches no pod of another (echo1), so a client that checked the server got what it
    checked."""
    good = forge(mesh.ca(), MESH, "client")
    intruder_id = spiffe(OTHER, "intruder")

    def attempt(sni: str | None, port: int) -> Any:
        return hbone_connect(
            mesh.node_netns("node2"),
            mesh.waypoint("node1"),
            good,
            f"{mesh.ips['echo1']}:8080",
            f'for="{mesh.ips["client"]}:{port}"',
            sni=sni,
        )

    asked = attempt(sni_name(ECHO_ID), 4301)
    assert (asked.status, asked.server_id) == (200, ECHO_ID) and asked.echo
    # no SNI: node1's first identity in (namespace, SA) order, and (as before) any local pod
    unasked = attempt(None, 4302)
    assert (unasked.status, unasked.server_id) == (200, CLIENT_ID)
    other = attempt(sni_name(intruder_id), 4303)
    assert (other.status, other.server_id) == (403, intruder_id) and not other.echo
    flow = dropped(mesh, "MTLS_WRONG_IDENTITY", "node1", IP__destination=mesh.ips["echo1"],
                   l4__TCP__source_port=4303)
    assert f"opened for {intruder_id}" in flow["tulle"]["tunnel"]["detail"]
    assert flow["tulle"]["destination_spiffe_id"] == ECHO_ID
    assert flow["destination"]["pod_name"] == "echo1"


def test_a_valid_peer_gets_only_pods_of_the_receiving_node(mesh: Mesh) -> None:
    node2 = mesh.plan.node("node2")
    good = forge(mesh.ca(), MESH, "client")
    # the control: this certificate and source are accepted for a pod of node2
    assert _attack(mesh, good, f"{mesh.ips['echo2']}:8080").status == 200
    for target in (
        f"{mesh.ips['echo1']}:8080",  # a pod on node1: node2 must not relay it
        f"{node2.gateway_ip}:8080",  # the node itself
        f"{node2.fabric_ip}:6443",
        "127.0.0.1:9966",  # its loopback (the waypoint's metrics)
        f"{node2.waypoint_ip}:15001",  # the waypoint's own L7 listener
    ):
        got = _attack(mesh, good, target)
        assert got.status == 404 and not got.echo, (target, got)
        host, port = target.rsplit(":", 1)
        flow = dropped(mesh, "TUNNEL_DESTINATION_NOT_LOCAL", "node2", IP__destination=host,
                       l4__TCP__destination_port=int(port))
        assert f"{host} is not a pod on this node" in flow["tulle"]["tunnel"]["detail"]


def _raw(netns: str, address: tuple[str, int], data: bytes) -> tuple[int, bytes]:
    """From ``netns``: connect, send ``data`` (nothing when empty), read until the server
    ends it (at most 30 s). Returns the local port and what came back."""

    def run() -> tuple[int, bytes]:
        with socket.create_connection(address, timeout=30) as sock:
            port = sock.getsockname()[1]
            if data:
                sock.sendall(data)
            got = bytearray()
            try:
                while chunk := sock.recv(4096):
                    got += chunk
            except ConnectionResetError:
                pass
            return port, bytes(got)

    return in_netns(netns, run)


def test_garbage_and_silence_on_15008_are_refused_with_flows(mesh: Mesh) -> None:
    netns, waypoint = mesh.node_netns("node1"), mesh.waypoint("node2")
    port, answer = _raw(netns, waypoint, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 4)
    assert b"HTTP" not in answer  # no HTTP server behind it answers plaintext
    flow = dropped(mesh, "MTLS_HANDSHAKE_FAILED", "node2", l4__TCP__source_port=port)
    assert flow["IP"]["source"] == str(mesh.plan.node("node1").fabric_ip)

    # A client that connects and says nothing holds no one up, and is dropped.
    result: dict[str, Any] = {}
    silent = threading.Thread(target=lambda: result.update(got=_raw(netns, waypoint, b"")))
    silent.start()
    try:
        assert get(mesh, "client", "echo2")["status"] == 200
    finally:
        silent.join(40)
    port, answer = result["got"]
    assert answer == b""
    dropped(mesh, "MTLS_HANDSHAKE_FAILED", "node2", l4__TCP__source_port=port)


def test_a_pod_cannot_dial_a_waypoints_15008_itself(mesh: Mesh) -> None:
    # Only a waypoint speaks HBONE to a waypoint: a pod, enrolled or not, that dials one
    # (its own node's or another's) is dropped by its node's datapath, whatever it sends.
    for ns, pod_name, node in ((PLAIN, "plain", "node2"), (MESH, "client", "node1")):
        host, port = mesh.waypoint(node)
        got = run_py(mesh.lab, ns, pod_name, CONNECT, host, str(port))
        assert got["result"] != "connected", (pod_name, node, got)
        flow = dropped(mesh, "WAYPOINT_NOT_REDIRECTED", "node1",
                       IP__source=mesh.ips[pod_name], IP__destination=host)
        assert flow["l4"]["TCP"]["destination_port"] == HBONE_PORT


def _peer_authentication(mode: str) -> dict[str, Any]:
    return {"apiVersion": "security.tulle.io/v1", "kind": "PeerAuthentication",
            "metadata": {"name": "default", "namespace": MESH}, "spec": {"mtls": {"mode": mode}}}


def test_strict_resets_plaintext_and_still_takes_the_tunnel(mesh: Mesh) -> None:
    apply(mesh.lab, _peer_authentication("STRICT"))
    try:
        def refused() -> dict[str, Any] | None:
            r = dict(run_py(mesh.lab, PLAIN, "plain", CONNECT, mesh.ips["echo2"], "8080"))
            return r if r["result"] != "connected" else None

        got = wait_for(refused, what="STRICT applied")
        assert got["result"] == "ECONNREFUSED", got  # a reset, not a hang until the timeout
        flow = dropped(mesh, "AUTH_REQUIRED", None, IP__source=mesh.ips["plain"])
        assert flow["IP"]["destination"] == mesh.ips["echo2"]
        # the enrolled client still gets through, by the tunnel
        assert get(mesh, "client", "echo2")["status"] == 200
    finally:
        apply(mesh.lab, _peer_authentication("PERMISSIVE"))


# -- rotation with traffic flowing: last, as the root rotation changes what the lab trusts --

LONG = r"""
import http.client, json, os, sys, time
host, stop = sys.argv[1], sys.argv[2]
conn = http.client.HTTPConnection(host, 8080, timeout=10)
ok, errors, ports = 0, [], set()
end = time.monotonic() + 150
while time.monotonic() < end and not os.path.exists(stop):
    try:
        conn.request("GET", f"/long?n={ok}")
        resp = conn.getresponse()
        resp.read()
        ports.add(conn.sock.getsockname()[1])
        ok += resp.status == 200
        if resp.status != 200:
            errors.append(resp.status)
        with open(stop + ".ok", "w") as f:
            f.write(str(ok))
    except Exception as e:
        errors.append(repr(e))
        conn.close()
    time.sleep(0.2)
print(json.dumps({"ok": ok, "errors": errors[:5], "failed": len(errors), "ports": len(ports)}))
"""

NEW = r"""
import json, os, sys, time, urllib.request
targets, stop = sys.argv[1].split(","), sys.argv[2]
ok, errors, i = 0, [], 0
end = time.monotonic() + 150
while time.monotonic() < end and not os.path.exists(stop):
    try:
        with urllib.request.urlopen(f"http://{targets[i % len(targets)]}:8080/new", timeout=10) as r:
            ok += r.status == 200
        with open(stop + ".ok", "w") as f:
            f.write(str(ok))
    except Exception as e:
        errors.append(repr(e))
    i += 1
    time.sleep(0.1)
print(json.dumps({"ok": ok, "errors": errors[:5], "failed": len(errors)}))
"""


class InPod:
    """A pod script run in the background until ``stop()`` (a file the pod sees: pods share
    the machine's file system), which returns its JSON result."""

    def __init__(self, mesh: Mesh, script: str, arg: str, stop_file: Path) -> None:
        self.stop_file = stop_file
        self.result: dict[str, Any] = {}
        self.thread = threading.Thread(
            target=lambda: self.result.update(
                run_py(mesh.lab, MESH, "client", script, arg, str(stop_file), timeout=180)
            )
        )
        self.thread.start()

    def done(self) -> int:
        """How many requests have succeeded so far (the script writes it after each)."""
        try:
            return int(self.stop_file.with_name(self.stop_file.name + ".ok").read_text() or 0)
        except FileNotFoundError:
            return 0

    def goes_on(self, more: int = 5) -> None:
        """Wait for ``more`` successful requests beyond those done now."""
        start = self.done()
        wait_for(lambda: self.done() >= start + more, what=f"{more} more requests")

    def stop(self) -> dict[str, Any]:
        self.stop_file.touch()
        self.thread.join(60)
        assert self.result, "the pod's script reported nothing"
        return self.result


def _serial(mesh: Mesh, node: str, spiffe_id: str) -> str:
    return next(s["serial"] for s in mesh.identities()[node] if s["spiffe_id"] == spiffe_id)


def test_svid_rotation_keeps_a_long_stream_and_new_tunnels_use_the_new_certificate(
    mesh: Mesh, tmp_path: Path
) -> None:
    before = _serial(mesh, "node1", CLIENT_ID), _serial(mesh, "node2", ECHO_ID)
    stream = InPod(mesh, LONG, mesh.ips["echo2"], tmp_path / "stop")
    try:
        def renewed() -> bool:
            now = _serial(mesh, "node1", CLIENT_ID), _serial(mesh, "node2", ECHO_ID)
            return all(a != b for a, b in zip(now, before, strict=True))

        wait_for(renewed, timeout=60, what="both ends renewed their SVIDs (60 s, half-life)")
        stream.goes_on()  # the stream opened before the rotation carries requests after it
        # node1's waypoint holds the new certificate (the old one had at most 30 s left)
        wait_for(lambda: mesh.waypoint_metric("node1", "tulle_waypoint_svid_expiry_seconds",
                                              spiffe_id=CLIENT_ID) > 40,
                 what="node1's waypoint loaded the renewed SVID")
        handshakes = mesh.waypoint_metric("node1", "tulle_waypoint_hbone_handshakes_total",
                                          side="client", result="ok")
        assert get(mesh, "client", "echo2")["status"] == 200
        # the new connection's stream did not join the tunnel made with the old certificate
        assert mesh.waypoint_metric("node1", "tulle_waypoint_hbone_handshakes_total",
                                    side="client", result="ok") == handshakes + 1
    finally:
        long = stream.stop()
    assert long["failed"] == 0, long
    assert long["ports"] == 1, long  # one TCP connection the whole time: it survived


def test_root_rotation_with_traffic_flowing_fails_no_connection(
    mesh: Mesh, tmp_path: Path
) -> None:
    new = CertificateAuthority.generate_root("rotated", datetime.now(UTC))
    stream = InPod(mesh, LONG, mesh.ips["echo2"], tmp_path / "stop-long")
    fresh = InPod(mesh, NEW, f"{mesh.ips['echo2']},{mesh.ips['echo1']}", tmp_path / "stop-new")
    try:
        with mesh.api() as client:
            live = dict(client.get(SECRET, "tulle-ca", namespace="tulle-system"))
            replaced = secret_for(new)
            replaced["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
            client.replace(SECRET(replaced))
        held = [("node1", CLIENT_ID), ("node1", ECHO_ID), ("node2", ECHO_ID)]

        def under_new_root() -> bool:
            ids = mesh.identities()
            return all(
                any(s["spiffe_id"] == i and s["root"] == fingerprint(new.cert) for s in ids[n])
                for n, i in held
            )

        wait_for(under_new_root, timeout=75, what="every SVID re-issued under the new root")
        stream.goes_on()
        fresh.goes_on()
        for target in ("echo2", "echo1"):  # tunnels made with the new certificates
            assert get(mesh, "client", target)["status"] == 200
    finally:
        long, new_connections = stream.stop(), fresh.stop()
    assert new_connections["failed"] == 0, new_connections
    assert long["failed"] == 0 and long["ports"] == 1, long
