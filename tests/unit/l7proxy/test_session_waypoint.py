"""Session persistence through the waypoint in process, over loopback, three endpoints of one
Service: a cookie (or header) issued on the first answer keeps later requests on that
endpoint; without it requests spread. The attacker's cases: a forged, garbled or huge
cookie is balanced as if absent (and a fresh one issued); a cookie naming an endpoint that
left or was ejected falls back and is re-issued; another route's cookie does not pin."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from gatewayapi import BackendTarget
from l7proxy.http import RequestHead
from l7proxy.resilience.outlier import OutlierParams
from l7proxy.resilience.params import BackendParams
from l7proxy.server import WaypointServer
from l7proxy.testing import RawBackend, gateway_config, read_response

ROUTES = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: main, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - name: cookie
    matches: [{path: {type: PathPrefix, value: /cart}}]
    sessionPersistence: {sessionName: cart-session}
    backendRefs: [{name: web, port: 8080}]
  - name: permanent
    matches: [{path: {type: PathPrefix, value: /keep}}]
    sessionPersistence:
      absoluteTimeout: 5m
      cookieConfig: {lifetimeType: Permanent}
    backendRefs: [{name: web, port: 8080}]
  - name: header
    matches: [{path: {type: PathPrefix, value: /api}}]
    sessionPersistence: {type: Header, sessionName: X-Session}
    backendRefs: [{name: web, port: 8080}]
  - name: retried
    matches: [{path: {type: PathPrefix, value: /retried}}]
    sessionPersistence: {sessionName: retried-session}
    retry: {attempts: 2, codes: [503], backoff: 1ms}
    backendRefs: [{name: web, port: 8080}]
  - name: plain
    backendRefs: [{name: web, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: other, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /other}}]
    sessionPersistence: {sessionName: cart-session}
    backendRefs: [{name: web, port: 8080}]
"""
WEB = BackendTarget("default", "web", 8080)
N = 12


@dataclass
class Lab:
    server: WaypointServer
    port: int
    backends: list[RawBackend]
    status: dict[int, int]

    async def get(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: example.com\r\n{extra}\r\n".encode())
            status, head, body = await asyncio.wait_for(read_response(reader), 10)
            return status, head, body.decode()
        finally:
            writer.close()

    def endpoint(self, name: str) -> tuple[str, int]:
        return ("127.0.0.1", self.backends[int(name)].port)


@asynccontextmanager
async def lab(params: BackendParams | None = None) -> AsyncIterator[Lab]:
    status: dict[int, int] = {}
    backends: list[RawBackend] = []
    for i in range(3):

        def answer(head: RequestHead, body: bytes, i: int = i) -> bytes:
            code = status.get(i, 200)
            return b"HTTP/1.1 %d X\r\nContent-Length: 1\r\n\r\n%d" % (code, i)

        backends.append(RawBackend(answer))
    ports = [await b.start() for b in backends]
    config = gateway_config(
        ROUTES, {"default/web:8080": [("127.0.0.1", p) for p in ports]}, services=("web",)
    )
    # ROUND_ROBIN: without a session, N requests reach all three endpoints, deterministically
    config.backend_params = {("default", "web"): params or BackendParams(balancer="ROUND_ROBIN")}
    server = WaypointServer(config)
    [port] = await server.start()
    try:
        yield Lab(server, port, backends, status)
    finally:
        await server.close()
        for b in backends:
            await b.close()


def run(body: Callable[[Lab], Coroutine[Any, Any, None]], **kw: Any) -> None:
    async def main() -> None:
        async with lab(**kw) as it:
            await body(it)

    asyncio.run(main())


def cookie_of(set_cookie: str) -> str:
    """``name=value`` of a Set-Cookie field."""
    return set_cookie.split(";", 1)[0]


async def served(lab: Lab, path: str, headers: dict[str, str] | None = None) -> set[str]:
    return {(await lab.get(path, headers))[2] for _ in range(N)}


def test_cookie_pins_every_later_request_and_without_it_they_spread() -> None:
    async def body(lab: Lab) -> None:
        status, head, first = await lab.get("/cart")
        assert status == 200
        set_cookie = head["set-cookie"]
        assert set_cookie.startswith("cart-session=")
        assert "Path=/cart" in set_cookie and "HttpOnly" in set_cookie
        assert "Max-Age" not in set_cookie and "Expires" not in set_cookie  # Session lifetime
        jar = {"Cookie": f"theme=dark; {cookie_of(set_cookie)}"}
        answers = []
        for _ in range(N):
            status, head, which = await lab.get("/cart/items", jar)
            assert status == 200 and "set-cookie" not in head  # honoured: not re-issued
            answers.append(which)
        assert set(answers) == {first}
        assert len(await served(lab, "/cart")) == 3  # no cookie: balanced
        assert "set-cookie" not in (await lab.get("/"))[1]  # a rule without persistence

    run(body)


def test_permanent_cookie_carries_max_age() -> None:
    async def body(lab: Lab) -> None:
        _, head, _ = await lab.get("/keep")
        assert "Max-Age=300" in head["set-cookie"]
        assert head["set-cookie"].startswith("tulle-session-")  # no sessionName: generated

    run(body)


def test_header_session_is_returned_and_honoured() -> None:
    async def body(lab: Lab) -> None:
        _, head, first = await lab.get("/api")
        token = head["x-session"]
        for _ in range(N):
            _, head, which = await lab.get("/api", {"X-Session": token})
            assert which == first and head["x-session"] == token

    run(body)


def test_forged_garbled_and_huge_cookies_are_balanced_and_reissued() -> None:
    async def body(lab: Lab) -> None:
        _, head, _ = await lab.get("/cart")
        real = cookie_of(head["set-cookie"]).partition("=")[2]
        forged = real[:-2] + ("AA" if not real.endswith("AA") else "BB")
        for value in (forged, "garbage", "%00;;==", "A" * 4000):
            status, head, _ = await lab.get("/cart", {"Cookie": f"cart-session={value}"})
            assert status == 200 and head["set-cookie"].startswith("cart-session=")
        many = "; ".join(f"cart-session=x{i}" for i in range(3000))  # ~40 KiB, under 64 KiB
        assert len(await served(lab, "/cart", {"Cookie": many})) == 3

    run(body)


def test_cookie_of_another_route_does_not_pin() -> None:
    async def body(lab: Lab) -> None:
        _, head, _ = await lab.get("/cart")
        jar = {"Cookie": cookie_of(head["set-cookie"])}
        _, head, _ = await lab.get("/other", jar)
        assert head["set-cookie"].startswith("cart-session=")  # not honoured: a new one
        assert len(await served(lab, "/other", jar)) == 3

    run(body)


def test_endpoint_gone_falls_back_and_reissues() -> None:
    async def body(lab: Lab) -> None:
        _, head, first = await lab.get("/cart")
        jar = {"Cookie": cookie_of(head["set-cookie"])}
        remaining = [lab.endpoint(str(i)) for i in range(3) if str(i) != first]
        lab.server.update(endpoints=lambda target: remaining if target == WEB else [])
        status, head, moved = await lab.get("/cart", jar)
        assert status == 200 and moved != first
        jar = {"Cookie": cookie_of(head["set-cookie"])}  # re-issued for the new endpoint
        assert await served(lab, "/cart", jar) == {moved}

    run(body)


def test_ejected_endpoint_falls_back_and_reissues() -> None:
    params = BackendParams(balancer="ROUND_ROBIN", outlier=OutlierParams(
        consecutive_5xx=1, interval=100.0, base_ejection_time=100.0, max_ejection_percent=100
    ))

    async def body(lab: Lab) -> None:
        _, head, first = await lab.get("/cart")
        jar = {"Cookie": cookie_of(head["set-cookie"])}
        lab.status[int(first)] = 503
        assert (await lab.get("/cart", jar))[0] == 503  # the pinned endpoint fails: ejected
        status, head, moved = await lab.get("/cart", jar)
        assert status == 200 and moved != first and "set-cookie" in head

    run(body, params=params)


def test_a_retry_after_the_pinned_endpoint_failed_goes_elsewhere_and_reissues() -> None:
    async def body(lab: Lab) -> None:
        _, head, first = await lab.get("/retried")
        jar = {"Cookie": cookie_of(head["set-cookie"])}
        lab.status[int(first)] = 503
        status, head, moved = await lab.get("/retried", jar)
        assert status == 200 and moved != first
        jar = {"Cookie": cookie_of(head["set-cookie"])}  # the session moved with the retry
        del lab.status[int(first)]
        assert await served(lab, "/retried", jar) == {moved}

    run(body)
