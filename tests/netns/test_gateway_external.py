"""North-south in a live lab: the external client (outside the cluster: no Tulle, no pod or
service routes) reaches a Gateway's HTTP and HTTPS listeners and an Ingress at their
LoadBalancer pool addresses, which one node announces by ARP and serves with its own waypoint
(bpf/lib/nodeport.h). The backends see the client's real address in X-Forwarded-For, whether
they run on the announcing node or another; a forged X-Forwarded-For is replaced; a port with
no listener at the Gateway's address reaches no backend; nor do pod and ClusterIP addresses."""

from __future__ import annotations

import base64
import ipaddress
import json
import subprocess
from typing import Any

import pytest

from lab.topology import EXTERNAL_CLIENT_IP, LB_POOL_CIDR
from tests.unit.l7proxy.test_tls import CertificateAuthority

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, service, wait_for

pytestmark = pytest.mark.netns
NS = "north-south"
GW = "gateway.networking.k8s.io/v1"
CLIENT = str(EXTERNAL_CLIENT_IP)


def rule(path: str, backend: str) -> dict[str, Any]:
    return {"matches": [{"path": {"type": "PathPrefix", "value": path}}],
            "backendRefs": [{"name": backend, "port": 80}]}


def ingress_paths(backend: str) -> dict[str, Any]:
    return {"paths": [{"path": "/", "pathType": "Prefix",
                       "backend": {"service": {"name": backend, "port": {"number": 80}}}}]}


@pytest.fixture(scope="module")
def site(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    ca = CertificateAuthority()
    issued = ca.issue("web.example", "shop.example")
    ca_file = tmp_path_factory.mktemp("north-south") / "ca.crt"
    ca_file.write_bytes(ca.pem)
    ca_file.parent.chmod(0o755)
    ca_file.chmod(0o644)
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
              "metadata": {"name": "web-tls", "namespace": NS},
              "data": {"tls.crt": base64.b64encode(issued.crt).decode(),
                       "tls.key": base64.b64encode(issued.key).decode()}}
    gateway = {"apiVersion": GW, "kind": "Gateway", "metadata": {"name": "edge", "namespace": NS},
               "spec": {"gatewayClassName": "tulle", "listeners": [
                   {"name": "http", "port": 80, "protocol": "HTTP"},
                   {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "web.example",
                    "tls": {"mode": "Terminate", "certificateRefs": [{"name": "web-tls"}]}}]}}
    # One backend per node: whichever node announces the address, one is local, one remote.
    web = {"apiVersion": GW, "kind": "HTTPRoute", "metadata": {"name": "web", "namespace": NS},
           "spec": {"parentRefs": [{"name": "edge"}], "hostnames": ["web.example"],
                    "rules": [rule("/one", "one"), rule("/two", "two")]}}
    shop = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "shop", "namespace": NS},
            "spec": {"ingressClassName": "tulle",
                     "tls": [{"hosts": ["shop.example"], "secretName": "web-tls"}],
                     "rules": [{"host": "shop.example", "http": ingress_paths("one")}]}}
    apply(lab, namespace(NS), deployment(NS, "one", 1, node="node1"), service(NS, "one"),
          deployment(NS, "two", 1, node="node2"), service(NS, "two"), secret, gateway, web, shop)
    lab.wait_pods_ready(NS, 2, timeout=90)
    addresses = wait_for(lambda: (lab.get("gateways", NS)[0].get("status") or {}).get("addresses"),
                         timeout=30, what="the Gateway's address")
    ingress = wait_for(lambda: ingress_address(lab, "shop"), timeout=30, what="the Ingress's address")
    info = {"gateway": addresses[0]["value"], "ingress": ingress, "ca": str(ca_file)}
    wait_for(lambda: get(lab, info["gateway"], "web.example", "/one/ready")[0] == "200",
             timeout=30, what="the Gateway served to the external client")
    wait_for(lambda: get(lab, info["ingress"], "shop.example", "/ready")[0] == "200",
             timeout=30, what="the Ingress served to the external client")
    return info


def ingress_address(lab: Lab, name: str) -> str | None:
    found = [i for i in lab.get("ingresses", NS) if i["metadata"]["name"] == name]
    assert found, f"Ingress {name} not found"
    entries = ((found[0].get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return entries[0]["ip"] if entries else None


def external(lab: Lab, *cmd: str) -> subprocess.CompletedProcess[str]:
    return lab.tulle("lab", "exec", "--external", "--", *cmd, check=False, timeout=30)


def get(lab: Lab, address: str, host: str, path: str, *args: str,
        port: int = 80) -> tuple[str, dict[str, Any] | None]:
    """(status code, the echo's JSON) of http://ADDRESS:PORT/PATH with Host ``host``, from
    outside the cluster."""
    out = external(lab, "curl", "-s", "--max-time", "5", "-H", f"Host: {host}",
                   "-w", "\n%{http_code}", *args, f"http://{address}:{port}{path}")
    body, _, code = out.stdout.rpartition("\n")
    try:
        return code, json.loads(body)
    except ValueError:
        return code, None


def https(lab: Lab, site: dict[str, Any], address: str, sni: str,
          path: str) -> subprocess.CompletedProcess[str]:
    return external(lab, "curl", "-s", "--max-time", "5",
                    "--resolve", f"{sni}:443:{address}", "--cacert", site["ca"],
                    "-w", "\n%{http_code} %{ssl_verify_result}", f"https://{sni}{path}")


def pod_of(echoed: dict[str, Any] | None) -> str:
    assert echoed is not None
    return str(echoed["pod"]).rsplit("-", 2)[0]


def test_addresses_come_from_the_pool(site: dict[str, Any]) -> None:
    pool = ipaddress.ip_network(LB_POOL_CIDR)
    assert ipaddress.ip_address(site["gateway"]) in pool
    assert ipaddress.ip_address(site["ingress"]) in pool
    assert site["gateway"] != site["ingress"]


def test_the_gateway_address_is_its_own_load_balancer_services(lab: Lab,
                                                                site: dict[str, Any]) -> None:
    """tulle-controller made the Gateway a Service of type LoadBalancer (no selector, so no
    endpoints) and the address came through it; the agent programs no entry of its own for
    that address (which would drop every client), so the Gateway serves there: the requests
    of the other tests here reach it, and this one does too."""
    def addressed() -> dict[str, Any] | None:  # the Service's status comes a round after it
        svc = next((s for s in lab.get("services", NS)
                    if s["metadata"]["name"] == "tulle-gateway-edge"), None)
        ok = svc is not None and (svc.get("status") or {}).get("loadBalancer", {}).get("ingress")
        return svc if ok else None
    svc = wait_for(addressed, timeout=30, what="the Gateway's Service addressed")
    gw = lab.get("gateways", NS)[0]
    assert svc["spec"]["type"] == "LoadBalancer" and not svc["spec"].get("selector")
    assert svc["metadata"]["labels"]["gateway.networking.k8s.io/gateway-name"] == "edge"
    [owner] = svc["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == ("Gateway", gw["metadata"]["uid"])
    assert [i["ip"] for i in svc["status"]["loadBalancer"]["ingress"]] == [site["gateway"]]
    assert sorted(p["port"] for p in svc["spec"]["ports"]) == [80, 443]
    code, echoed = get(lab, site["gateway"], "web.example", "/two/through-the-service")
    assert code == "200" and pod_of(echoed) == "two"


def test_gateway_http_by_host(lab: Lab, site: dict[str, Any]) -> None:
    code, echoed = get(lab, site["gateway"], "web.example", "/one/x?q=1")
    assert code == "200" and pod_of(echoed) == "one"
    assert echoed is not None and echoed["path"] == "/one/x?q=1"
    assert echoed["headers"]["X-Forwarded-Proto"] == ["http"]


def test_gateway_unknown_host_gets_404(lab: Lab, site: dict[str, Any]) -> None:
    code, echoed = get(lab, site["gateway"], "nobody.example", "/one")
    assert code == "404" and echoed is None


def test_gateway_https_by_sni_with_the_secrets_certificate(lab: Lab, site: dict[str, Any]) -> None:
    out = https(lab, site, site["gateway"], "web.example", "/two/secure")
    assert out.returncode == 0, out
    body, _, status = out.stdout.rpartition("\n")
    assert status == "200 0"  # 200, and the chain verified against our CA for web.example
    echoed = json.loads(body)
    assert pod_of(echoed) == "two" and echoed["headers"]["X-Forwarded-Proto"] == ["https"]


@pytest.mark.parametrize("backend", ["one", "two"])  # one on each node
def test_backends_see_the_external_clients_address(lab: Lab, site: dict[str, Any],
                                                    backend: str) -> None:
    code, echoed = get(lab, site["gateway"], "web.example", f"/{backend}/who")
    assert code == "200" and pod_of(echoed) == backend
    assert echoed is not None and echoed["headers"]["X-Forwarded-For"] == [CLIENT]


def test_a_forged_x_forwarded_for_is_replaced(lab: Lab, site: dict[str, Any]) -> None:
    code, echoed = get(lab, site["gateway"], "web.example", "/two/who",
                       "-H", "X-Forwarded-For: 203.0.113.9, 10.244.1.5")
    assert code == "200" and echoed is not None
    assert echoed["headers"]["X-Forwarded-For"] == [CLIENT]


@pytest.mark.parametrize("port", [8080, 9090])  # the pods' port, and one nobody serves
def test_a_port_with_no_listener_reaches_no_backend(lab: Lab, site: dict[str, Any],
                                                    port: int) -> None:
    out = external(lab, "curl", "-s", "--max-time", "3", "-H", "Host: web.example",
                   f"http://{site['gateway']}:{port}/one")
    assert out.returncode != 0 and out.stdout == "", out  # refused, reset or dropped


def test_pods_and_cluster_ips_are_not_reachable_from_outside(lab: Lab, site: dict[str, Any]) -> None:
    pod = pods_of(lab, NS, "one")[0]
    (svc,) = [s for s in lab.get("services", NS) if s["metadata"]["name"] == "one"]
    for address in (pod["status"]["podIP"], svc["spec"]["clusterIP"]):
        for port in (80, 8080):
            out = external(lab, "curl", "-s", "--max-time", "3", f"http://{address}:{port}/")
            assert out.returncode != 0 and out.stdout == "", (address, port, out)


def test_ingress_http_and_https_by_sni(lab: Lab, site: dict[str, Any]) -> None:
    code, echoed = get(lab, site["ingress"], "shop.example", "/cart")
    assert code == "200" and pod_of(echoed) == "one"
    assert echoed is not None and echoed["headers"]["X-Forwarded-For"] == [CLIENT]
    out = https(lab, site, site["ingress"], "shop.example", "/cart")
    assert out.returncode == 0, out
    body, _, status = out.stdout.rpartition("\n")
    assert status == "200 0"
    echoed = json.loads(body)
    assert pod_of(echoed) == "one" and echoed["headers"]["X-Forwarded-Proto"] == ["https"]
