"""Client-certificate validation (GEP-91) in a live lab: a Gateway whose HTTPS listener on
443 requires a client certificate from the CA in a ConfigMap (AllowValidOnly) and whose
listener on 8443 falls back (AllowInsecureFallback), reached with curl --cert/--key from a
pod and from the external client."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.unit.l7proxy.frontend_pki import Authority

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, service, wait_for

pytestmark = pytest.mark.netns
NS = "frontend-tls"
GW = "gateway.networking.k8s.io/v1"


def _files(where: Path, name: str, crt: bytes, key: bytes) -> tuple[str, str]:
    crt_file, key_file = where / f"{name}.crt", where / f"{name}.key"
    crt_file.write_bytes(crt)
    key_file.write_bytes(key)
    crt_file.chmod(0o644)
    key_file.chmod(0o644)  # read by the pod's curl; a throwaway test key
    return str(crt_file), str(key_file)


@pytest.fixture(scope="module")
def site(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    where = tmp_path_factory.mktemp("frontend-tls")
    where.chmod(0o755)
    server_ca, client_ca = Authority("server CA"), Authority("client CA")
    server = server_ca.issue("web.example")
    good = client_ca.issue("alice", client=True)
    rogue = Authority("rogue CA").issue("eve", client=True)
    (where / "server-ca.crt").write_bytes(server_ca.pem)
    (where / "server-ca.crt").chmod(0o644)
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
              "metadata": {"name": "web-tls", "namespace": NS},
              "data": {"tls.crt": base64.b64encode(server.crt).decode(),
                       "tls.key": base64.b64encode(server.key).decode()}}
    config_map = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "client-ca", "namespace": NS},
                  "data": {"ca.crt": client_ca.pem.decode()}}
    refs = [{"group": "", "kind": "ConfigMap", "name": "client-ca"}]
    tls = {"mode": "Terminate", "certificateRefs": [{"name": "web-tls"}]}
    gateway = {"apiVersion": GW, "kind": "Gateway", "metadata": {"name": "mtls", "namespace": NS},
               "spec": {"gatewayClassName": "tulle",
                        "tls": {"frontend": {
                            "default": {"validation": {"caCertificateRefs": refs}},
                            "perPort": [{"port": 8443, "tls": {"validation": {
                                "caCertificateRefs": refs, "mode": "AllowInsecureFallback"}}}]}},
                        "listeners": [
                            {"name": "strict", "port": 443, "protocol": "HTTPS", "tls": tls},
                            {"name": "fallback", "port": 8443, "protocol": "HTTPS", "tls": tls}]}}
    web = {"apiVersion": GW, "kind": "HTTPRoute", "metadata": {"name": "web", "namespace": NS},
           "spec": {"parentRefs": [{"name": "mtls"}], "hostnames": ["web.example"],
                    "rules": [{"backendRefs": [{"name": "echo", "port": 80}]}]}}
    apply(lab, namespace(NS), deployment(NS, "echo", 1, node="node2"), service(NS, "echo"),
          deployment(NS, "client", 1, node="node1"), secret, config_map, gateway, web)
    lab.wait_pods_ready(NS, 2, timeout=90)
    addresses = wait_for(lambda: (lab.get("gateways", NS)[0].get("status") or {}).get("addresses"),
                         timeout=30, what="the Gateway's address")
    info: dict[str, Any] = {
        "client": pods_of(lab, NS, "client")[0]["metadata"]["name"],
        "gateway": addresses[0]["value"], "ca": str(where / "server-ca.crt"),
        "good": _files(where, "good", good.crt, good.key),
        "rogue": _files(where, "rogue", rogue.crt, rogue.key),
    }
    wait_for(lambda: code(lab, info, 443, "good", pod=True) == "200", timeout=30,
             what="the HTTPS listener served with a client certificate")
    return info


def curl_args(site: dict[str, Any], port: int, cert: str | None) -> list[str]:
    args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
            "--resolve", f"web.example:{port}:{site['gateway']}", "--cacert", site["ca"]]
    if cert is not None:
        crt, key = site[cert]
        args += ["--cert", crt, "--key", key]
    return [*args, f"https://web.example:{port}/"]


def code(lab: Lab, site: dict[str, Any], port: int, cert: str | None, *, pod: bool) -> str:
    """The HTTP status curl got, or "000" when the handshake (or the connection) failed."""
    args = curl_args(site, port, cert)
    if pod:
        out: subprocess.CompletedProcess[str] = lab.exec(NS, site["client"], *args, check=False)
    else:
        out = lab.tulle("lab", "exec", "--external", "--", *args, check=False, timeout=30)
    return out.stdout.strip()


@pytest.mark.parametrize("pod", [True, False], ids=["pod", "external"])
def test_allow_valid_only_needs_a_certificate_of_the_ca(lab: Lab, site: dict[str, Any],
                                                        pod: bool) -> None:
    assert code(lab, site, 443, "good", pod=pod) == "200"
    assert code(lab, site, 443, None, pod=pod) == "000"
    assert code(lab, site, 443, "rogue", pod=pod) == "000"


@pytest.mark.parametrize("pod", [True, False], ids=["pod", "external"])
def test_allow_insecure_fallback_serves_without_a_valid_certificate(
    lab: Lab, site: dict[str, Any], pod: bool
) -> None:
    assert code(lab, site, 8443, None, pod=pod) == "200"
    assert code(lab, site, 8443, "rogue", pod=pod) == "200"
    assert code(lab, site, 8443, "good", pod=pod) == "200"


def test_gateway_status_reports_the_insecure_fallback(lab: Lab, site: dict[str, Any]) -> None:
    gw = [g for g in lab.get("gateways", NS) if g["metadata"]["name"] == "mtls"][0]
    conditions = {c["type"]: c for c in gw["status"]["conditions"]}
    insecure = conditions["InsecureFrontendValidationMode"]
    assert (insecure["status"], insecure["reason"]) == ("True", "ConfigurationChanged")
    for listener in gw["status"]["listeners"]:
        by_type = {c["type"]: c["status"] for c in listener["conditions"]}
        assert by_type["ResolvedRefs"] == by_type["Programmed"] == "True", listener
