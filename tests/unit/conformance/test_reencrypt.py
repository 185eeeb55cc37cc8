"""The BackendTLSPolicy re-encrypt case's parts without a lab: its objects (an HTTPS listener
whose certificate the client verifies, one policy per outcome), the TLS probe reading an echo
answer over TLS on loopback (status, pod, the SNI the backend saw; the path it asks), and the
judgement of each answer: 200 with the policy's SNI when served, a 5xx from the waypoint when
the backend's validation fails, anything else a failure."""

from __future__ import annotations

import json
import sys

from conformance.cases import backend_tls_reencrypt as reenc
from conformance.cases.backend_tls import CA_MAP, HOST, MISMATCH_MAP
from conformance.cases.backends import TLS_SERVER
from conformance.cases.tls_probes import TLS_PROBE, pki
from conformance.lab import POD_PYTHON
from tests.unit.conformance.test_backends import client, server

BACKEND_POD = "tls-backend-5d8f7-abcde"


def _probe(port: int, ca: str, path: str) -> dict[str, object]:
    out = client(sys.executable, TLS_PROBE, json.dumps([{
        "address": "127.0.0.1", "port": port, "sni": reenc.LISTENER_HOST, "ca": ca,
        "http": reenc.LISTENER_HOST, "path": path}]))
    [answer] = out  # type: ignore[misc]  # the probe prints a list
    return dict(answer)


def test_objects_give_the_listener_its_certificate_and_one_policy_per_outcome() -> None:
    objs = reenc._objects_reencrypt()
    [gateway] = [o for o in objs if o["kind"] == "Gateway"]
    [listener] = gateway["spec"]["listeners"]
    assert (listener["protocol"], listener["port"], listener["tls"]["mode"]) == ("HTTPS", 443,
                                                                                 "Terminate")
    [secret] = [o for o in objs if o["kind"] == "Secret"]
    assert secret["metadata"]["name"] == listener["tls"]["certificateRefs"][0]["name"]
    policies = {o["metadata"]["name"]: o["spec"] for o in objs if o["kind"] == "BackendTLSPolicy"}
    refs = {n: s["validation"]["caCertificateRefs"][0]["name"] for n, s in policies.items()}
    assert refs == {"reencrypt-test": CA_MAP, "reencrypt-cert-mismatch": MISMATCH_MAP,
                    "reencrypt-san-mismatch": CA_MAP}
    assert all(s["validation"]["hostname"] == HOST for s in policies.values())
    assert policies["reencrypt-san-mismatch"]["validation"]["subjectAltNames"] == [
        {"type": "Hostname", "hostname": "dce.example.com"}]
    [route] = [o for o in objs if o["kind"] == "HTTPRoute"]
    assert route["spec"]["parentRefs"][0]["name"] == reenc.GATEWAY
    assert route["spec"]["hostnames"] == [reenc.LISTENER_HOST]


def test_the_probe_reads_status_pod_and_sni_over_verified_tls() -> None:
    listener = pki((reenc.LISTENER_HOST,))
    with server(TLS_SERVER, POD_PYTHON, listener.crt, listener.key) as port:
        got = _probe(port, listener.ca, "/backendtlspolicy")
        other_ca = pki(("someone.else",)).ca
        refused = _probe(port, other_ca, "/backendtlspolicy")
    assert got == {"cn": reenc.LISTENER_HOST, "status": 200, "pod": "h2c-backend-abc12-xyz",
                   "sni": reenc.LISTENER_HOST}
    assert "error" in refused and "CERTIFICATE_VERIFY_FAILED" in str(refused["error"])


def test_served_wants_200_from_the_backend_with_the_policys_sni() -> None:
    ok = {"cn": reenc.LISTENER_HOST, "status": 200, "pod": BACKEND_POD, "sni": HOST}
    assert reenc.problem(ok, served=True) is None
    # the client's SNI passed on instead of the policy's hostname
    assert "SNI" in str(reenc.problem({**ok, "sni": reenc.LISTENER_HOST}, served=True))
    assert reenc.problem({**ok, "pod": "infra-backend-v1-5d8f7-abcde"}, served=True)
    assert reenc.problem({**ok, "status": 503}, served=True)
    assert reenc.problem({**ok, "cn": "other.example"}, served=True)
    assert reenc.problem({"error": "reset"}, served=True)


def test_a_failed_backend_validation_must_be_a_5xx_from_the_waypoint() -> None:
    answer = {"cn": reenc.LISTENER_HOST, "status": 503}
    assert reenc.problem(answer, served=False) is None
    assert reenc.problem({**answer, "status": 502}, served=False) is None
    # the backend answered: the validation let it through
    assert reenc.problem({**answer, "status": 200, "pod": BACKEND_POD, "sni": HOST}, served=False)
    assert reenc.problem({**answer, "status": 404}, served=False)  # not an upstream failure
    assert reenc.problem({"error": "connection reset"}, served=False)  # no HTTP error at all
