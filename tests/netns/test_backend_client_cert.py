"""The Gateway's client certificate toward backends (GEP-3155) in a live lab: a backend pod
that requires a client certificate of one CA (``ssl.CERT_REQUIRED``), behind a
BackendTLSPolicy, reached from a pod through a Gateway whose
``spec.tls.backend.clientCertificateRef`` names a Secret of that CA: 200, and the backend saw
the Secret's certificate; the Secret rotated: the next connections present the new one; the
reference naming a Secret of another namespace without a ReferenceGrant: ResolvedRefs False
(RefNotPermitted), no certificate is presented and the backend refuses the request (503)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from conformance.cases.backends import TLS_SERVER
from conformance.lab import POD_PYTHON
from tests.unit.l7proxy.frontend_pki import Authority, Leaf

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, wait_for

pytestmark = pytest.mark.netns
NS = "backend-client-cert"
OTHER = "backend-client-cert-secrets"
GW = "gateway.networking.k8s.io/v1"
HOST = "mtls-backend.example"


def _secret(leaf: Leaf, ns: str = NS) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "gateway-client", "namespace": ns},
            "data": {"tls.crt": base64.b64encode(leaf.crt).decode(),
                     "tls.key": base64.b64encode(leaf.key).decode()}}


def _gateway(ref: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"gatewayClassName": "tulle",
                            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
                            "tls": {"backend": {"clientCertificateRef": ref}}}
    return {"apiVersion": GW, "kind": "Gateway", "metadata": {"name": "gw", "namespace": NS},
            "spec": spec}


@pytest.fixture(scope="module")
def site(lab: Lab) -> dict[str, Any]:
    server_ca, client_ca = Authority("backend CA"), Authority("gateway client CA")
    server = server_ca.issue(HOST)
    first, second = client_ca.issue("first", client=True), client_ca.issue("second", client=True)
    # TLS_SERVER with $CLIENT_CA_PEM requires a client certificate of that CA and reports it
    backend = deployment(NS, "mtls", 1, node="node2", command=[
        POD_PYTHON, "-c", TLS_SERVER, server.crt.decode(), server.key.decode()])
    backend["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "CLIENT_CA_PEM", "value": client_ca.pem.decode()}]
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "mtls", "namespace": NS},
           "spec": {"selector": {"app": "mtls"},
                    "ports": [{"name": "https", "port": 443, "targetPort": "http"}]}}
    ca_map = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "backend-ca", "namespace": NS},
              "data": {"ca.crt": server_ca.pem.decode()}}
    policy = {"apiVersion": GW, "kind": "BackendTLSPolicy",
              "metadata": {"name": "mtls", "namespace": NS},
              "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "mtls"}],
                       "validation": {"caCertificateRefs": [
                           {"group": "", "kind": "ConfigMap", "name": "backend-ca"}],
                           "hostname": HOST}}}
    route = {"apiVersion": GW, "kind": "HTTPRoute", "metadata": {"name": "web", "namespace": NS},
             "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [HOST],
                      "rules": [{"backendRefs": [{"name": "mtls", "port": 443}]}]}}
    apply(lab, namespace(NS), namespace(OTHER), backend, svc,
          deployment(NS, "client", 1, node="node1"), ca_map, policy, _secret(first),
          _secret(first, OTHER), _gateway({"name": "gateway-client"}), route)
    lab.wait_pods_ready(NS, 2, timeout=90)
    addresses = wait_for(lambda: (lab.get("gateways", NS)[0].get("status") or {}).get("addresses"),
                         timeout=30, what="the Gateway's address")
    info = {"client": pods_of(lab, NS, "client")[0]["metadata"]["name"],
            "gateway": addresses[0]["value"], "first": first, "second": second}
    wait_for(lambda: _get(lab, info)[0] == 200, timeout=60,
             what="the mutual-TLS backend served through the Gateway")
    return info


def _get(lab: Lab, site: dict[str, Any]) -> tuple[int, list[str]]:
    """(status, the PEM certificates the backend got); status 0: no answer."""
    out = lab.exec(NS, site["client"], "curl", "-s", "--max-time", "5", "-w", "\n%{http_code}",
                   "-H", f"Host: {HOST}", f"http://{site['gateway']}/", check=False)
    body, _, status = out.stdout.rpartition("\n")
    try:
        peers = json.loads(body)["tls"]["peerCertificates"]
    except (ValueError, KeyError, TypeError):
        peers = []
    return int(status or 0), [str(p) for p in peers]


def _same(pems: list[str], leaf: Leaf) -> bool:
    want = "".join(leaf.crt.decode().split())
    return any("".join(p.split()) == want for p in pems)


def _resolved_refs(lab: Lab) -> tuple[str, str] | None:
    [gw] = [g for g in lab.get("gateways", NS) if g["metadata"]["name"] == "gw"]
    found = [(c["status"], c["reason"]) for c in (gw.get("status") or {}).get("conditions") or []
             if c["type"] == "ResolvedRefs"]
    return found[0] if found else None


def test_the_backend_gets_the_gateways_certificate(lab: Lab, site: dict[str, Any]) -> None:
    status, peers = _get(lab, site)
    assert status == 200 and _same(peers, site["first"])
    assert _resolved_refs(lab) == ("True", "ResolvedRefs")


def test_a_rotated_secret_is_presented_on_new_connections(lab: Lab, site: dict[str, Any]) -> None:
    apply(lab, _secret(site["second"]))
    try:
        wait_for(lambda: _same(_get(lab, site)[1], site["second"]), timeout=60,
                 what="the rotated certificate presented to the backend")
    finally:
        apply(lab, _secret(site["first"]))
    wait_for(lambda: _same(_get(lab, site)[1], site["first"]), timeout=60,
             what="the first certificate presented again")


def test_without_a_permitted_certificate_the_backend_refuses(lab: Lab,
                                                             site: dict[str, Any]) -> None:
    # the attacker's: the same Secret's copy in another namespace, no ReferenceGrant there
    apply(lab, _gateway({"name": "gateway-client", "namespace": OTHER}))
    try:
        wait_for(lambda: _resolved_refs(lab) == ("False", "RefNotPermitted"), timeout=30,
                 what="ResolvedRefs False, RefNotPermitted")
        wait_for(lambda: _get(lab, site)[0] == 503, timeout=60,
                 what="the backend refusing a Gateway that presents no certificate")
    finally:
        apply(lab, _gateway({"name": "gateway-client"}))
    wait_for(lambda: _get(lab, site)[0] == 200, timeout=60, what="served again")
