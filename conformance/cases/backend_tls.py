"""BackendTLSPolicy (GATEWAY-HTTP extended, upstream conformance/tests/backendtlspolicy.go):
the waypoint connects to a Service port under a policy in TLS, validating the backend's
certificate against the policy's CA (a ConfigMap) and hostname, which it also sends as
SNI. A hostname or a CA the certificate does not match fails the request; a policy whose
CA ConfigMap is missing is not accepted until the ConfigMap appears. Each policy's
conditions are looked up under the Gateway whose route uses the Service, as upstream does.
With ``subjectAltNames`` the certificate must carry one of them (DNS or URI), upstream
backendtlspolicy-san.go. Upstream's re-encrypt subtest (through an HTTPS listener) is
``backend_tls_reencrypt``, which shares this module's backend, CA ConfigMaps and builders.

The certificates are made when this module loads (an EC CA, a server certificate for
abc.example.com, and a second CA that signed nothing); the backend is a small HTTPS
server (``backends.TLS_SERVER``) that reports the SNI name it got."""

from __future__ import annotations

import datetime
from functools import cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from conformance.case import Case, CaseFailed
from conformance.cases import certs
from conformance.cases.backends import TLS_SERVER, program
from conformance.cases.common import (
    GATEWAY,
    GATEWAY_API,
    GATEWAY_BASE,
    INFRA,
    backend,
    deployment_of,
    exact,
    gateway_address,
    gateway_parent,
    http_route,
    prefix,
)
from conformance.lab import POD_PYTHON, Lab, eventually

PROFILE = "GATEWAY-HTTP"
HOST, OTHER_HOST = "abc.example.com", "abc.example.org"
APP = "tls-backend"
CA_MAP, MISMATCH_MAP = "tls-checks-ca-certificate", "mismatch-ca-certificate"
RECONCILE_MAP = "tls-checks-ca-certificate-reconcile-test"
SPIFFE, OTHER_SPIFFE = "spiffe://abc.example.com/test-identity", "spiffe://def.example.com/test-identity"
# (policy, Service, CA ConfigMap, hostname, path)
POLICIES = (
    ("normative-test", "backendtlspolicy-test", CA_MAP, HOST, "/backendtlspolicy"),
    ("host-mismatch", "backendtlspolicy-host-mismatch-test", CA_MAP, "mismatch.example.com",
     "/backendtlspolicy-host-mismatch"),
    ("cert-mismatch", "backendtlspolicy-cert-mismatch-test", MISMATCH_MAP, HOST,
     "/backendtlspolicy-cert-mismatch"),
    ("reconcile-test", "backendtlspolicy-reconcile-test", CA_MAP, HOST,
     "/backendtlspolicy-reconcile-test"),
)


@cache
def pki() -> dict[str, str]:
    """PEMs: ``ca`` (signed the server certificate), ``other_ca`` (signed nothing),
    ``cert`` and ``key`` (the backend's: DNS abc.example.com and URI ``SPIFFE``), valid a
    day either side."""
    now = datetime.datetime.now(datetime.UTC)

    def ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(certs.name(cn))
                .issuer_name(certs.name(cn))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        return key, cert

    ca_key, ca_cert = ca("conformance CA")
    _, other = ca("another CA")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(certs.name(HOST))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName(HOST), x509.UniformResourceIdentifier(SPIFFE)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return {"ca": certs.pem(ca_cert), "other_ca": certs.pem(other), "cert": certs.pem(cert),
            "key": certs.key_pem(key)}


def ca_config_map(name: str, pem: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": INFRA},
            "data": {"ca.crt": pem}}


def tls_service(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": INFRA},
            "spec": {"selector": {"app": APP},
                     "ports": [{"name": "btls", "port": 443, "targetPort": "http"}]}}


def tls_policy(name: str, service: str, config_map: str, hostname: str,
            sans: tuple[dict[str, str], ...] = ()) -> dict[str, Any]:
    validation: dict[str, Any] = {
        "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": config_map}],
        "hostname": hostname}
    if sans:
        validation["subjectAltNames"] = list(sans)
    return {"apiVersion": GATEWAY_API, "kind": "BackendTLSPolicy",
            "metadata": {"name": name, "namespace": INFRA},
            "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": service}],
                     "validation": validation}}


def base_objects() -> tuple[dict[str, Any], ...]:
    p = pki()
    backend_pod = program(INFRA, APP, POD_PYTHON, TLS_SERVER)
    backend_pod["spec"]["template"]["spec"]["containers"][0]["command"] += [p["cert"], p["key"]]
    route = http_route(INFRA, "backendtlspolicy", gateway_parent(),
                       [{"matches": [prefix(path)], "backendRefs": [backend(svc, 443)]}
                        for _, svc, _, _, path in POLICIES], hostnames=[HOST, OTHER_HOST])
    return (backend_pod, ca_config_map(CA_MAP, p["ca"]),
            ca_config_map(MISMATCH_MAP, p["other_ca"]),
            *(tls_service(svc) for _, svc, _, _, _ in POLICIES),
            *(tls_policy(name, svc, cm, host) for name, svc, cm, host, _ in POLICIES), route)


def _conditions(lab: Lab, policy: str, gateway: str) -> dict[str, tuple[str, str]]:
    """The policy's conditions under the Gateway ``gateway`` (in INFRA) as ancestor."""
    for p in lab.get("backendtlspolicies", INFRA):
        if p["metadata"]["name"] == policy:
            for a in (p.get("status") or {}).get("ancestors") or []:
                ref = a.get("ancestorRef") or {}
                if ref.get("kind", "Gateway") == "Gateway" and ref.get("name") == gateway \
                        and ref.get("namespace", INFRA) == INFRA:
                    return {c["type"]: (c["status"], c["reason"]) for c in a["conditions"]}
    raise CaseFailed(f"BackendTLSPolicy {policy} has no status for Gateway {gateway}")


def expect_conditions(lab: Lab, policy: str, accepted: tuple[str, str],
                      resolved: tuple[str, str], gateway: str = GATEWAY) -> None:
    want = {"Accepted": accepted, "ResolvedRefs": resolved}

    def once() -> None:
        got = _conditions(lab, policy, gateway)
        if {k: got.get(k) for k in want} != want:
            raise CaseFailed(f"BackendTLSPolicy {policy}: {got}, want {want}")

    eventually(once, timeout=30)


OK = (("True", "Accepted"), ("True", "ResolvedRefs"))


def _get(lab: Lab, host: str, path: str) -> dict[str, Any]:
    [answer] = lab.http(INFRA, lab.pod(INFRA, "client"),
                        [{"url": f"http://{gateway_address(lab)}{path}", "host": host}])
    return answer


def _served(lab: Lab, path: str) -> None:
    """200 from the TLS backend, which saw the policy's hostname as SNI."""
    def once() -> None:
        got = _get(lab, HOST, path)
        body = got.get("body")
        if got.get("status") != 200 or not isinstance(body, dict) \
                or deployment_of(str(body.get("pod", ""))) != APP or body.get("sni") != HOST:
            raise CaseFailed(f"{path}: {str(got)[:300]}")

    eventually(once, timeout=30)


def _fails(lab: Lab, host: str, path: str) -> None:
    """The request fails (an error status or no answer), never reaching the backend."""
    got = _get(lab, host, path)
    if got.get("status") is not None and got["status"] < 500:
        raise CaseFailed(f"{path} through a failing TLS check answered {str(got)[:300]}")


def _check(lab: Lab) -> None:
    for name, *_ in POLICIES:
        expect_conditions(lab, name, *OK)
    _served(lab, "/backendtlspolicy")
    _fails(lab, OTHER_HOST, "/backendtlspolicy-host-mismatch")
    _fails(lab, HOST, "/backendtlspolicy-cert-mismatch")
    # the CA ConfigMap changed under a policy: refused while missing, accepted once there
    name, svc, _, host, path = POLICIES[3]
    lab.apply([tls_policy(name, svc, RECONCILE_MAP, host)])
    expect_conditions(lab, name, ("False", "NoValidCACertificate"),
                       ("False", "InvalidCACertificateRef"))
    _fails(lab, HOST, path)
    lab.apply([ca_config_map(RECONCILE_MAP, pki()["ca"])])
    try:
        expect_conditions(lab, name, *OK)
        _served(lab, path)
    finally:
        lab.delete([ca_config_map(RECONCILE_MAP, "")])


def _dns(name: str) -> dict[str, str]:
    return {"type": "Hostname", "hostname": name}


def _uri(uri: str) -> dict[str, str]:
    return {"type": "URI", "uri": uri}


# upstream backendtlspolicy-san: (policy, its SANs, whether the certificate matches them)
SANS: tuple[tuple[str, tuple[dict[str, str], ...], bool], ...] = (
    ("san-dns", (_dns(HOST),), True),
    ("san-dns-mismatch", (_dns("dce.example.com"),), False),
    ("san-uri", (_uri(SPIFFE),), True),
    ("san-uri-mismatch", (_uri(OTHER_SPIFFE),), False),
    ("multiple-sans", (_uri(SPIFFE), _dns(HOST)), True),
    ("multiple-mismatch-sans", (_uri(OTHER_SPIFFE), _dns("def.example.com")), False),
)


def _san_objects() -> tuple[dict[str, Any], ...]:
    route = http_route(INFRA, "backendtlspolicy-san-test", gateway_parent(),
                       [{"matches": [exact(f"/backendtlspolicy-{n}")],
                         "backendRefs": [backend(f"backendtlspolicy-{n}-test", 443)]}
                        for n, _, _ in SANS], hostnames=[HOST])
    return (*base_objects()[:3],  # the backend and the CA ConfigMaps
            *(tls_service(f"backendtlspolicy-{n}-test") for n, _, _ in SANS),
            *(tls_policy(n, f"backendtlspolicy-{n}-test", CA_MAP, HOST, sans)
              for n, sans, _ in SANS), route)


def _check_sans(lab: Lab) -> None:
    """subjectAltNames replace the hostname check: a certificate with one of the listed
    DNS or URI names passes, one with none of them fails (upstream
    BackendTLSPolicySANValidation)."""
    for name, _, _ in SANS:
        expect_conditions(lab, name, *OK)
    for name, _, matches in SANS:
        path = f"/backendtlspolicy-{name}"
        if matches:
            _served(lab, path)
        else:
            _fails(lab, HOST, path)


CASES = [
    Case("BackendTLSPolicy", PROFILE, ("Gateway", "HTTPRoute", "BackendTLSPolicy"),
         (*GATEWAY_BASE, *base_objects()), _check),
    Case("BackendTLSPolicySANValidation", PROFILE,
         ("Gateway", "HTTPRoute", "BackendTLSPolicy", "BackendTLSPolicySANValidation"),
         (*GATEWAY_BASE, *_san_objects()), _check_sans),
]
