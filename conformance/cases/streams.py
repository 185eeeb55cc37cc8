"""GATEWAY-TCP, GATEWAY-UDP and GATEWAY-TLS: Layer 4 routes on Gateway listeners. Their kinds
are being added (issue 16 items 2 and 3); until the lab serves a kind, its cases are skipped
and the profile reports that, never a pass. The TLS backend makes its own certificate, so
the client can tell that the Gateway passed the connection through rather than ending it."""

from __future__ import annotations

import json
from typing import Any

from conformance.case import Case, CaseFailed
from conformance.cases.common import (
    GATEWAY_API,
    Expect,
    backend,
    echo,
    expect_all,
    gateway_address,
    namespace,
    route,
    service,
)
from conformance.lab import GRPC_PYTHON, POD_PYTHON, Lab, eventually

NS = "gateway-conformance-l4"
GATEWAY = "l4-gateway"

UDP_SERVER = r"""
import os, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5353))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(os.environ["POD_NAME"].encode() + b":" + data, peer)
"""
UDP_ASK = r"""
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
try:
    s.sendto(b"ping", (sys.argv[1], int(sys.argv[2])))
    print(json.dumps({"reply": s.recv(2048).decode()}))
except OSError as e:
    print(json.dumps({"error": repr(e)}))
"""


# A TLS server whose self-signed certificate names its pod (CN), answering with that name.
TLS_SERVER = r"""
import datetime, os, socket, ssl, tempfile
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
pod = os.environ["POD_NAME"]
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, pod)])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("tls.example.com")]), False)
        .sign(key, hashes.SHA256()))
d = tempfile.mkdtemp()
open(d + "/c.pem", "wb").write(cert.public_bytes(serialization.Encoding.PEM))
open(d + "/k.pem", "wb").write(key.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(d + "/c.pem", d + "/k.pem")
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8443))
s.listen(16)
while True:
    c, _ = s.accept()
    try:
        t = ctx.wrap_socket(c, server_side=True)
        t.recv(4096)
        t.sendall(pod.encode())
        t.close()
    except OSError:
        c.close()
"""
# Connects with SNI, without verifying (the point is which certificate comes back).
TLS_ASK = r"""
import json, socket, ssl, sys
from cryptography import x509
from cryptography.x509.oid import NameOID
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=sys.argv[3]) as t:
            cert = x509.load_der_x509_certificate(t.getpeercert(binary_form=True))
            cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
            t.sendall(b"hello")
            print(json.dumps({"cn": cn, "reply": t.recv(4096).decode()}))
except (OSError, ValueError) as e:
    print(json.dumps({"error": repr(e)}))
"""


def _tls_server() -> dict[str, Any]:
    container = {"name": "tls", "image": "tulle/echo", "command": [GRPC_PYTHON, "-c", TLS_SERVER],
                 "ports": [{"name": "tls", "containerPort": 8443}]}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "tls-backend", "namespace": NS},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "tls-backend"}},
                     "template": {"metadata": {"labels": {"app": "tls-backend"}},
                                  "spec": {"containers": [container]}}}}


def _udp_server() -> dict[str, Any]:
    container = {"name": "udp", "image": "tulle/echo", "command": [POD_PYTHON, "-c", UDP_SERVER],
                 "ports": [{"name": "dns", "containerPort": 5353, "protocol": "UDP"}]}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "udp-backend", "namespace": NS},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "udp-backend"}},
                     "template": {"metadata": {"labels": {"app": "udp-backend"}},
                                  "spec": {"containers": [container]}}}}


BASE: tuple[dict[str, Any], ...] = (
    namespace(NS), echo(NS, "tcp-backend"), echo(NS, "client"), _udp_server(), _tls_server(),
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "tls-backend", "namespace": NS},
     "spec": {"selector": {"app": "tls-backend"},
              "ports": [{"name": "tls", "port": 443, "targetPort": "tls"}]}},
    service(NS, "tcp-backend"),
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "udp-backend", "namespace": NS},
     "spec": {"selector": {"app": "udp-backend"},
              "ports": [{"name": "dns", "port": 5353, "targetPort": 5353, "protocol": "UDP"}]}},
    {"apiVersion": GATEWAY_API, "kind": "Gateway", "metadata": {"name": GATEWAY, "namespace": NS},
     "spec": {"gatewayClassName": "tulle", "listeners": [
         {"name": "tcp", "port": 9000, "protocol": "TCP"},
         {"name": "udp", "port": 5300, "protocol": "UDP"},
         {"name": "tls", "port": 443, "protocol": "TLS", "hostname": "tls.example.com",
          "tls": {"mode": "Passthrough"}}]}},
)


def _tcp_check(lab: Lab) -> None:
    """Bytes sent to the TCP listener reach the backend (the echo answers an HTTP request
    carried as plain TCP) (upstream TCPRouteSimple)."""
    base = f"http://{gateway_address(lab, NS, GATEWAY)}:9000"
    expect_all(lab, NS, "client", base, [Expect(path="/tcp", backend="tcp-backend")])


def _udp_check(lab: Lab) -> None:
    """A datagram to the UDP listener is answered by the backend (upstream UDPRouteSimple)."""
    pod = lab.pod(NS, "client")
    address = gateway_address(lab, NS, GATEWAY)

    def once() -> None:
        got = lab.run_py(NS, pod, POD_PYTHON, UDP_ASK, address, "5300")
        if not str(got.get("reply", "")).startswith("udp-backend-"):
            raise CaseFailed(f"UDP answer {json.dumps(got)}, want one from udp-backend")

    eventually(once, timeout=30)


def _tls_check(lab: Lab) -> None:
    """A TLS connection for the route's hostname reaches the backend, which presents its own
    certificate: the Gateway passed it through (upstream TLSRouteSimpleSameNamespace)."""
    pod = lab.pod(NS, "client")
    address = gateway_address(lab, NS, GATEWAY)

    def once() -> None:
        got = lab.run_py(NS, pod, GRPC_PYTHON, TLS_ASK, address, "443", "tls.example.com")
        cn, reply = str(got.get("cn", "")), str(got.get("reply", ""))
        if not (cn.startswith("tls-backend-") and reply == cn):
            raise CaseFailed(f"TLS answer {json.dumps(got)}, want the backend's own certificate")

    eventually(once, timeout=30)


CASES = [
    Case("TLSRouteSimpleSameNamespace", "GATEWAY-TLS", ("Gateway", "TLSRoute"),
         (*BASE, route("TLSRoute", NS, "tls", {"name": GATEWAY, "sectionName": "tls"},
                       [{"backendRefs": [backend("tls-backend", 443)]}],
                       hostnames=["tls.example.com"])),
         _tls_check, kinds=("TLSRoute",)),
    Case("TCPRouteSimple", "GATEWAY-TCP", ("Gateway", "TCPRoute"),
         (*BASE, route("TCPRoute", NS, "tcp", {"name": GATEWAY, "sectionName": "tcp"},
                       [{"backendRefs": [backend("tcp-backend")]}])),
         _tcp_check, kinds=("TCPRoute",)),
    Case("UDPRouteSimple", "GATEWAY-UDP", ("Gateway", "UDPRoute"),
         (*BASE, route("UDPRoute", NS, "udp", {"name": GATEWAY, "sectionName": "udp"},
                       [{"backendRefs": [backend("udp-backend", 5353)]}])),
         _udp_check, kinds=("UDPRoute",)),
]
