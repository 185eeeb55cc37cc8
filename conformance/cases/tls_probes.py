"""What the GATEWAY-TLS and misdirected-request cases (``tls.py``) run: the certificates
they give the Gateway (an EC CA and one server certificate for every name the cases ask
for, made when first needed), and the client programs that run in a lab pod with the
project's interpreter (``cryptography`` and ``h2``), each printing one JSON line."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conformance.cases import certs

# TLS connections, one per probe ({address, port, sni, ca?, http?, path?}): with ``ca``
# the server's certificate must verify for the SNI name; with ``http`` an HTTP/1.1 GET of
# ``path`` (default /tls) for that Host is sent and the answer's status read, with the
# echo's pod and the SNI name the backend saw when the body is an echo answer (a backend
# behind a terminating Gateway), else "hello" and the reply (the passthrough backend
# answers with its pod name). Prints [{cn, reply | status + pod? + sni?} | {error}].
TLS_PROBE = r"""
import json, socket, ssl, sys
from cryptography import x509
from cryptography.x509.oid import NameOID
out = []
for p in json.loads(sys.argv[1]):
    if p.get("ca"):
        ctx = ssl.create_default_context(cadata=p["ca"])
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((p["address"], p["port"]), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=p["sni"]) as t:
                cert = x509.load_der_x509_certificate(t.getpeercert(binary_form=True))
                got = {"cn": cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value}
                if p.get("http"):
                    t.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                               % (p.get("path", "/tls"), p["http"])).encode())
                    data = b""
                    while chunk := t.recv(65536):
                        data += chunk
                    head, _, body = data.partition(b"\r\n\r\n")
                    got["status"] = int(head.split(b"\r\n", 1)[0].split()[1])
                    try:
                        echo = json.loads(body)
                    except ValueError:  # the proxy's own error page
                        echo = None
                    if isinstance(echo, dict):
                        got["pod"], got["sni"] = echo.get("pod"), echo.get("sni")
                else:
                    t.sendall(b"hello")
                    got["reply"] = t.recv(4096).decode()
        out.append(got)
    except (OSError, ValueError, IndexError) as e:
        out.append({"error": repr(e)})
print(json.dumps(out))
"""

# HTTP/2 over TLS (ALPN h2), one connection per SNI name carrying one stream per
# :authority, all on that connection (a client reusing a connection for another host,
# RFC 9113 9.1.1). argv: address port ca path plan, plan [[sni, [authority, ...]], ...].
# Prints [{sni, host, status, pod} | {sni, host, error}].
H2_PROBE = r"""
import json, socket, ssl, sys
import h2.config, h2.connection, h2.events
address, port, ca, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
out = []
for sni, hosts in json.loads(sys.argv[5]):
    ctx = ssl.create_default_context(cadata=ca)
    ctx.set_alpn_protocols(["h2"])
    streams = {}
    try:
        with socket.create_connection((address, port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=sni) as t:
                if t.selected_alpn_protocol() != "h2":
                    raise OSError("ALPN chose %r, not h2" % t.selected_alpn_protocol())
                c = h2.connection.H2Connection(
                    h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
                c.initiate_connection()
                for host in hosts:
                    sid = c.get_next_available_stream_id()
                    c.send_headers(sid, [(":method", "GET"), (":scheme", "https"),
                                         (":authority", host), (":path", path)], end_stream=True)
                    streams[sid] = {"sni": sni, "host": host, "body": b""}
                t.sendall(c.data_to_send())
                waiting = set(streams)
                while waiting:
                    data = t.recv(65536)
                    if not data:
                        break
                    for ev in c.receive_data(data):
                        s = streams.get(getattr(ev, "stream_id", None))
                        if isinstance(ev, h2.events.ResponseReceived):
                            s["status"] = int(dict(ev.headers)[":status"])
                        elif isinstance(ev, h2.events.DataReceived):
                            s["body"] += ev.data
                            c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                        elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                            waiting.discard(ev.stream_id)
                        elif isinstance(ev, h2.events.ConnectionTerminated):
                            waiting.clear()
                    t.sendall(c.data_to_send())
    except (OSError, ValueError) as e:
        for host in hosts:
            out.append({"sni": sni, "host": host, "error": repr(e)})
        continue
    for s in streams.values():
        body = s.pop("body")
        if "status" not in s:
            s["error"] = "no response on the connection"
        else:
            try:
                s["pod"] = json.loads(body).get("pod")
            except ValueError:
                s["pod"] = None
        out.append(s)
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Pki:
    ca: str  # PEM
    crt: str
    key: str

    def secret(self, namespace: str, name: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {"name": name, "namespace": namespace},
                "data": {"tls.crt": certs.b64(self.crt), "tls.key": certs.b64(self.key)}}


@functools.cache
def pki(names: tuple[str, ...]) -> Pki:
    """A CA and a server certificate for ``names`` (the first is its CN)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "conformance TLS CA")])
    ca = (certs.builder("conformance TLS CA", issuer, ca_key.public_key())
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (certs.builder(names[0], issuer, key.public_key())
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    pem = serialization.Encoding.PEM
    return Pki(ca.public_bytes(pem).decode(), leaf.public_bytes(pem).decode(), key_pem)
