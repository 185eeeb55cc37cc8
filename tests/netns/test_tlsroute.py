"""TLSRoute in a live lab: a pod reaches a Gateway's TLS Passthrough listener through the
datapath's redirection to its node's waypoint; the server name chooses the route, and the
client sees the backend's own certificate (two SNIs, two backends); an unknown SNI is
closed; a 3:1 split holds within a binomial bound; a client that sends no ClientHello is
closed after the header timeout; a Terminate listener serves its own certificate and
forwards the plaintext stream; the TLSRoute and listener status say so. (The external
client is not tried: Gateway addresses are not served outside the cluster on this base.)"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.l7proxy.test_tls import CertificateAuthority

from .conftest import Lab
from .test_datapath import PY, apply, deployment, namespace, pods_of, run_py, service, wait_for

pytestmark = pytest.mark.netns
NS = "mesh-tlsroute"
GW = "gateway.networking.k8s.io/v1"

# A TLS echo backend: its own certificate, one line back as "<name>:<line>".
BACKEND = r"""
import socket, ssl, sys, threading
name, crt, key = sys.argv[1:4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(crt, key)
srv = socket.create_server(("0.0.0.0", 8443), backlog=64)
def serve(conn):
    try:
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.settimeout(10)
            line = tls.makefile("rb").readline()
            tls.sendall(name.encode() + b":" + line)
    except Exception:
        conn.close()
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""

# The client: for each server name, connect, verify the chain against the test CA, and
# report the certificate's common name and the backend's answer (or the error).
CLIENT = r"""
import json, socket, ssl, sys
address, ca, names = sys.argv[1], sys.argv[2], sys.argv[3:]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
out = []
for name in names:
    try:
        with socket.create_connection((address, 443), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=name) as tls:
                cert = dict(x[0] for x in tls.getpeercert()["subject"])
                tls.sendall(b"hi\n")
                out.append([cert["commonName"], tls.makefile("rb").readline().decode()])
    except (OSError, ssl.SSLError) as exc:
        out.append(["error", type(exc).__name__])
print(json.dumps(out))
"""

# Terminate: an HTTP request over TLS to the listener, the echo backend's answer.
TERMINATED = r"""
import json, socket, ssl, sys
address, ca = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
with socket.create_connection((address, 8443), timeout=5) as raw:
    with ctx.wrap_socket(raw, server_hostname="term.example") as tls:
        cert = dict(x[0] for x in tls.getpeercert()["subject"])
        tls.sendall(b"GET /terminated HTTP/1.1\r\nHost: term.example\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data and (chunk := tls.recv(65536)):
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(body) < length and (chunk := tls.recv(65536)):
            body += chunk
print(json.dumps({"cn": cert["commonName"], "status": head.split(b" ")[1].decode(),
                  "echo": json.loads(body)}))
"""

SILENT = r"""
import json, socket, sys, time
start = time.monotonic()
with socket.create_connection((sys.argv[1], 443), timeout=30) as s:
    got = s.recv(1)
print(json.dumps({"closed": got == b"", "after": time.monotonic() - start}))
"""


def _secret_files(root: Path, name: str, crt: bytes, key: bytes) -> tuple[str, str]:
    (root / f"{name}.crt").write_bytes(crt)
    (root / f"{name}.key").write_bytes(key)
    for f in (root / f"{name}.crt", root / f"{name}.key"):
        f.chmod(0o644)
    return str(root / f"{name}.crt"), str(root / f"{name}.key")


def _tls_route(name: str, hostnames: list[str], backends: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": GW, "kind": "TLSRoute", "metadata": {"name": name, "namespace": NS},
            "spec": {"parentRefs": [{"name": "edge", "sectionName": "tls"}],
                     "hostnames": hostnames, "rules": [{"backendRefs": backends}]}}


@pytest.fixture(scope="module")
def site(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("tlsroute")
    root.chmod(0o755)
    ca = CertificateAuthority()
    (root / "ca.crt").write_bytes(ca.pem)
    (root / "ca.crt").chmod(0o644)
    objects: list[dict[str, Any]] = [namespace(NS)]
    for name, names in (("alpha", ("alpha.example", "split.example")),
                        ("beta", ("beta.example", "split.example"))):
        issued = ca.issue(f"{name}-backend", *names)
        crt, key = _secret_files(root, name, issued.crt, issued.key)
        objects += [
            deployment(NS, name, 1, node="node2", command=[PY, "-c", BACKEND, name, crt, key],
                       ports=[{"name": "tls", "containerPort": 8443}]),
            service(NS, name, port=8443, target="tls"),
        ]
    listener = ca.issue("term-listener", "term.example")
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
              "metadata": {"name": "term-tls", "namespace": NS},
              "data": {"tls.crt": base64.b64encode(listener.crt).decode(),
                       "tls.key": base64.b64encode(listener.key).decode()}}
    gateway = {"apiVersion": GW, "kind": "Gateway", "metadata": {"name": "edge", "namespace": NS},
               "spec": {"gatewayClassName": "tulle", "listeners": [
                   {"name": "tls", "port": 443, "protocol": "TLS", "tls": {"mode": "Passthrough"}},
                   {"name": "term", "port": 8443, "protocol": "TLS", "hostname": "term.example",
                    "tls": {"mode": "Terminate", "certificateRefs": [{"name": "term-tls"}]}}]}}
    term = _tls_route("term", ["term.example"], [{"name": "echo", "port": 80}])
    term["spec"]["parentRefs"] = [{"name": "edge", "sectionName": "term"}]
    objects += [
        secret,
        gateway,
        term,
        deployment(NS, "echo", 1, node="node2"),
        service(NS, "echo"),
        deployment(NS, "client", 1, node="node1"),
        _tls_route("alpha", ["alpha.example"], [{"name": "alpha", "port": 8443}]),
        _tls_route("beta", ["beta.example"], [{"name": "beta", "port": 8443}]),
        _tls_route("split", ["split.example"], [{"name": "alpha", "port": 8443, "weight": 3},
                                                {"name": "beta", "port": 8443, "weight": 1}]),
    ]
    apply(lab, *objects)
    lab.wait_pods_ready(NS, 4, timeout=90)
    client = pods_of(lab, NS, "client")[0]["metadata"]["name"]
    gw = wait_for(lambda: (lab.get("gateways", NS)[0].get("status") or {}).get("addresses"),
                  what="gateway address")
    info = {"client": client, "gateway": gw[0]["value"], "ca": str(root / "ca.crt")}
    wait_for(lambda: connect(lab, info, "alpha.example")[0][0] == "alpha-backend", timeout=30,
             what="the TLS listener is served")
    return info


def connect(lab: Lab, site: dict[str, Any], *names: str) -> list[list[str]]:
    out: list[list[str]] = run_py(lab, NS, site["client"], CLIENT, site["gateway"], site["ca"],
                                  *names)
    return out


def test_passthrough_shows_each_backends_own_certificate(lab: Lab, site: dict[str, Any]) -> None:
    assert connect(lab, site, "alpha.example", "beta.example") == [
        ["alpha-backend", "alpha:hi\n"],
        ["beta-backend", "beta:hi\n"],
    ]


def test_an_unknown_server_name_is_closed(lab: Lab, site: dict[str, Any]) -> None:
    [(outcome, _)] = connect(lab, site, "nobody.example")
    assert outcome == "error"


def test_weights_hold_within_a_binomial_bound(lab: Lab, site: dict[str, Any]) -> None:
    n = 60
    got = connect(lab, site, *(["split.example"] * n))
    names = [cn for cn, _ in got]
    assert names.count("alpha-backend") + names.count("beta-backend") == n, got
    # p = 3/4: mean 45, sd 3.35; +-5 sd fails about once in 3.5 million runs
    assert 45 - 17 < names.count("alpha-backend") < 45 + 17


def test_a_client_that_sends_nothing_is_closed_after_the_timeout(
    lab: Lab, site: dict[str, Any]
) -> None:
    result = run_py(lab, NS, site["client"], SILENT, site["gateway"], timeout=60)
    assert result["closed"] is True


def test_status_accepts_the_routes_and_counts_them(lab: Lab, site: dict[str, Any]) -> None:
    routes = {r["metadata"]["name"]: r for r in lab.get("tlsroutes", NS)}
    for name in ("alpha", "beta", "split"):
        [parent] = routes[name]["status"]["parents"]
        conditions = {c["type"]: (c["status"], c["reason"]) for c in parent["conditions"]}
        assert conditions["Accepted"] == ("True", "Accepted"), routes[name]["status"]
    gw = lab.get("gateways", NS)[0]
    listeners = {entry["name"]: entry for entry in gw["status"]["listeners"]}
    assert listeners["tls"]["attachedRoutes"] == 3 and listeners["term"]["attachedRoutes"] == 1
    for entry in listeners.values():
        kinds = [{"group": "gateway.networking.k8s.io", "kind": "TLSRoute"}]
        assert entry["supportedKinds"] == kinds
        conditions = {c["type"]: c["status"] for c in entry["conditions"]}
        assert conditions["Programmed"] == "True" and conditions["ResolvedRefs"] == "True"


def test_terminate_serves_the_listener_certificate_and_forwards_plaintext(
    lab: Lab, site: dict[str, Any]
) -> None:
    result = run_py(lab, NS, site["client"], TERMINATED, site["gateway"], site["ca"])
    assert result["cn"] == "term-listener" and result["status"] == "200"
    assert result["echo"]["path"] == "/terminated" and result["echo"]["pod"].startswith("echo")


def test_refusals_and_forwards_are_flows(lab: Lab, site: dict[str, Any]) -> None:
    connect(lab, site, "alpha.example", "nobody.example")

    def flows() -> list[dict[str, Any]]:
        out = lab.tulle("observe", "--last", "2000", "-t", "l7", "--from-pod",
                        f"{NS}/{site['client']}", "-o", "json").stdout
        return [json.loads(line)["flow"] for line in out.splitlines() if line.strip()]

    found = wait_for(lambda: [f for f in flows() if f.get("drop_reason_desc") == "TLS_NO_ROUTE"],
                     timeout=10, what="a TLS_NO_ROUTE flow")
    assert found[-1]["verdict"] == "DROPPED"
    forwarded = [f for f in flows() if f["verdict"] == "FORWARDED"
                 and f.get("tulle", {}).get("route") == f"{NS}/alpha"]
    assert forwarded, "no FORWARDED flow for the alpha TLSRoute"
