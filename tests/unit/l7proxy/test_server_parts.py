"""Config loading, route/endpoint updates, the upstream pool, and the waypoint as a
program (``python -m l7proxy`` with SO_REUSEPORT workers and a metrics port)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gatewayapi import BackendTarget, GatewayParent
from l7proxy.benchmark import bench_config
from l7proxy.config import StaticEndpoints, load_config_text, parse_address
from l7proxy.h1up import Http1Upstream
from l7proxy.pool import Pool
from l7proxy.server import WaypointServer
from l7proxy.testing import gateway_config, read_response
from l7proxy.upstream import Connector, UpstreamFailure
from lab.echo.responses import EchoContext
from lab.echo.server import EchoServer

REPO = Path(__file__).resolve().parents[3]
ROUTE = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules: [{backendRefs: [{name: web, port: 8080}]}]
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_config_file_compiles_routes_and_reads_endpoints() -> None:
    loaded = load_config_text(bench_config("127.0.0.1:9", rules=10, listen="127.0.0.1:1234"))
    [listener] = loaded.listeners
    assert (listener.host, listener.port) == ("127.0.0.1", 1234)
    assert listener.parent == GatewayParent("infra", "bench", 80)
    assert loaded.endpoints == {("default", "backend", 8080): (("127.0.0.1", 9),)}
    resolve = StaticEndpoints(loaded.endpoints)
    assert resolve(BackendTarget("default", "backend", 8080)) == (("127.0.0.1", 9),)
    assert resolve(BackendTarget("default", "other", 8080)) == ()
    assert parse_address("[::1]:80") == ("::1", 80)
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_address("nope")


def test_update_swaps_routes_and_endpoints_for_the_next_request() -> None:
    async def main() -> None:
        echo = EchoServer(EchoContext(pod="echo-a"), log=lambda _: None)
        [port] = await echo.start([0], "127.0.0.1")
        config = gateway_config(ROUTE, {}, services=("web",))
        server = WaypointServer(config)
        [listen] = await server.start()
        try:

            async def get() -> int:
                reader, writer = await asyncio.open_connection("127.0.0.1", listen)
                writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                status, _, _ = await asyncio.wait_for(read_response(reader), 5)
                writer.close()
                return status

            assert await get() == 503  # no endpoints yet
            server.update(
                endpoints=StaticEndpoints({("default", "web", 8080): [("127.0.0.1", port)]})
            )
            assert await get() == 200
            empty = gateway_config("", {}, services=("web",))
            server.update(tables=empty.tables)
            assert await get() == 404
        finally:
            await server.close()
            await echo.close()

    asyncio.run(main())


class _Idle(asyncio.Protocol):
    pass


def test_pool_reuses_bounds_and_expires_connections() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        accepted: list[asyncio.BaseTransport] = []

        class Sink(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                accepted.append(transport)

        server = await loop.create_server(Sink, "127.0.0.1", 0)
        address = ("127.0.0.1", server.sockets[0].getsockname()[1])
        pool = Pool(Connector(), max_per_endpoint=1, idle_timeout=10)
        first = await pool.acquire(address)
        waiter = asyncio.ensure_future(pool.acquire(address))
        await asyncio.sleep(0.01)
        assert not waiter.done() and pool.stats.waits == 1  # at the bound: waits its turn
        first.done = loop.create_future()
        first.done.set_result(None)
        pool.release(first)
        second = await asyncio.wait_for(waiter, 2)
        assert second is first and pool.stats.reused == 1 and pool.stats.created == 1
        second.done = loop.create_future()
        second.done.set_result(None)
        pool.release(second)
        assert pool.stats.idle == 1
        pool.expire(loop.time() + 11)
        assert pool.stats.idle == 0 and pool.stats.expired == 1
        await asyncio.sleep(0.05)
        assert pool.stats.open == 0
        with pytest.raises(UpstreamFailure) as failure:
            await Pool(Connector()).acquire(("127.0.0.1", 1))
        assert not failure.value.sent
        assert isinstance(second, Http1Upstream)
        server.close()

    asyncio.run(main())


def test_program_runs_workers_with_reuseport_and_serves_metrics(tmp_path: Path) -> None:
    async def main() -> None:
        echo = EchoServer(EchoContext(pod="echo-w"), log=lambda _: None)
        [backend] = await echo.start([0], "127.0.0.1")
        listen, metrics = free_port(), free_port()
        config = tmp_path / "waypoint.yaml"
        config.write_text(bench_config(f"127.0.0.1:{backend}", rules=4, listen="127.0.0.1:1"))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "l7proxy",
                "--config",
                str(config),
                "--listen",
                f"127.0.0.1:{listen}",
                "--workers",
                "2",
                "--metrics",
                f"127.0.0.1:{metrics}",
                "--flows",
                "stdout",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            statuses: list[int] = []
            deadline = time.monotonic() + 10
            while len(statuses) < 6 and time.monotonic() < deadline:
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", listen)
                except OSError:
                    await asyncio.sleep(0.1)
                    continue
                writer.write(b"GET /svc1/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                statuses.append((await asyncio.wait_for(read_response(reader), 5))[0])
                writer.close()
            assert statuses == [200] * 6
            text = await asyncio.to_thread(_scrape, metrics)
            assert "tulle_waypoint_requests_total" in text
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = await asyncio.to_thread(proc.wait, 10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                raise
            await echo.close()
        assert code == 0
        assert proc.stdout is not None
        flows = [json.loads(line) for line in proc.stdout.read().splitlines()]
        assert len(flows) == 6
        assert {f["flow"]["l7"]["http"]["code"] for f in flows} == {200}
        assert {f["flow"]["verdict"] for f in flows} == {"FORWARDED"}

    asyncio.run(main())


def _scrape(port: int) -> str:
    """Worker 0's metrics port: the requests may all have been served by worker 1 before
    worker 0 finished starting, so a refused connection is retried for a while."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                return str(resp.read().decode())
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


GAMMA = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mesh, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 8080}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v2}}]
    backendRefs: [{name: web-v2, port: 8080}]
  - backendRefs: [{name: web, port: 8080}]
"""


def test_transparent_listener_finds_the_service_parent() -> None:
    """No fixed parent: the original destination (from the datapath) or the Host name
    selects the GAMMA routes of the Service the client dialled."""
    from l7proxy.config import ListenerConfig
    from l7proxy.testing import service

    async def main() -> None:
        echo = EchoServer(EchoContext(pod="echo-v2"), log=lambda _: None)
        [port] = await echo.start([0], "127.0.0.1")
        text = service("web", ip="10.96.0.10") + service("web-v2") + "---\n" + GAMMA
        config = gateway_config(text, {"default/web-v2:8080": [("127.0.0.1", port)]})
        config.listeners = [ListenerConfig("127.0.0.1", 0)]
        dialled: list[tuple[str, int]] = []

        def original(client: tuple[str, int]) -> tuple[str, int]:
            dialled.append(client)
            return ("10.96.0.10", 8080)

        config.original_destination = original
        server = WaypointServer(config)
        [listen] = await server.start()
        try:
            for host in (b"anything", b"web.default.svc.cluster.local:8080"):
                reader, writer = await asyncio.open_connection("127.0.0.1", listen)
                writer.write(b"GET /v2/x HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
                status, _, body = await asyncio.wait_for(read_response(reader), 5)
                assert status == 200 and json.loads(body)["pod"] == "echo-v2"
                writer.close()
            assert len(dialled) == 2
            config.original_destination = None  # now only the Host name tells
            reader, writer = await asyncio.open_connection("127.0.0.1", listen)
            writer.write(b"GET /v2/y HTTP/1.1\r\nHost: web.default.svc.cluster.local:8080\r\n\r\n")
            status, _, body = await asyncio.wait_for(read_response(reader), 5)
            assert status == 200 and json.loads(body)["path"] == "/v2/y"
            writer.close()
        finally:
            await server.close()
            await echo.close()

    asyncio.run(main())


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


@pytest.mark.parametrize("round_", range(3))
def test_a_stop_while_the_workers_start_ends_every_worker_cleanly(
    tmp_path: Path, round_: int
) -> None:
    """SIGTERM as soon as the workers are forked, before they serve: each stops with 0 (a
    worker still starting used to die by the default disposition, and the program with it)."""
    config = tmp_path / "waypoint.yaml"
    config.write_text(bench_config("127.0.0.1:9", rules=4, listen="127.0.0.1:1"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "l7proxy", "--config", str(config)]
        + ["--listen", f"127.0.0.1:{free_port()}", "--workers", "2"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.002)
        assert len(_children(proc.pid)) == 2, "the workers were not forked"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert code == 0, proc.stderr.read().decode() if proc.stderr else ""
