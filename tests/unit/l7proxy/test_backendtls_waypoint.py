"""A waypoint on loopback routing to a Service port that a BackendTLSPolicy covers
(``Proxy.backend_tls``): the request reaches a TLS backend with a certificate from the
policy's CA (200); another CA, a plaintext backend, or a policy without a usable CA get 503
with a DROPPED flow, reason UPSTREAM_TLS_FAILED; a port without a policy stays plaintext."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

from agent.flows.flow import Verdict
from gatewayapi.backendtls import UpstreamTLS
from l7proxy.server import WaypointServer
from l7proxy.testing import gateway_config
from tests.unit.l7proxy.test_backendtls import CA, HOST, _serve_plaintext
from tests.unit.l7proxy.test_retry_connection_errors import get
from tests.unit.l7proxy.test_upstream_tls import _serve_keepalive, _server_context

ROUTE = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: main, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - backendRefs: [{name: secure, port: 8080}]
"""


def _through(
    context: ssl.SSLContext | None, tls: UpstreamTLS | None, *, http_only: bool = False
) -> tuple[int, list[Any]]:
    """GET through a waypoint to a backend served with ``context`` (None: plaintext;
    ``http_only``: one that answers a TLS ClientHello with an HTTP 400, as HTTP servers do)."""

    async def main() -> tuple[int, list[Any]]:
        backend = await (_serve_plaintext() if http_only else _serve_keepalive(context))
        port = backend.sockets[0].getsockname()[1]
        flows: list[Any] = []
        config = gateway_config(
            ROUTE, {"default/secure:8080": [("127.0.0.1", port)]}, services=("secure",)
        )
        server = WaypointServer(config, flow_sink=flows.extend)
        if tls is not None:
            server.proxy.backend_tls = {("default", "secure", 8080): tls}
        [listen] = await server.start()
        try:
            status, _ = await get(listen, "/")
            await asyncio.sleep(0.05)  # the flow is recorded after the answer
            return status, flows
        finally:
            await server.close()
            backend.close()

    return asyncio.run(asyncio.wait_for(main(), 30))


def _drops(flows: list[Any]) -> list[str]:
    return [f.drop_reason_desc for f in flows if f.verdict is Verdict.DROPPED]


def test_the_policys_ca_reaches_the_tls_backend(tmp_path: Path) -> None:
    ca = CA()
    status, flows = _through(_server_context(ca, tmp_path, HOST), UpstreamTLS("p", HOST, ca.pem))
    assert status == 200 and _drops(flows) == []


def test_another_ca_is_503_with_the_drop_reason(tmp_path: Path) -> None:
    status, flows = _through(_server_context(CA(), tmp_path, HOST),
                             UpstreamTLS("p", HOST, CA().pem))
    assert status == 503 and _drops(flows) == ["UPSTREAM_TLS_FAILED"]


def test_a_plaintext_backend_is_503(tmp_path: Path) -> None:
    status, flows = _through(None, UpstreamTLS("p", HOST, CA().pem), http_only=True)
    assert status == 503 and _drops(flows) == ["UPSTREAM_TLS_FAILED"]


def test_no_usable_ca_is_503_without_plaintext_fallback(tmp_path: Path) -> None:
    status, flows = _through(None, UpstreamTLS("p", HOST, b"", refused="ConfigMap gone"))
    assert status == 503 and _drops(flows) == ["UPSTREAM_TLS_FAILED"]


def test_without_a_policy_the_port_stays_plaintext(tmp_path: Path) -> None:
    status, flows = _through(None, None)
    assert status == 200 and _drops(flows) == []
