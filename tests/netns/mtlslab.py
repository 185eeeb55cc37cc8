"""What the mTLS lab tests share (issue 11): their own two-node lab with one-minute SVIDs
(`tulle lab up --svid-lifetime 60`, so a rotation happens within a test), an enrolled
namespace's pods, the lab's CA (read from its Secret, as an attacker holding the root key
could), certificates forged with it or with another CA, and an HBONE client of the test's own
(``ssl`` + ``h2``) that dials a node's waypoint on 15008 from inside a node's network
namespace, as a privileged process on another node would."""

from __future__ import annotations

import json
import os
import socket
import ssl
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client.parser import text_string_to_metric_families

from agent.kube.resources import generic_resource
from agent.svid.store import SvidFile
from controlplane.roots import ca_from_secret
from identity.ca import CertificateAuthority
from identity.certs import to_pem
from identity.hbone import HBONE_PORT
from identity.spiffe import workload_id
from lab import lifecycle
from lab.controlplane import apiserver_dir
from lab.kubeapi import connect
from lab.state import LabPaths
from lab.topology import LabPlan

from .conftest import Lab, new_lab_env
from .test_datapath import apply, namespace
from .test_hbone import in_netns

SVID_LIFETIME = 60  # seconds: the agents renew at half of it
MESH, OTHER, PLAIN = "mesh", "mesh-other", "plain"
SECRET = generic_resource("v1", "secrets", "Secret", namespaced=True)
CONFIGMAP = generic_resource("v1", "configmaps", "ConfigMap", namespaced=True)
PY = "/usr/bin/python3"


def pod(ns: str, name: str, node: str, sa: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "serviceAccountName": sa,
            "nodeSelector": {"kubernetes.io/hostname": node},
            "containers": [{"name": "c", "image": "tulle/echo",
                            "ports": [{"name": "http", "containerPort": 8080}]}],
        },
    }


@dataclass
class Mesh:
    """The lab and its pods: ``ips[name]``; ``client`` (mesh/sa client) on node1, echo
    servers ``echo1`` (node1) and ``echo2`` (node2) as mesh/sa echo, and ``plain`` (not
    enrolled) on node1."""

    lab: Lab
    plan: LabPlan
    ips: dict[str, str]

    @property
    def paths(self) -> LabPaths:
        return LabPaths.for_lab(self.lab.name)

    def node_netns(self, node: str) -> str:
        return self.plan.node(node).netns

    def waypoint(self, node: str) -> tuple[str, int]:
        return str(self.plan.node(node).waypoint_ip), HBONE_PORT

    def api(self) -> Any:
        return connect(apiserver_dir(self.paths) / "kubeconfig", "test")

    def ca(self) -> CertificateAuthority:
        """The lab's signing CA, from Secret tulle-system/tulle-ca."""
        with self.api() as client:
            return ca_from_secret(dict(client.get(SECRET, "tulle-ca", namespace="tulle-system")))

    def flows(self, *args: str) -> list[dict[str, Any]]:
        out = self.lab.tulle("observe", "-o", "json", "--last", "2000", *args).stdout
        return [json.loads(line)["flow"] for line in out.splitlines() if '"flow"' in line]

    def identities(self) -> dict[str, list[dict[str, Any]]]:
        """``tulle identity -o json``: each node's held SVIDs."""
        out = json.loads(self.lab.tulle("identity", "-o", "json").stdout)
        return {n["node"]: list(n["svids"]) for n in out["nodes"]}

    def waypoint_metric(self, node: str, name: str, **labels: str) -> float:
        """The sum of the samples of a waypoint metric ``name`` whose labels include
        ``labels`` (its Prometheus endpoint listens on the node's loopback)."""

        def scrape() -> str:
            with urllib.request.urlopen("http://127.0.0.1:9966/metrics", timeout=5) as resp:
                return str(resp.read().decode())

        total = 0.0
        for family in text_string_to_metric_families(in_netns(self.node_netns(node), scrape)):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    total += sample.value
        return total


def mesh_lab(tmp: Path) -> Iterator[Mesh]:
    """A two-node lab of its own (root rotation must not touch the shared one's trust) with
    one-minute SVIDs and the pods of `Mesh`; removed afterwards."""
    name = "test" + os.urandom(3).hex()
    previous = os.environ.get("TULLE_STATE_DIR")
    os.environ["TULLE_STATE_DIR"] = str(tmp)
    try:
        plan = lifecycle.up(name, 2, lambda _m: None, svid_lifetime=SVID_LIFETIME)
        lab = Lab(name, new_lab_env(tmp, name))
        apply(
            lab,
            namespace(MESH, {"tulle.io/mtls": "true"}),
            namespace(OTHER, {"tulle.io/mtls": "true"}),
            namespace(PLAIN),
            pod(MESH, "client", "node1", "client"),
            pod(MESH, "echo1", "node1", "echo"),
            pod(MESH, "echo2", "node2", "echo"),
            pod(OTHER, "intruder", "node1", "intruder"),
            pod(PLAIN, "plain", "node1", "default"),
        )
        ips = {}
        for ns, count in ((MESH, 3), (OTHER, 1), (PLAIN, 1)):
            for item in lab.wait_pods_ready(ns, count, timeout=90):
                ips[item["metadata"]["name"]] = item["status"]["podIP"]
        mesh = Mesh(lab, plan, ips)
        _wait_svids(mesh)
        yield mesh
    finally:
        lifecycle.down(name, lambda _m: None)
        if previous is None:
            os.environ.pop("TULLE_STATE_DIR", None)
        else:
            os.environ["TULLE_STATE_DIR"] = previous


def _wait_svids(mesh: Mesh, timeout: float = 60) -> None:
    """Each node holds the SVIDs of its enrolled pods (node1: client, echo, intruder;
    node2: echo), else the test fails here rather than later."""
    want = {
        "node1": {spiffe(MESH, "client"), spiffe(MESH, "echo"), spiffe(OTHER, "intruder")},
        "node2": {spiffe(MESH, "echo")},
    }
    deadline = time.monotonic() + timeout
    held: dict[str, set[str]] = {}
    while time.monotonic() < deadline:
        held = {n: {s["spiffe_id"] for s in v} for n, v in mesh.identities().items()}
        if all(want[n] <= held.get(n, set()) for n in want):
            return
        time.sleep(0.5)
    raise AssertionError(f"the agents hold {held}, not {want}, after {timeout}s")


def spiffe(ns: str, sa: str, trust_domain: str = "cluster.local") -> str:
    return str(workload_id(trust_domain, ns, sa))


def forge(
    ca: CertificateAuthority,
    ns: str,
    sa: str,
    *,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    trust_domain: str = "cluster.local",
) -> SvidFile:
    """An X.509-SVID for ns/sa signed with ``ca``'s key directly (so any validity window
    can be had, an expired one included), shaped as the CA's own (identity/ca.py)."""
    now = datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(minutes=1))
        .not_valid_after(not_after or now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe(ns, sa, trust_domain))]),
            critical=True,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .sign(ca.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return SvidFile(ns, sa, to_pem([leaf, *([ca.cert] if ca.chain else [])]), key_pem)


@dataclass(frozen=True)
class Attempt:
    """What a CONNECT over HBONE got: the response ``status``, or ``refused`` (the TLS
    error that ended the connection before any response), and ``echo`` (the bytes a 200's
    stream carried back)."""

    status: int = 0
    refused: str = ""
    echo: bytes = b""
    server_id: str = ""  # the URI SAN of the certificate the waypoint presented


def hbone_connect(
    netns: str,
    waypoint: tuple[str, int],
    svid: SvidFile,
    authority: str,
    forwarded: str,
    payload: bytes = b"GET / HTTP/1.0\r\n\r\n",
    sni: str | None = None,
) -> Attempt:
    """One CONNECT stream to ``waypoint`` from ``netns``, presenting ``svid``, as a peer
    waypoint would send it (the test's own client: ssl + h2, no Tulle code); ``sni``: the
    server name to send (none by default)."""
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert.write_bytes(svid.chain_pem)
        key.write_bytes(svid.key_pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # an attacker does not care who answers
        ctx.load_cert_chain(cert, key)
        ctx.set_alpn_protocols(["h2"])
    return in_netns(netns, lambda: _connect(ctx, waypoint, authority, forwarded, payload, sni))


def _san(der: bytes | None) -> str:
    if not der:
        return ""
    cert = x509.load_der_x509_certificate(der)
    uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ",".join(uris.get_values_for_type(x509.UniformResourceIdentifier))


def _connect(
    ctx: ssl.SSLContext,
    waypoint: tuple[str, int],
    authority: str,
    forwarded: str,
    payload: bytes,
    sni: str | None,
) -> Attempt:
    raw = socket.create_connection(waypoint, timeout=10)
    try:
        tls = ctx.wrap_socket(raw, server_hostname=sni)
    except (ssl.SSLError, OSError) as exc:
        raw.close()
        return Attempt(refused=str(exc))
    server_id = _san(tls.getpeercert(binary_form=True))
    with tls:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        stream = conn.get_next_available_stream_id()
        conn.send_headers(
            stream,
            [(":method", "CONNECT"), (":authority", authority), ("forwarded", forwarded)],
        )
        status, echo = 0, bytearray()
        try:
            tls.sendall(conn.data_to_send())
            while True:
                data = tls.recv(65536)
                if not data:
                    closed = "connection closed" if not status else ""
                    return Attempt(status, closed, bytes(echo), server_id)
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.ResponseReceived):
                        status = int(dict(ev.headers)[b":status"])
                        if status != 200:
                            return Attempt(status, server_id=server_id)
                        conn.send_data(stream, payload)
                    elif isinstance(ev, h2.events.DataReceived):
                        echo += ev.data
                        conn.acknowledge_received_data(len(ev.data), stream)
                    elif isinstance(ev, h2.events.StreamEnded | h2.events.StreamReset):
                        return Attempt(status, echo=bytes(echo), server_id=server_id)
                tls.sendall(conn.data_to_send())
        except (ssl.SSLError, OSError) as exc:
            return Attempt(status, refused=str(exc), echo=bytes(echo), server_id=server_id)
