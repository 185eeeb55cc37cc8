"""HTTPS on a Gateway in a live lab: a listener on 443 terminating TLS with a certificate
from a kubernetes.io/tls Secret (SNI-selected), next to a plain HTTP listener on 80, both
reached from a pod through the datapath's redirection to the node's waypoint."""

from __future__ import annotations

import base64
import json
import subprocess
from typing import Any

import pytest

from tests.unit.l7proxy.test_tls import CertificateAuthority

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, service, wait_for
from .test_waypoint import prefix, route

pytestmark = pytest.mark.netns
NS = "mesh-tls"


@pytest.fixture(scope="module")
def site(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    ca = CertificateAuthority()
    issued = ca.issue("web.example")
    ca_file = tmp_path_factory.mktemp("tls") / "ca.crt"
    ca_file.write_bytes(ca.pem)
    ca_file.parent.chmod(0o755)
    ca_file.chmod(0o644)
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
              "metadata": {"name": "web-tls", "namespace": NS},
              "data": {"tls.crt": base64.b64encode(issued.crt).decode(),
                       "tls.key": base64.b64encode(issued.key).decode()}}
    gateway = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "web", "namespace": NS},
               "spec": {"gatewayClassName": "tulle", "listeners": [
                   {"name": "http", "port": 80, "protocol": "HTTP"},
                   {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "web.example",
                    "tls": {"mode": "Terminate", "certificateRefs": [{"name": "web-tls"}]}}]}}
    site_route = route("site", {"name": "web"}, [{"matches": prefix("/"), "backendRefs": [
        {"name": "echo", "port": 80}]}], hostnames=["web.example"])
    site_route["metadata"]["namespace"] = NS
    apply(lab, namespace(NS), deployment(NS, "echo", 1, node="node2"), service(NS, "echo"),
          deployment(NS, "client", 1, node="node1"), secret, gateway, site_route)
    lab.wait_pods_ready(NS, 2, timeout=90)
    client = pods_of(lab, NS, "client")[0]["metadata"]["name"]
    gw = wait_for(lambda: (lab.get("gateways", NS)[0].get("status") or {}).get("addresses"),
                  what="gateway address")
    info = {"client": client, "gateway": gw[0]["value"], "ca": str(ca_file)}
    wait_for(lambda: https(lab, info, "/ready").returncode == 0, timeout=30,
             what="the HTTPS listener is served")
    return info


def https(lab: Lab, site: dict[str, Any], path: str, *args: str) -> subprocess.CompletedProcess[str]:
    return lab.exec(NS, site["client"], "curl", "-s", "--fail", "--max-time", "5",
                    "--resolve", f"web.example:443:{site['gateway']}", "--cacert", site["ca"],
                    *args, f"https://web.example{path}", check=False)


def test_https_listener_terminates_tls_with_the_secret_certificate(lab: Lab, site: dict[str, Any]) -> None:
    out = https(lab, site, "/secure", "-w", "\n%{http_code} %{ssl_verify_result}")
    assert out.returncode == 0, out
    body, _, status = out.stdout.rpartition("\n")
    assert status == "200 0"  # 200, and the chain verified against our CA for web.example
    echoed = json.loads(body)
    assert echoed["pod"].startswith("echo") and echoed["path"] == "/secure"
    assert echoed["headers"]["X-Forwarded-Proto"] == ["https"]


def test_plain_http_listener_still_works(lab: Lab, site: dict[str, Any]) -> None:
    out = lab.exec(NS, site["client"], "curl", "-s", "--max-time", "5", "-H", "Host: web.example",
                   f"http://{site['gateway']}/plain", check=False)
    assert out.returncode == 0, out
    echoed = json.loads(out.stdout)
    assert echoed["path"] == "/plain" and echoed["headers"]["X-Forwarded-Proto"] == ["http"]


def test_https_host_of_no_listener_gets_421(lab: Lab, site: dict[str, Any]) -> None:
    out = https(lab, site, "/", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: other.example")
    assert out.stdout == "421", out


def test_gateway_status_reports_both_listeners_programmed(lab: Lab, site: dict[str, Any]) -> None:
    gw = lab.get("gateways", NS)[0]
    listeners = {entry["name"]: entry for entry in gw["status"]["listeners"]}
    for name in ("http", "https"):
        conditions = {c["type"]: c["status"] for c in listeners[name]["conditions"]}
        assert conditions["Programmed"] == "True" and conditions["ResolvedRefs"] == "True"
        assert listeners[name]["attachedRoutes"] == 1

