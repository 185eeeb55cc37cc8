"""BackendTLSPolicy re-encrypt (GATEWAY-HTTP extended, upstream v1.6.1's re-encrypt subtest of
conformance/tests/backendtlspolicy.go): a client speaks TLS to a Gateway's HTTPS listener,
which the waypoint terminates, and the waypoint opens a second TLS connection to the
route's backend, validated as the backend's BackendTLSPolicy says.

The client verifies the listener's certificate (for ``https-listener.org``) against the
cases' listener CA and asks over HTTP/1.1 (``tls_probes.TLS_PROBE``). Three Services of the
one TLS backend (``backend_tls.APP``, certificate for abc.example.com) carry one policy each:

- the right CA and hostname: 200 from the backend, which saw abc.example.com as SNI (the
  policy's hostname, not the client's https-listener.org);
- a CA that did not sign the backend's certificate: the client gets a 5xx from the
  waypoint over its own TLS connection, never the backend's answer;
- the right CA but a ``subjectAltNames`` entry the certificate lacks: also a 5xx.

The spec wants a failed backend validation to fail the request with an HTTP error; a dropped
client connection would not be one, so each failure must come back as a 5xx status."""

from __future__ import annotations

import json
from typing import Any

from conformance.case import Case, CaseFailed
from conformance.cases.backend_tls import (
    APP,
    CA_MAP,
    HOST,
    MISMATCH_MAP,
    OK,
    base_objects,
    expect_conditions,
    tls_policy,
    tls_service,
)
from conformance.cases.common import (
    GATEWAY_API,
    GATEWAY_BASE,
    INFRA,
    backend,
    deployment_of,
    exact,
    gateway_address,
    http_route,
)
from conformance.cases.tls_probes import TLS_PROBE, pki
from conformance.lab import GRPC_PYTHON, Lab, eventually

PROFILE = "GATEWAY-HTTP"
GATEWAY = "same-namespace-with-https-listener"
LISTENER_HOST = "https-listener.org"
SECRET = "tls-validity-checks-certificate"
# (policy, Service, CA ConfigMap, subjectAltNames, path, served)
POLICIES: tuple[tuple[str, str, str, tuple[dict[str, str], ...], str, bool], ...] = (
    ("reencrypt-test", "backendtlspolicy-reencrypt-test", CA_MAP, (), "/backendtlspolicy",
     True),
    ("reencrypt-cert-mismatch", "backendtlspolicy-reencrypt-cert-mismatch-test", MISMATCH_MAP,
     (), "/backendtlspolicy-reencrypt-cert-mismatch", False),
    ("reencrypt-san-mismatch", "backendtlspolicy-reencrypt-san-mismatch-test", CA_MAP,
     ({"type": "Hostname", "hostname": "dce.example.com"},),
     "/backendtlspolicy-reencrypt-san-mismatch", False),
)


def _listener_pki() -> Any:
    return pki((LISTENER_HOST,))


def _objects_reencrypt() -> tuple[dict[str, Any], ...]:
    gateway = {"apiVersion": GATEWAY_API, "kind": "Gateway",
               "metadata": {"name": GATEWAY, "namespace": INFRA},
               "spec": {"gatewayClassName": "tulle", "listeners": [
                   {"name": "https", "port": 443, "protocol": "HTTPS",
                    "allowedRoutes": {"namespaces": {"from": "Same"}},
                    "tls": {"mode": "Terminate", "certificateRefs": [
                        {"group": "", "kind": "Secret", "name": SECRET}]}}]}}
    route = http_route(INFRA, "backendtlspolicy-reencrypt", {"name": GATEWAY, "namespace": INFRA},
                       [{"matches": [exact(path)], "backendRefs": [backend(svc, 443)]}
                        for _, svc, _, _, path, _ in POLICIES], hostnames=[LISTENER_HOST])
    return (*base_objects()[:3],  # the TLS backend and the CA ConfigMaps of backend_tls
            _listener_pki().secret(INFRA, SECRET), gateway,
            *(tls_service(svc) for _, svc, _, _, _, _ in POLICIES),
            *(tls_policy(name, svc, cm, HOST, sans) for name, svc, cm, sans, _, _ in POLICIES),
            route)


def _ask(lab: Lab, path: str) -> dict[str, Any]:
    probe = {"address": gateway_address(lab, INFRA, GATEWAY), "port": 443,
             "sni": LISTENER_HOST, "ca": _listener_pki().ca, "http": LISTENER_HOST,
             "path": path}
    [answer] = lab.run_py(INFRA, lab.pod(INFRA, "client"), GRPC_PYTHON, TLS_PROBE,
                          json.dumps([probe]))
    return dict(answer)


def problem(answer: dict[str, Any], served: bool) -> str | None:
    """What is wrong with one answer through the HTTPS listener, or None. ``cn`` is the
    listener's certificate as the client verified it; ``sni`` what the backend saw."""
    if "error" in answer:
        return f"no HTTP answer over the listener's TLS: {answer['error']}"
    if answer.get("cn") != LISTENER_HOST:
        return f"listener certificate CN {answer.get('cn')!r}, want {LISTENER_HOST}"
    status = answer.get("status")
    if served:
        if status != 200 or deployment_of(str(answer.get("pod", ""))) != APP:
            return f"status {status} from {answer.get('pod')!r}, want 200 from {APP}"
        if answer.get("sni") != HOST:
            return f"the backend saw SNI {answer.get('sni')!r}, want the policy's {HOST}"
        return None
    if not isinstance(status, int) or status < 500 or answer.get("pod"):
        return f"status {status} (backend {answer.get('pod')!r}), want a 5xx from the waypoint"
    return None


def _check(lab: Lab) -> None:
    for name, *_ in POLICIES:
        expect_conditions(lab, name, *OK, gateway=GATEWAY)
    for _, _, _, _, path, served in POLICIES:
        def once(path: str = path, served: bool = served) -> None:
            if why := problem(_ask(lab, path), served):
                raise CaseFailed(f"https://{LISTENER_HOST}{path}: {why}")

        eventually(once, timeout=30)


CASES = [
    Case("BackendTLSPolicyReencrypt", PROFILE, ("Gateway", "HTTPRoute", "BackendTLSPolicy"),
         (*GATEWAY_BASE, *_objects_reencrypt()), _check),
]
