"""The running waypoint selects GAMMA consumer routes by the client's namespace (issue 9
item 3): a route in namespace x whose parent is Service y/api serves x's clients only;
everyone else keeps y's own (producer) routes."""

from __future__ import annotations

import asyncio
import json

from l7proxy.config import ListenerConfig
from l7proxy.server import WaypointServer
from l7proxy.testing import gateway_config, read_response, service
from lab.echo.responses import EchoContext
from lab.echo.server import EchoServer

ROUTES = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: producer, namespace: y}
spec:
  parentRefs: [{group: "", kind: Service, name: api, port: 8080}]
  rules: [{backendRefs: [{name: api, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: consumer, namespace: x}
spec:
  parentRefs: [{group: "", kind: Service, name: api, namespace: y, port: 8080}]
  rules:
  - backendRefs: [{name: api, namespace: y, port: 8080}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: x-consumer, value: x}]}}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: from-x, namespace: y}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: x}]
  to: [{group: "", kind: Service}]
"""


def test_consumer_routes_apply_to_their_namespace_only() -> None:
    async def main() -> None:
        echo = EchoServer(EchoContext(pod="api-1"), log=lambda _: None)
        [port] = await echo.start([0], "127.0.0.1")
        text = service("api", namespace="y", ip="10.96.0.30") + "---\n" + ROUTES
        config = gateway_config(text, {"y/api:8080": [("127.0.0.1", port)]})
        config.listeners = [ListenerConfig("127.0.0.1", 0)]
        config.original_destination = lambda client: ("10.96.0.30", 8080)
        caller = {"namespace": "x"}
        asked: list[str] = []

        def namespace_of(ip: str) -> str | None:
            asked.append(ip)
            return caller["namespace"]

        config.client_namespace = namespace_of
        server = WaypointServer(config)
        [listen] = await server.start()
        try:
            seen = {}
            for ns in ("x", "z", "y"):
                caller["namespace"] = ns
                reader, writer = await asyncio.open_connection("127.0.0.1", listen)
                writer.write(b"GET / HTTP/1.1\r\nHost: api.y\r\n\r\n")
                status, _, body = await asyncio.wait_for(read_response(reader), 5)
                writer.close()
                assert status == 200, (ns, body)
                seen[ns] = json.loads(body)["headers"].get("X-Consumer")
            assert seen == {"x": ["x"], "z": None, "y": None}
            assert asked and set(asked) == {"127.0.0.1"}
        finally:
            await server.close()
            await echo.close()

    asyncio.run(main())
