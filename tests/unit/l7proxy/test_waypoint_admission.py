"""What the waypoint admits behind transparent redirection (issue 9 item 2): only
connections the datapath redirected (an original destination exists), parents only from
that destination (never the Host header), and only backends NetworkPolicy lets the client
reach (403 and a POLICY_DENIED flow otherwise; the backend never sees the request)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from agent.flows.flow import Flow, Verdict
from l7proxy.config import ListenerConfig, WaypointConfig
from l7proxy.server import WaypointServer
from l7proxy.testing import gateway_config, read_response, service
from lab.echo.responses import EchoContext
from lab.echo.server import EchoServer

GAMMA = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mesh, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 8080}]
  rules:
  - backendRefs: [{name: web, port: 8080}]
    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 8080}}}]
"""
VIP = ("10.96.0.10", 8080)
OTHER_VIP = ("10.96.0.99", 8080)  # dialled, but no Service: no parent


class Sink:
    def __init__(self) -> None:
        self.flows: list[Flow] = []

    def __call__(self, flows: Sequence[Flow]) -> None:
        self.flows.extend(flows)


async def _echo(pod: str, seen: list[str]) -> tuple[EchoServer, int]:
    echo = EchoServer(EchoContext(pod=pod), log=seen.append)
    [port] = await echo.start([0], "127.0.0.1")
    return echo, port


def _config(web: list[tuple[str, int]], shadow: list[tuple[str, int]]) -> WaypointConfig:
    text = service("web", ip=VIP[0]) + service("shadow") + service("other") + "---\n" + GAMMA
    config = gateway_config(
        text,
        {"default/web:8080": web, "default/shadow:8080": shadow,
         "default/other:8080": web},
    )
    config.listeners = [ListenerConfig("127.0.0.1", 0)]
    return config


async def _get(port: int, host: bytes = b"web") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /x HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    try:
        status, _, body = await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()
    return status, body


def test_a_connection_the_datapath_did_not_redirect_is_reset_and_recorded() -> None:
    async def main() -> None:
        seen: list[str] = []
        echo, port = await _echo("web-1", seen)
        config = _config([("127.0.0.1", port)], [])
        config.original_destination = lambda client: None  # no l7_orig_dst_v1 entry
        sink = Sink()
        server = WaypointServer(config, flow_sink=sink)
        [listen] = await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", listen)
            writer.write(b"GET / HTTP/1.1\r\nHost: web.default.svc.cluster.local:8080\r\n\r\n")
            data = b""
            try:
                data = await asyncio.wait_for(reader.read(), 5)
            except ConnectionResetError:
                pass
            assert data == b""  # no answer at all: the connection is reset
            writer.close()
            server.flows.flush()
            (flow,) = sink.flows
            assert flow.verdict == Verdict.DROPPED
            assert flow.drop_reason_desc == "WAYPOINT_NOT_REDIRECTED"
            assert flow.ip.source == "127.0.0.1"
            assert not [line for line in seen if "Echoing" in line]
        finally:
            await server.close()
            await echo.close()

    asyncio.run(main())


def test_behind_redirection_the_host_header_never_chooses_the_service() -> None:
    async def main() -> None:
        seen: list[str] = []
        echo, port = await _echo("web-1", seen)
        config = _config([("127.0.0.1", port)], [])
        config.original_destination = lambda client: OTHER_VIP
        server = WaypointServer(config)
        [listen] = await server.start()
        try:
            status, _ = await _get(listen, b"web.default.svc.cluster.local:8080")
            assert status == 404
            assert not [line for line in seen if "Echoing" in line]
        finally:
            await server.close()
            await echo.close()

    asyncio.run(main())


def test_policy_denied_backend_gets_403_a_dropped_flow_and_never_the_request() -> None:
    async def main() -> None:
        seen: list[str] = []
        echo, port = await _echo("web-1", seen)
        shadow_seen: list[str] = []
        shadow, shadow_port = await _echo("shadow-1", shadow_seen)
        config = _config([("127.0.0.1", port)], [("127.0.0.1", shadow_port)])
        config.original_destination = lambda client: VIP
        judged: list[tuple[tuple[str, int], tuple[str, int]]] = []

        def admits(client: tuple[str, int], backend: tuple[str, int]) -> bool:
            judged.append((client, backend))
            return False

        config.admits = admits
        sink = Sink()
        server = WaypointServer(config, flow_sink=sink)
        [listen] = await server.start()
        try:
            status, body = await _get(listen)
            assert status == 403, body
            assert judged and judged[0][0][0] == "127.0.0.1"
            assert judged[0][1] == ("127.0.0.1", port)
            await asyncio.sleep(0.2)
            assert not [line for line in seen if "Echoing" in line]
            assert not [line for line in shadow_seen if "Echoing" in line]  # nor a mirror
            server.flows.flush()
            (flow,) = sink.flows
            assert flow.verdict == Verdict.DROPPED
            assert flow.drop_reason_desc == "POLICY_DENIED"
            assert flow.l7 is not None and flow.l7.http is not None and flow.l7.http.code == 403
        finally:
            await server.close()
            await echo.close()
            await shadow.close()

    asyncio.run(main())


def test_only_admitted_endpoints_are_picked() -> None:
    async def main() -> None:
        seen_a: list[str] = []
        seen_b: list[str] = []
        a, port_a = await _echo("web-a", seen_a)
        b, port_b = await _echo("web-b", seen_b)
        config = _config([("127.0.0.1", port_a), ("127.0.0.1", port_b)], [])
        config.original_destination = lambda client: VIP
        config.admits = lambda client, backend: backend[1] == port_b
        server = WaypointServer(config)
        [listen] = await server.start()
        try:
            pods = set()
            for _ in range(4):
                status, body = await _get(listen)
                assert status == 200
                pods.add(json.loads(body)["pod"])
            assert pods == {"web-b"}
            assert not [line for line in seen_a if "Echoing" in line]
            assert [line for line in seen_b if "Echoing" in line]
        finally:
            await server.close()
            await a.close()
            await b.close()

    asyncio.run(main())


def test_an_admitted_requests_flow_names_the_policies_of_the_endpoint_it_reached() -> None:
    """Each flow names what allowed the client to reach the endpoint the request went to
    (``policy_names``, cached by the agent per pair); a POLICY_DENIED one names none."""
    async def main() -> None:
        seen: list[str] = []
        a, port_a = await _echo("web-a", seen)
        b, port_b = await _echo("web-b", seen)
        config = _config([("127.0.0.1", port_a), ("127.0.0.1", port_b)], [])
        config.original_destination = lambda client: VIP
        names = {port_a: (("default/out",), ("default/to-a",)),
                 port_b: ((), ("default/to-b", "default/all"))}
        config.admits = lambda client, backend: True
        config.policy_names = lambda client, backend: names[backend[1]]
        sink = Sink()
        server = WaypointServer(config, flow_sink=sink)
        [listen] = await server.start()
        try:
            pods = []
            for _ in range(2):
                status, body = await _get(listen)
                assert status == 200
                pods.append(json.loads(body)["pod"])
            config.admits = server.proxy.admits = lambda client, backend: False
            status, _ = await _get(listen)
            assert status == 403
            server.flows.flush()
            got = [([p.namespace + "/" + p.name for p in f.egress_allowed_by],
                    [p.namespace + "/" + p.name for p in f.ingress_allowed_by])
                   for f in sink.flows]
            want = {"web-a": (["default/out"], ["default/to-a"]),
                    "web-b": ([], ["default/to-b", "default/all"])}
            assert got == [want[pod] for pod in pods] + [([], [])]
            assert sink.flows[-1].drop_reason_desc == "POLICY_DENIED"
        finally:
            await server.close()
            await a.close()
            await b.close()

    asyncio.run(main())
