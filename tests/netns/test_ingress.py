"""Ingress served in a live lab: a pod reaches an IngressClass's address (from the status
the lab's controller writes) on 80 by Host and path and on 443 by SNI with the Secret's
certificate; the defaultBackend; 404; an Ingress of another class is not served; and the
attacks: a Host with a port, a trailing dot or mixed case, path traversal, a wildcard at
two labels, SNI/Host mismatch, a missing Secret (the handshake refused, an Event)."""

from __future__ import annotations

import base64
import json
import subprocess
from typing import Any

import pytest

from tests.unit.l7proxy.test_tls import CertificateAuthority

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, service, wait_for

pytestmark = pytest.mark.netns
NS = "ingress"
NET = "networking.k8s.io/v1"


def backend(name: str) -> dict[str, Any]:
    return {"service": {"name": name, "port": {"number": 80}}}


def paths(*entries: tuple[str, str, str]) -> dict[str, Any]:
    return {"paths": [{"path": p, "pathType": t, "backend": backend(b)} for p, t, b in entries]}


SITE = {
    "apiVersion": NET, "kind": "Ingress", "metadata": {"name": "site", "namespace": NS},
    "spec": {
        "ingressClassName": "tulle",
        "tls": [{"hosts": ["web.example", "x.wild.example"], "secretName": "web-tls"},
                {"hosts": ["broken.example"], "secretName": "no-such-secret"}],
        "rules": [
            {"host": "web.example", "http": paths(("/app", "Prefix", "alpha"),
                                                  ("/api", "Exact", "beta"))},
            {"host": "*.wild.example", "http": paths(("/", "Prefix", "beta"))},
            {"host": "broken.example", "http": paths(("/", "Prefix", "beta"))},
        ],
    },
}
THEIRS = {
    "apiVersion": NET, "kind": "Ingress", "metadata": {"name": "theirs", "namespace": NS},
    "spec": {"ingressClassName": "other",
             "rules": [{"host": "theirs.example", "http": paths(("/", "Prefix", "alpha"))}]},
}
OTHER_CLASS = {"apiVersion": NET, "kind": "IngressClass", "metadata": {"name": "other"},
               "spec": {"controller": "example.com/other-controller"}}
FALLBACK = {  # no class: the lab's default IngressClass (tulle) serves it
    "apiVersion": NET, "kind": "Ingress", "metadata": {"name": "fallback", "namespace": NS},
    "spec": {"defaultBackend": backend("beta")},
}


@pytest.fixture(scope="module")
def site(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    ca = CertificateAuthority()
    issued = ca.issue("web.example", "x.wild.example")
    ca_file = tmp_path_factory.mktemp("ingress-tls") / "ca.crt"
    ca_file.write_bytes(ca.pem)
    ca_file.parent.chmod(0o755)
    ca_file.chmod(0o644)
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
              "metadata": {"name": "web-tls", "namespace": NS},
              "data": {"tls.crt": base64.b64encode(issued.crt).decode(),
                       "tls.key": base64.b64encode(issued.key).decode()}}
    apply(lab, namespace(NS), deployment(NS, "alpha", 1, node="node2"), service(NS, "alpha"),
          deployment(NS, "beta", 1, node="node1"), service(NS, "beta"),
          deployment(NS, "client", 1, node="node1"), secret, OTHER_CLASS, SITE, THEIRS)
    lab.wait_pods_ready(NS, 3, timeout=90)
    client = pods_of(lab, NS, "client")[0]["metadata"]["name"]
    lb = wait_for(lambda: ingress_status(lab, "site"), timeout=30, what="the Ingress's address")
    info = {"client": client, "address": lb[0]["ip"], "ca": str(ca_file)}
    wait_for(lambda: get(lab, info, "web.example", "/app/ready")[0] == "200", timeout=30,
             what="the Ingress is served")
    return info


def ingress_status(lab: Lab, name: str) -> list[dict[str, Any]]:
    found = [i for i in lab.get("ingresses", NS) if i["metadata"]["name"] == name]
    assert found, f"Ingress {name} not found"
    return list(((found[0].get("status") or {}).get("loadBalancer") or {}).get("ingress") or [])


def get(lab: Lab, site: dict[str, Any], host: str, path: str,
        *args: str) -> tuple[str, dict[str, Any] | None]:
    """(status code, the echo's JSON) of http://ADDRESS/PATH with Host ``host``."""
    out = lab.exec(NS, site["client"], "curl", "-s", "--max-time", "5", "--path-as-is",
                   "-H", f"Host: {host}", "-w", "\n%{http_code}", *args,
                   f"http://{site['address']}{path}", check=False)
    body, _, code = out.stdout.rpartition("\n")
    try:
        return code, json.loads(body)
    except ValueError:
        return code, None


def https(lab: Lab, site: dict[str, Any], sni: str, path: str,
          *args: str) -> subprocess.CompletedProcess[str]:
    return lab.exec(NS, site["client"], "curl", "-s", "--max-time", "5",
                    "--resolve", f"{sni}:443:{site['address']}", "--cacert", site["ca"],
                    "-w", "\n%{http_code} %{ssl_verify_result}", *args,
                    f"https://{sni}{path}", check=False)


def pod_of(echoed: dict[str, Any] | None) -> str:
    assert echoed is not None
    return str(echoed["pod"]).rsplit("-", 2)[0]


def test_status_names_the_address_only_for_tulles_ingresses(lab: Lab, site: dict[str, Any]) -> None:
    assert ingress_status(lab, "site") == [{"ip": site["address"]}]
    assert ingress_status(lab, "theirs") == []


def test_hosts_and_paths(lab: Lab, site: dict[str, Any]) -> None:
    code, echoed = get(lab, site, "web.example", "/app/x?q=1")
    assert code == "200" and pod_of(echoed) == "alpha" and echoed["path"] == "/app/x?q=1"
    code, echoed = get(lab, site, "web.example", "/api")
    assert code == "200" and pod_of(echoed) == "beta"
    assert get(lab, site, "web.example", "/api/more")[0] == "404"  # Exact; no defaultBackend
    code, echoed = get(lab, site, "x.wild.example", "/anything")
    assert code == "200" and pod_of(echoed) == "beta"


@pytest.mark.parametrize("host", ["web.example:80", "web.example.", "WEB.Example"])
def test_host_with_port_trailing_dot_or_case_is_the_same_host(lab: Lab, site: dict[str, Any],
                                                               host: str) -> None:
    code, echoed = get(lab, site, host, "/app")
    assert code == "200" and pod_of(echoed) == "alpha"


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/api/../app/x", "/app/x"), ("/api/%2e%2e/app/x", "/app/x"), ("//app//x", "/app/x")],
)
def test_traversal_is_routed_and_forwarded_normalized(lab: Lab, site: dict[str, Any], path: str,
                                                      expected: str) -> None:
    code, echoed = get(lab, site, "web.example", path)
    assert code == "200" and pod_of(echoed) == "alpha" and echoed["path"] == expected


def test_encoded_slash_is_refused(lab: Lab, site: dict[str, Any]) -> None:
    assert get(lab, site, "web.example", "/api%2f..%2fapp")[0] == "400"


def test_wildcard_covers_one_label_and_other_classes_are_not_served(lab: Lab, site: dict[str, Any]) -> None:
    assert get(lab, site, "y.x.wild.example", "/")[0] == "404"
    assert get(lab, site, "theirs.example", "/")[0] == "404"


def test_https_by_sni_with_the_secrets_certificate(lab: Lab, site: dict[str, Any]) -> None:
    out = https(lab, site, "web.example", "/app/secure")
    assert out.returncode == 0, out
    body, _, status = out.stdout.rpartition("\n")
    assert status == "200 0"  # 200, and the chain verified against our CA for web.example
    echoed = json.loads(body)
    assert pod_of(echoed) == "alpha" and echoed["headers"]["X-Forwarded-Proto"] == ["https"]


def test_sni_host_mismatch_gets_421(lab: Lab, site: dict[str, Any]) -> None:
    out = https(lab, site, "web.example", "/", "-H", "Host: theirs.example")
    assert out.stdout.endswith("421 0"), out


def test_missing_secret_refuses_the_handshake_and_says_why(lab: Lab, site: dict[str, Any]) -> None:
    out = https(lab, site, "broken.example", "/")
    assert out.returncode != 0 and not out.stdout.startswith("{"), out  # never served
    events = wait_for(
        lambda: [e for e in lab.get("events", NS) if e.get("reason") == "InvalidTLSSecret"],
        what="the InvalidTLSSecret Event",
    )
    assert "Secret ingress/no-such-secret not found" in events[0]["message"]
    assert events[0]["involvedObject"]["name"] == "site"


def test_default_backend_of_a_classless_ingress(lab: Lab, site: dict[str, Any]) -> None:
    apply(lab, FALLBACK)
    wait_for(lambda: ingress_status(lab, "fallback") == [{"ip": site["address"]}],
             what="the classless Ingress served by the default class")
    wait_for(lambda: get(lab, site, "unknown.example", "/")[0] == "200",
             what="the defaultBackend served")
    code, echoed = get(lab, site, "web.example", "/api/more")  # no path of the host group
    assert code == "200" and pod_of(echoed) == "beta"
    code, echoed = get(lab, site, "theirs.example", "/")  # still not the other class's rule
    assert code == "200" and pod_of(echoed) == "beta"
