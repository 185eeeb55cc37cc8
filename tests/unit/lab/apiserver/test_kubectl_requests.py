"""What kubectl asks of the lab API server for one `kubectl apply` (its -v=6 request log):
discovery in two requests on an empty cache, OpenAPI group-version documents from its HTTP
cache afterwards, and strategic merge patches computed from the OpenAPI v3 schemas (no
/openapi/v2), which must merge lists as the server does."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.control.kubectl_breakdown import Timed, category, parse_requests
from lab.apiserver.__main__ import bootstrap
from lab.apiserver.app import Api
from lab.apiserver.certs import credentials, write_kubeconfig
from lab.apiserver.server import ApiServer, tls_context
from lab.store import Store
from tests.unit.lab.apiserver.test_kubectl import PYPI_KUBECTL

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
CONTAINERS
"""
TWO = """\
      - name: web
        image: echo
        env: [{name: MODE, value: fast}, {name: LEVEL, value: "1"}]
      - name: sidecar
        image: echo"""
ONE = """\
      - name: web
        image: echo
        env: [{name: MODE, value: slow}]"""


def kubectl(
    kubeconfig: Path, workdir: Path, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(PYPI_KUBECTL), *args, "--cache-dir", str(workdir / "cache")],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
    )
    assert done.returncode == 0, done.stderr
    return done


def asked(log: str) -> list[str]:
    return [category(method, path) for method, path, _, _ in parse_requests(log)]


@dataclass
class Served:
    store: Store
    kubeconfig: Path
    timed: Timed


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A lab API server whose every request is recorded (``Timed``)."""
    creds = credentials(tmp_path / "state")
    store = Store(tmp_path / "store.db")
    bootstrap(store)
    api = Api(store, frozenset({creds.token}))
    timed = Timed(api)
    server = ApiServer(api, tls_context(creds.server_cert, creds.server_key)).start()
    try:
        yield Served(
            store, write_kubeconfig(tmp_path / "kubeconfig", "t", server.url, creds), timed
        )
    finally:
        server.stop()
        store.close()


def test_apply_asks_for_discovery_once_and_openapi_from_its_cache(
    served: Served, tmp_path: Path
) -> None:
    kubeconfig = served.kubeconfig
    first = kubectl(
        kubeconfig,
        tmp_path,
        "apply",
        "-f",
        "-",
        "-v=6",
        stdin=DEPLOYMENT.replace("CONTAINERS", TWO),
    )
    requests = asked(first.stderr)
    # Aggregated discovery: /api and /apis, not one request per group-version.
    assert requests.count("discovery /api") == requests.count("discovery /apis") == 1
    assert "discovery group-version" not in requests
    assert "openapi v2" not in requests  # the strategic merge patch comes from OpenAPI v3

    second = kubectl(
        kubeconfig,
        tmp_path,
        "apply",
        "-f",
        "-",
        "-v=6",
        stdin=DEPLOYMENT.replace("CONTAINERS", ONE),
    )
    requests = asked(second.stderr)
    assert "discovery /apis" not in requests  # kubectl's discovery cache
    assert "PATCH object" in requests and "openapi v2" not in requests

    # The patch kubectl computed merges containers and env by name, as the server does.
    got = json.loads(kubectl(kubeconfig, tmp_path, "get", "deployment", "web", "-o", "json").stdout)
    containers = got["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["web"]
    assert containers[0]["env"] == [{"name": "MODE", "value": "slow"}]


def test_openapi_documents_come_from_kubectls_http_cache(served: Served, tmp_path: Path) -> None:
    slice_ = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "s", "namespace": "default"},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.1.0.1"]}],
    }
    kubectl(served.kubeconfig, tmp_path, "apply", "-f", "-", stdin=json.dumps(slice_))
    first = [path for _, path, _ in served.timed.take()]
    assert "/openapi/v3/apis/discovery.k8s.io/v1" in first
    slice_["endpoints"] = [{"addresses": ["10.1.0.2"]}]
    kubectl(served.kubeconfig, tmp_path, "apply", "-f", "-", stdin=json.dumps(slice_))
    second = [(method, path) for method, path, _ in served.timed.take()]
    # The group-version document came from kubectl's HTTP cache (immutable under its hash);
    # only the index (which names the current hashes) and the object itself reached us.
    assert [p for _, p in second if p.startswith("/openapi")] == ["/openapi/v3"]
    assert ("PATCH", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/s") in second
    assert served.store.get("EndpointSlice", "default", "s")["endpoints"][0]["addresses"] == [
        "10.1.0.2"
    ]
