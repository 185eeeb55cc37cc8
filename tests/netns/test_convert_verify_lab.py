"""`tulle convert --verify --lab NAME` in a live lab: the Ingresses (as class tulle) and the
converted Gateway (its own pool address) applied side by side in front of the lab's own echo
pods, the corpus replayed from the external client. A realistic multi-annotation set passes
with requests really compared; a set built to differ reports its known differences; nothing
applied is left behind; a missing backend Service is refused before anything is applied.

The module runs in a lab of its own, not the tier's shared one: a verify run applies and
deletes Gateways, Ingresses and pool addresses, and the tests that follow (the Gateway from
outside) must not depend on what it leaves in the kernel or the pool."""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from gatewayapi.ingress.labside import LABEL
from lab import lifecycle, network
from lab.topology import LB_POOL_CIDR

from .conftest import Lab, new_lab_env
from .test_datapath import apply, deployment, namespace, service

pytestmark = pytest.mark.netns
NS = "verify-lab"

# A shop on ingress-nginx: a TLS front end with the default ssl-redirect and an Exact
# /healthz, an API with CORS and a read timeout on /v1 beside plain /v2 and /docs, an
# admin host over TLS without the
# redirect (an Exact login page inside a Prefix), a moved blog, one Ingress of no class
# (the input's default class, nginx).
REALISTIC = f"""\
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
  annotations: {{ingressclass.kubernetes.io/is-default-class: "true"}}
spec: {{controller: k8s.io/ingress-nginx}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web, namespace: {NS}}}
spec:
  ingressClassName: nginx
  tls: [{{hosts: [www.example.com], secretName: www-tls}}]
  rules:
  - host: www.example.com
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 8080}}}}}}}}
      - {{path: /healthz, pathType: Exact, backend: {{service: {{name: admin, port: {{number: 80}}}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: api
  namespace: {NS}
  annotations:
    nginx.ingress.kubernetes.io/enable-cors: "true"
    nginx.ingress.kubernetes.io/cors-allow-origin: https://www.example.com
    nginx.ingress.kubernetes.io/proxy-read-timeout: "30"
spec:
  ingressClassName: nginx
  rules:
  - host: api.example.com
    http:
      paths:
      - {{path: /v1, pathType: Prefix, backend: {{service: {{name: api, port: {{number: 80}}}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: api-v2, namespace: {NS}}}
spec:
  ingressClassName: nginx
  rules:
  - host: api.example.com
    http:
      paths:
      - {{path: /v2, pathType: Prefix, backend: {{service: {{name: api, port: {{number: 80}}}}}}}}
      - {{path: /docs, pathType: ImplementationSpecific, backend: {{service: {{name: web, port: {{number: 8080}}}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: admin
  namespace: {NS}
  annotations: {{nginx.ingress.kubernetes.io/ssl-redirect: "false"}}
spec:
  tls: [{{hosts: [admin.example.com], secretName: admin-tls}}]
  rules:
  - host: admin.example.com
    http:
      paths:
      - {{path: /ui, pathType: Prefix, backend: {{service: {{name: admin, port: {{number: 80}}}}}}}}
      - {{path: /ui/login, pathType: Exact, backend: {{service: {{name: web, port: {{number: 8080}}}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: blog-moved
  namespace: {NS}
  annotations:
    nginx.ingress.kubernetes.io/permanent-redirect: https://blog.example.org/
spec:
  ingressClassName: nginx
  rules:
  - host: blog.example.com
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 8080}}}}}}}}
"""

# Built to differ: a defaultBackend (an Ingress sends a listed host's unmatched path there,
# the Gateway 404s) and a wildcard host (one label for an Ingress, any number for a Gateway).
DIFFER = f"""\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: site, namespace: {NS}}}
spec:
  ingressClassName: nginx
  defaultBackend: {{service: {{name: admin, port: {{number: 80}}}}}}
  rules:
  - host: app.example.com
    http:
      paths:
      - {{path: /api, pathType: Prefix, backend: {{service: {{name: api, port: {{number: 80}}}}}}}}
  - host: "*.apps.example.com"
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 8080}}}}}}}}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """This module's own two-node lab (shadows the tier's shared one)."""
    name = "test" + secrets.token_hex(3)
    state = tmp_path_factory.mktemp("tulle-verify-state")
    mp = pytest.MonkeyPatch()
    mp.setenv("TULLE_STATE_DIR", str(state))
    try:
        lifecycle.up(name, 2, lambda _m: None)
        yield Lab(name, new_lab_env(state, name))
    finally:
        lifecycle.down(name, lambda _m: None)
        mp.undo()
        assert network.lab_namespaces(f"tulle-{name}-") == []


@pytest.fixture(scope="module")
def backends(lab: Lab) -> None:
    apply(lab, namespace(NS), deployment(NS, "web", 1, node="node1"), service(NS, "web", 8080),
          deployment(NS, "api", 1, node="node2"), service(NS, "api"),
          deployment(NS, "admin", 1, node="node1"), service(NS, "admin"))
    lab.wait_pods_ready(NS, 3, timeout=90)


def verify(lab: Lab, manifest: str, *args: str) -> subprocess.CompletedProcess[str]:
    return lab.tulle("convert", "--verify", "--lab", lab.name, "-f", "-", *args,
                     input=manifest, check=False, timeout=400)


def leftovers(lab: Lab) -> list[str]:
    """Objects this command labelled, anywhere it applies them."""
    found = []
    for kind in ("ingresses", "httproutes", "secrets", "referencegrants"):
        found += [f"{kind}/{o['metadata']['name']}" for o in lab.get(kind, NS)
                  if LABEL in (o["metadata"].get("labels") or {})]
    found += [f"gateways/{o['metadata']['name']}" for ns in (NS, "default")
              for o in lab.get("gateways", ns) if LABEL in (o["metadata"].get("labels") or {})]
    return found


def by_request(stdout: str) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """The GET requests without headers of the JSON report, by (scheme, host, path)."""
    return {("GET", r["request"]["scheme"], r["request"]["host"], r["request"]["path"]): r
            for r in json.loads(stdout)["results"]
            if r["request"]["method"] == "GET" and not r["request"]["headers"]}


def test_a_realistic_multi_annotation_set_passes(lab: Lab, backends: None) -> None:
    out = verify(lab, REALISTIC, "-o", "json")
    assert out.returncode == 0, (out.stdout, out.stderr)
    body = json.loads(out.stdout)
    assert body["summary"]["different"] == 0 and body["summary"]["same"] >= 20, body["summary"]
    # both sides had an address of their own, from the pool
    sides = re.search(r"Ingress side at (\S+), Gateway side at (\S+) ", out.stderr)
    assert sides is not None, out.stderr
    pool = ipaddress.ip_network(LB_POOL_CIDR)
    assert sides[1] != sides[2]
    assert all(ipaddress.ip_address(a) in pool for a in sides.groups())
    # the classes were adapted, and said so
    assert "is served as the lab's class 'tulle'" in out.stderr
    got = by_request(out.stdout)
    for key, backend, path in [
        (("GET", "https", "www.example.com", "/any/deeper"), f"{NS}/web:8080", "/any/deeper"),
        (("GET", "https", "www.example.com", "/healthz"), f"{NS}/admin:8080", "/healthz"),
        (("GET", "http", "api.example.com", "/v2/deeper"), f"{NS}/api:8080", "/v2/deeper"),
        (("GET", "http", "api.example.com", "/docs"), f"{NS}/web:8080", "/docs"),
        (("GET", "https", "admin.example.com", "/ui/login"), f"{NS}/web:8080", "/ui/login"),
        (("GET", "https", "admin.example.com", "/ui/login/"), f"{NS}/admin:8080", "/ui/login/"),
    ]:
        outcome = got[key]
        assert outcome["verdict"] == "same", (key, outcome)
        assert outcome["ingress"]["backend"] == outcome["gateway"]["backend"] == backend, key
        assert outcome["ingress"]["backend path"] == path
    answered = [r for r in body["results"] if r["verdict"] == "same"
                and r["ingress"]["backend"] != "-" and r["ingress"]["status"] == "200"]
    assert {r["ingress"]["backend"] for r in answered} == {
        f"{NS}/web:8080", f"{NS}/api:8080", f"{NS}/admin:8080"}
    # ssl-redirect has a documented answer: the Gateway (in the lab) is held to nginx's 308
    healthz = got[("GET", "http", "www.example.com", "/healthz")]
    assert healthz["verdict"] == "same" and healthz["gateway"]["status"] == "308"
    assert not leftovers(lab)


def test_a_set_built_to_differ_reports_each_difference(lab: Lab, backends: None,
                                                       tmp_path: Any) -> None:
    requests = tmp_path / "requests.yaml"
    requests.write_text("- {host: app.example.com, path: /elsewhere, headers: {X-User: a}}\n")
    requests.chmod(0o644)
    out = verify(lab, DIFFER, "--requests", str(requests))
    assert out.returncode == 3, (out.stdout, out.stderr)
    text = out.stdout
    assert "DIFFERENT GET http://app.example.com/verify-unmatched" in text
    assert "status: Ingress 200  |  Gateway 404" in text
    assert f"backend: Ingress {NS}/admin:8080  |  Gateway -" in text
    assert "DIFFERENT GET http://app.example.com/elsewhere X-User: a  (user request)" in text
    assert "DIFFERENT GET http://two.one.apps.example.com/" in text
    assert f"backend: Ingress {NS}/admin:8080  |  Gateway {NS}/web:8080" in text
    assert "DIFFERENT GET http://one.apps.example.com/" not in text
    assert "DIFFERENT GET http://app.example.com/api " not in text
    assert not leftovers(lab)


def test_keep_leaves_both_sides_and_a_missing_backend_is_refused(lab: Lab, backends: None) -> None:
    missing = DIFFER.replace("name: api, port", "name: nowhere, port")
    out = verify(lab, missing)
    assert out.returncode == 1 and f"the lab has no Service {NS}/nowhere" in out.stderr, out
    assert not leftovers(lab)
    out = verify(lab, DIFFER, "--keep")
    assert out.returncode == 3, (out.stdout, out.stderr)
    try:
        kept = leftovers(lab)
        assert any(k.startswith("ingresses/site-verify-") for k in kept), kept
        assert any(k.startswith("gateways/nginx-verify-") for k in kept), kept
        assert "--keep: left in the lab" in out.stderr
    finally:
        for what in leftovers(lab):
            kind, name = what.split("/")
            ns = "default" if kind == "gateways" and not any(
                g["metadata"]["name"] == name for g in lab.get("gateways", NS)) else NS
            lab.tulle("delete", kind, name, "-n", ns, check=False)
    assert not leftovers(lab)
