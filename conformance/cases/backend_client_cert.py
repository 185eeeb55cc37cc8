"""GATEWAY-HTTP GatewayBackendClientCertificate (GEP-3155, upstream
conformance/tests/gateway-tls-backend-client-certificate.go): a Gateway whose
``spec.tls.backend.clientCertificateRef`` names a ``kubernetes.io/tls`` Secret presents that
certificate when it opens TLS to a backend under a BackendTLSPolicy. The backend requires a
client certificate of the client CA (``CERT_REQUIRED``) and echoes the certificates it got
(``tls.peerCertificates``, as upstream's echo backend does), which must hold the Secret's.
The Gateway's ResolvedRefs is True (reason ResolvedRefs).

Beyond upstream, the attacker's side: a second Gateway names a Secret of another namespace
with no ReferenceGrant there: ResolvedRefs False (RefNotPermitted), and it presents nothing,
so the same backend refuses its requests. The certificates are made when the module loads."""

from __future__ import annotations

import functools
from typing import Any

from conformance.case import Case, CaseFailed
from conformance.cases import certs
from conformance.cases.backends import TLS_SERVER, program
from conformance.cases.common import (
    GATEWAY_API,
    backend,
    deployment_of,
    echo,
    exact,
    gateway_address,
    http_route,
    namespace,
)
from conformance.lab import POD_PYTHON, Lab, eventually

NS = "gateway-conformance-backend-client-cert"
ELSEWHERE = "gateway-conformance-backend-client-cert-secrets"
GATEWAY = "gateway-tls-backend-client-certificate"
NOT_PERMITTED = "backend-client-certificate-not-permitted"
SECRET = "tls-checks-client-certificate"
APP = "tls-backend-with-client-cert-validation"
HOST = "abc.example.com"
PROFILE = "GATEWAY-HTTP"
FEATURES = ("Gateway", "HTTPRoute", "BackendTLSPolicy", "GatewayBackendClientCertificate")


@functools.cache
def _pki() -> dict[str, str]:
    """PEMs: the backend's CA and certificate (for HOST), the clients' CA and the Gateway's
    client certificate and key."""
    server_ca, client_ca = certs.authority("backend CA"), certs.authority("gateway client CA")
    server, server_key = certs.leaf(HOST, server_ca)
    client, client_key = certs.leaf("gateway", client_ca)
    return {"server_ca": certs.pem(server_ca[0]), "server": server, "server_key": server_key,
            "client_ca": certs.pem(client_ca[0]), "client": client, "client_key": client_key}





def _secret(ns: str) -> dict[str, Any]:
    p = _pki()
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": SECRET, "namespace": ns},
            "data": {"tls.crt": certs.b64(p["client"]), "tls.key": certs.b64(p["client_key"])}}


def _gateway(name: str, ref: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": GATEWAY_API, "kind": "Gateway",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"gatewayClassName": "tulle",
                     "listeners": [{"name": "http", "port": 80, "protocol": "HTTP",
                                    "allowedRoutes": {"namespaces": {"from": "Same"}}}],
                     "tls": {"backend": {"clientCertificateRef": ref}}}}


def _manifests() -> tuple[dict[str, Any], ...]:
    p = _pki()
    # backends.TLS_SERVER requiring a client certificate of the Gateway's CA
    server = program(NS, APP, POD_PYTHON, TLS_SERVER)
    container = server["spec"]["template"]["spec"]["containers"][0]
    container["command"] += [p["server"], p["server_key"]]
    container["env"] = [{"name": "CLIENT_CA_PEM", "value": p["client_ca"]}]
    ref = {"group": "", "kind": "Secret", "name": SECRET}
    rule = [{"matches": [exact("/")], "backendRefs": [backend(APP, 443)]}]
    return (
        namespace(NS), namespace(ELSEWHERE), echo(NS, "client"), server,
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": APP, "namespace": NS},
         "spec": {"selector": {"app": APP},
                  "ports": [{"name": "https", "port": 443, "targetPort": "http"}]}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "tls-checks-ca-certificate", "namespace": NS},
         "data": {"ca.crt": p["server_ca"]}},
        {"apiVersion": GATEWAY_API, "kind": "BackendTLSPolicy",
         "metadata": {"name": "gateway-tls-backend-client-certificate-test", "namespace": NS},
         "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": APP}],
                  "validation": {"caCertificateRefs": [{"group": "", "kind": "ConfigMap",
                                                        "name": "tls-checks-ca-certificate"}],
                                 "hostname": HOST}}},
        _secret(NS), _secret(ELSEWHERE),
        _gateway(GATEWAY, ref), _gateway(NOT_PERMITTED, {**ref, "namespace": ELSEWHERE}),
        http_route(NS, GATEWAY, {"name": GATEWAY}, rule, hostnames=[HOST]),
        http_route(NS, NOT_PERMITTED, {"name": NOT_PERMITTED}, rule, hostnames=[HOST]),
    )


def _resolved_refs(lab: Lab, name: str, want: tuple[str, str]) -> None:
    def once() -> None:
        for gw in lab.get("gateways", NS):
            if gw["metadata"]["name"] == name:
                got = [(c["status"], c["reason"]) for c in (gw.get("status") or {}).get(
                    "conditions") or [] if c.get("type") == "ResolvedRefs"]
                if got != [want]:
                    raise CaseFailed(f"Gateway {NS}/{name} ResolvedRefs: {got}, want {want}")
                return
        raise CaseFailed(f"Gateway {NS}/{name} not found")

    eventually(once, timeout=30)


def _get(lab: Lab, gateway: str) -> dict[str, Any]:
    [answer] = lab.http(NS, lab.pod(NS, "client"),
                        [{"url": f"http://{gateway_address(lab, NS, gateway)}/", "host": HOST}])
    return answer


def _same_pem(a: str, b: str) -> bool:
    return "".join(a.split()) == "".join(b.split())


def _check(lab: Lab) -> None:
    _resolved_refs(lab, GATEWAY, ("True", "ResolvedRefs"))

    def presented() -> None:
        got = _get(lab, GATEWAY)
        body = got.get("body")
        if got.get("status") != 200 or not isinstance(body, dict) \
                or deployment_of(str(body.get("pod", ""))) != APP:
            raise CaseFailed(f"through {GATEWAY}: {str(got)[:300]}, want 200 from {APP}")
        peers = (body.get("tls") or {}).get("peerCertificates") or []
        if not any(_same_pem(str(pem), _pki()["client"]) for pem in peers):
            raise CaseFailed(f"the backend did not get the Secret's certificate: {peers}")

    eventually(presented, timeout=60)
    _resolved_refs(lab, NOT_PERMITTED, ("False", "RefNotPermitted"))
    got = _get(lab, NOT_PERMITTED)
    if got.get("status") is not None and got["status"] < 500:
        raise CaseFailed(f"a Gateway whose Secret is not permitted reached the mutual-TLS "
                         f"backend: {str(got)[:300]}")


CASES = [
    Case("GatewayTLSBackendClientCertificate", PROFILE, FEATURES, _manifests(), _check),
]
