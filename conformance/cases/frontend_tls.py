"""GATEWAY-HTTP frontend client-certificate validation (GEP-91, Gateway ``spec.tls.frontend``):
an HTTPS listener on 443 that accepts only clients with a certificate of the CA in a
ConfigMap (AllowValidOnly, the default), a perPort override on 8443 that falls back
(AllowInsecureFallback), and a default whose ConfigMap does not exist (upstream
GatewayFrontendInvalidDefaultClientCertificateValidation: the HTTPS listener is not accepted,
the HTTP one is unaffected). The certificates are made when the module loads."""

from __future__ import annotations

import functools
import json
from typing import Any

from conformance.case import Case, CaseFailed
from conformance.cases import certs
from conformance.cases.common import (
    GATEWAY_API,
    backend,
    echo,
    gateway_address,
    http_route,
    namespace,
    service,
)
from conformance.lab import POD_PYTHON, Lab, eventually

NS = "gateway-conformance-frontend-tls"
GATEWAY = "client-validation"
INVALID = "invalid-default-client-validation"
HOST = "mtls.example.com"
PROFILE = "GATEWAY-HTTP"
VALIDATION = "GatewayFrontendClientCertificateValidation"
FALLBACK = "GatewayFrontendClientCertificateValidationInsecureFallback"
CORE = ("Gateway", "HTTPRoute")

# GET https://HOST:PORT/ through ADDRESS, with the client certificate and key PEM given
# (or "" for none); prints {"status": N} or {"error": ...} (a refused handshake).
ASK = r"""
import json, os, socket, ssl, sys, tempfile
address, port, host, ca, crt, key = sys.argv[1:7]
ctx = ssl.create_default_context(cadata=ca)
if crt:
    d = tempfile.mkdtemp()
    open(d + "/c.pem", "w").write(crt)
    open(d + "/k.pem", "w").write(key)
    ctx.load_cert_chain(d + "/c.pem", d + "/k.pem")
try:
    with socket.create_connection((address, int(port)), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as t:
            t.sendall(("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host).encode())
            data = b""
            while chunk := t.recv(65536):
                data += chunk
    line = data.split(b"\r\n", 1)[0].split()
    print(json.dumps({"status": int(line[1])} if len(line) > 1 else {"error": "no response"}))
except (OSError, ValueError) as e:
    print(json.dumps({"error": repr(e)}))
"""


class _Pki:
    """A server CA and certificate for HOST, the clients' CA, a client of it, and a client
    of an unrelated CA."""

    def __init__(self) -> None:
        server_ca = certs.authority("conformance server CA")
        client_ca = certs.authority("conformance client CA")
        rogue_ca = certs.authority("conformance rogue CA")
        self.server_ca = certs.pem(server_ca[0])
        self.client_ca = certs.pem(client_ca[0])
        self.server = certs.leaf(HOST, server_ca)
        self.client = certs.leaf("client", client_ca)
        self.rogue = certs.leaf("rogue", rogue_ca)


@functools.cache
def _pki() -> _Pki:
    return _Pki()


def _gateway(name: str, frontend: dict[str, Any], listeners: list[dict[str, Any]]
             ) -> dict[str, Any]:
    return {"apiVersion": GATEWAY_API, "kind": "Gateway",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"gatewayClassName": "tulle", "tls": {"frontend": frontend},
                     "listeners": listeners}}


def _https(name: str, port: int) -> dict[str, Any]:
    return {"name": name, "port": port, "protocol": "HTTPS",
            "tls": {"certificateRefs": [{"group": "", "kind": "Secret", "name": "server"}]}}


def _refs(name: str) -> dict[str, Any]:
    return {"caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": name}]}


def _manifests() -> tuple[dict[str, Any], ...]:
    pki = _pki()
    crt, key = pki.server
    http = {"name": "http", "port": 80, "protocol": "HTTP"}
    return (
        namespace(NS), echo(NS, "backend"), echo(NS, "client"), service(NS, "backend"),
        {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
         "metadata": {"name": "server", "namespace": NS},
         "data": {"tls.crt": certs.b64(crt), "tls.key": certs.b64(key)}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "client-ca", "namespace": NS}, "data": {"ca.crt": pki.client_ca}},
        _gateway(GATEWAY, {"default": {"validation": _refs("client-ca")},
                           "perPort": [{"port": 8443, "tls": {"validation": {
                               **_refs("client-ca"), "mode": "AllowInsecureFallback"}}}]},
                 [_https("strict", 443), _https("fallback", 8443)]),
        _gateway(INVALID, {"default": {"validation": _refs("does-not-exist")}},
                 [_https("https", 443), http]),
        http_route(NS, "mtls", {"name": GATEWAY}, [{"backendRefs": [backend("backend")]}],
                   hostnames=[HOST]),
        http_route(NS, "invalid", {"name": INVALID}, [{"backendRefs": [backend("backend")]}]),
    )


def _ask(lab: Lab, gateway: str, port: int, client: tuple[str, str] | None) -> dict[str, Any]:
    crt, key = client or ("", "")
    got: dict[str, Any] = lab.run_py(NS, lab.pod(NS, "client"), POD_PYTHON, ASK,
                                     gateway_address(lab, NS, gateway), str(port), HOST,
                                     _pki().server_ca, crt, key)
    return got


def _expect(lab: Lab, port: int, client: tuple[str, str] | None, served: bool, what: str
            ) -> None:
    def once() -> None:
        got = _ask(lab, GATEWAY, port, client)
        if served and got.get("status") != 200:
            raise CaseFailed(f"{what} on port {port}: {json.dumps(got)}, want 200")
        if not served and "error" not in got:
            raise CaseFailed(f"{what} on port {port}: {json.dumps(got)}, want a refused "
                             "handshake")

    eventually(once, timeout=30)


def _valid_only(lab: Lab) -> None:
    """AllowValidOnly: a client certificate of the ConfigMap's CA is served; no certificate
    or one of another CA fails the handshake."""
    pki = _pki()
    _expect(lab, 443, pki.client, True, "a client of the CA")
    _expect(lab, 443, None, False, "a client without a certificate")
    _expect(lab, 443, pki.rogue, False, "a client of another CA")


def _conditions(lab: Lab, name: str) -> dict[str, Any]:
    for gw in lab.get("gateways", NS):
        if gw["metadata"]["name"] == name:
            return dict(gw.get("status") or {})
    raise CaseFailed(f"Gateway {NS}/{name} not found")


def _insecure_fallback(lab: Lab) -> None:
    """AllowInsecureFallback (perPort 8443): clients without a valid certificate are served,
    and the Gateway says so (InsecureFrontendValidationMode True, ConfigurationChanged)."""
    pki = _pki()
    _expect(lab, 8443, None, True, "a client without a certificate")
    _expect(lab, 8443, pki.rogue, True, "a client of another CA")

    def condition() -> None:
        found = [c for c in _conditions(lab, GATEWAY).get("conditions") or []
                 if c.get("type") == "InsecureFrontendValidationMode"]
        if not found or (found[0]["status"], found[0]["reason"]) != ("True",
                                                                     "ConfigurationChanged"):
            raise CaseFailed(f"InsecureFrontendValidationMode: {found}, want True "
                             "ConfigurationChanged")

    eventually(condition, timeout=30)


def _invalid_default(lab: Lab) -> None:
    """A default naming a missing ConfigMap: the HTTPS listener has ResolvedRefs False
    (InvalidCACertificateRef), Accepted False (NoValidCACertificate), Programmed False and
    is not served; the HTTP listener keeps all three True."""
    want: dict[str, dict[str, tuple[str, str | None]]] = {
        "https": {"ResolvedRefs": ("False", "InvalidCACertificateRef"),
                  "Accepted": ("False", "NoValidCACertificate"),
                  "Programmed": ("False", None)},
        "http": {"ResolvedRefs": ("True", None), "Accepted": ("True", None),
                 "Programmed": ("True", None)}}

    def once() -> None:
        listeners = {ls["name"]: ls for ls in _conditions(lab, INVALID).get("listeners") or []}
        for name, expected in want.items():
            got = {c["type"]: (c["status"], c["reason"])
                   for c in (listeners.get(name) or {}).get("conditions") or []}
            for type_, (status, reason) in expected.items():
                seen = got.get(type_)
                if seen is None or seen[0] != status or (reason and seen[1] != reason):
                    raise CaseFailed(f"listener {name} {type_}: {seen}, want {status} "
                                     f"{reason or ''}")
        got = _ask(lab, INVALID, 443, _pki().client)
        if "error" not in got:
            raise CaseFailed(f"the unaccepted HTTPS listener answered: {json.dumps(got)}")

    eventually(once, timeout=30)


CASES = [
    Case("GatewayFrontendClientCertificateValidation", PROFILE, (*CORE, VALIDATION),
         _manifests(), _valid_only),
    Case("GatewayFrontendClientCertificateValidationInsecureFallback", PROFILE,
         (*CORE, VALIDATION, FALLBACK), _manifests(), _insecure_fallback),
    Case("GatewayFrontendInvalidDefaultClientCertificateValidation", PROFILE,
         (*CORE, VALIDATION), _manifests(), _invalid_default),
]
