"""The waypoint's endpoint choice and pool limits in process over loopback: an endpoint
answering 503 is ejected and comes back, P2C over peak-EWMA keeps away from a slow one,
requests over the pool limits get Envoy's UO answer with an UPSTREAM_OVERFLOW flow, and
maxRetries / maxRequestsPerConnection hold. The outlier test runs on a clock it moves."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from agent.flows.flow import Flow, Verdict
from gatewayapi import BackendTarget
from l7proxy.http import RequestHead
from l7proxy.resilience.budget import BudgetParams
from l7proxy.resilience.limits import PoolParams
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
  - name: retry
    matches: [{path: {type: PathPrefix, value: /retry}}]
    retry: {attempts: 2, codes: [503], backoff: 1ms}
    backendRefs: [{name: web, port: 8080}]
  - name: web
    backendRefs: [{name: web, port: 8080}]
"""
WEB = BackendTarget("default", "web", 8080)


def answer(status: int, body: bytes = b"") -> bytes:
    return b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%b" % (status, len(body), body)


@dataclass
class Backend:
    """A RawBackend whose answer the test sets; ``gate`` holds answers until set."""

    name: str
    status: int = 200
    delay: float = 0.0
    gate: asyncio.Event | None = None
    raw: RawBackend | None = None

    async def handle(self, head: RequestHead, body: bytes) -> bytes:
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        return answer(self.status, self.name.encode())

    @property
    def hits(self) -> int:
        assert self.raw is not None
        return len(self.raw.received)


@dataclass
class Lab:
    server: WaypointServer
    port: int
    a: Backend
    b: Backend
    flows: list[Flow]
    clock: list[float]

    async def get(self, path: str = "/") -> tuple[int, dict[str, str], bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: example.com\r\n\r\n".encode())
            return await asyncio.wait_for(read_response(reader), 10)
        finally:
            writer.close()


@asynccontextmanager
async def lab(params: BackendParams, *, fake_clock: bool) -> AsyncIterator[Lab]:
    a, b = Backend("a"), Backend("b")
    for backend in (a, b):
        backend.raw = RawBackend(backend.handle)
    ports = [await backend.raw.start() for backend in (a, b) if backend.raw is not None]
    config = gateway_config(
        ROUTES, {"default/web:8080": [("127.0.0.1", p) for p in ports]}, services=("web",)
    )
    config.backend_params = {("default", "web"): params}
    draws = itertools.cycle([0.1, 0.7, 0.4, 0.9, 0.6, 0.2])
    flows: list[Flow] = []
    server = WaypointServer(config, flow_sink=flows.extend, rng=lambda: next(draws))
    clock = [1000.0]
    if fake_clock:

        def tick() -> float:  # each reading 1 ms on: every answer takes 1 ms or more
            clock[0] += 0.001
            return clock[0]

        server.proxy.resilience.clock = tick
    [port] = await server.start()
    try:
        yield Lab(server, port, a, b, flows, clock)
    finally:
        await server.close()
        for backend in (a, b):
            assert backend.raw is not None
            await backend.raw.close()


def metric(lab: Lab, name: str) -> float | None:
    """The value of ``name`` for backend default/web:8080 in the waypoint's metrics."""
    return lab.server.metrics.registry.get_sample_value(name, {"backend": "default/web:8080"})


def run(
    test: Callable[[Lab], Coroutine[Any, Any, None]], params: BackendParams, *, fake_clock: bool
) -> None:
    async def main() -> None:
        async with lab(params, fake_clock=fake_clock) as the_lab:
            await asyncio.wait_for(test(the_lab), 30)

    asyncio.run(main())


def test_an_endpoint_answering_503_is_ejected_and_comes_back() -> None:
    params = BackendParams(outlier=OutlierParams(
        consecutive_5xx=2, interval=1.0, base_ejection_time=200.0, max_ejection_percent=100
    ))

    async def body(lab: Lab) -> None:
        lab.a.status = 503
        outliers = lab.server.proxy.resilience.backend(WEB).outliers
        assert outliers is not None
        while True:
            await lab.get()
            if lab.a.hits == 2:
                break
            # a's first 503 weighs it down (Linkerd's 5 s penalty); 100 s later the
            # penalty has decayed below b's latency and P2C tries a again
            lab.clock[0] += 100
        assert outliers.ejected(("127.0.0.1", lab.a.raw.port))  # type: ignore[union-attr]
        ejected_at = lab.clock[0]
        # 150 s later a's penalty has decayed far below b's latency: without ejection
        # P2C would now prefer a (the next test shows it). It gets nothing: it is out.
        lab.clock[0] = ejected_at + 150
        hits = lab.a.hits
        for _ in range(10):
            status, _, _ = await lab.get()
            assert status == 200
        assert lab.a.hits == hits
        assert metric(lab, "tulle_waypoint_outlier_ejections_active") == 1.0
        # past its ejection time (and a sweep) it is back, healthy again, and chosen
        lab.a.status = 200
        lab.clock[0] = ejected_at + 201
        for _ in range(10):
            assert (await lab.get())[0] == 200
        assert lab.a.hits > hits
        assert metric(lab, "tulle_waypoint_outlier_ejections_active") == 0.0
        assert metric(lab, "tulle_waypoint_outlier_ejections_total") == 1.0

    run(body, params, fake_clock=True)


def test_without_outlier_detection_a_failing_endpoint_is_only_weighed_down() -> None:
    async def body(lab: Lab) -> None:
        lab.a.status = 503
        while lab.a.hits < 1:
            await lab.get()
        hits = lab.a.hits
        for _ in range(4):  # its 503 counts as 5 s: b only
            await lab.get()
        assert lab.a.hits == hits
        lab.clock[0] += 150  # the penalty has decayed below b's latency: a is tried again
        for _ in range(4):
            await lab.get()
        assert lab.a.hits > hits

    run(body, BackendParams(), fake_clock=True)


def test_p2c_keeps_away_from_a_slow_endpoint() -> None:
    async def body(lab: Lab) -> None:
        lab.a.delay = 0.2
        for _ in range(30):
            assert (await lab.get())[0] == 200
        assert lab.a.hits <= 3 < lab.b.hits  # a few tries before its peak is known

    run(body, BackendParams(), fake_clock=False)


def test_pool_overflow_answers_503_uo_with_a_flow_reason() -> None:
    params = BackendParams(pool=PoolParams(max_connections=1, max_pending=1))

    async def body(lab: Lab) -> None:
        lab.a.gate = lab.b.gate = asyncio.Event()
        calls = [asyncio.create_task(lab.get()) for _ in range(4)]
        while lab.a.hits + lab.b.hits < 1:
            await asyncio.sleep(0.01)
        done, _ = await asyncio.wait(calls, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        overflowed = []
        while len(overflowed) < 2:  # one in flight, one pending, two over the limit
            for task in done:
                overflowed.append(task.result())
            calls = [c for c in calls if c not in done]
            if len(overflowed) < 2:
                done, _ = await asyncio.wait(calls, timeout=5,
                                             return_when=asyncio.FIRST_COMPLETED)
        for status, headers, text in overflowed:
            assert status == 503 and headers["x-envoy-overloaded"] == "true"
            assert b"reset reason: overflow" in text
        lab.a.gate.set()
        rest = await asyncio.gather(*calls)
        assert [r[0] for r in rest] == [200, 200]
        assert lab.a.hits + lab.b.hits == 2
        lab.server.flows.flush()
        drops = [f for f in lab.flows if f.verdict is Verdict.DROPPED]
        assert [f.drop_reason_desc for f in drops] == ["UPSTREAM_OVERFLOW"] * 2
        assert all(f.l7 and f.l7.http and f.l7.http.code == 503 for f in drops)
        limits = lab.server.proxy.resilience.limits(WEB)
        assert limits is not None and (limits.active, limits.pending) == (0, 0)
        assert metric(lab, "tulle_waypoint_upstream_overflow_total") == 2.0

    run(body, params, fake_clock=False)


def test_max_retries_bounds_retries_in_flight() -> None:
    async def body(lab: Lab) -> None:
        lab.a.status = lab.b.status = 503
        status, _, _ = await lab.get("/retry")
        assert status == 503
        assert lab.a.hits + lab.b.hits == 1  # the try; its retries overflow

    run(body, BackendParams(pool=PoolParams(max_retries=0)), fake_clock=False)


def test_retries_without_a_limit() -> None:
    async def body(lab: Lab) -> None:
        lab.a.status = lab.b.status = 503
        assert (await lab.get("/retry"))[0] == 503
        assert lab.a.hits + lab.b.hits == 3

    run(body, BackendParams(pool=PoolParams()), fake_clock=False)


def test_a_retry_budget_caps_retry_amplification() -> None:
    """Every try answers 503 and the rule allows 2 retries: 10 requests would cost 30 tries.
    A 20% budget with a floor of 1 retry a second lets 2 go (the floor's one, then the 10th
    request's 20%); the others are refused, and each refused request gets its try's 503."""

    async def body(lab: Lab) -> None:
        lab.a.status = lab.b.status = 503
        for _ in range(10):
            assert (await lab.get("/retry"))[0] == 503
        assert lab.a.hits + lab.b.hits == 12
        assert metric(lab, "tulle_waypoint_retry_budget_exhausted_total") == 10.0
        lab.server.flows.flush()
        assert len(lab.flows) == 10  # the client's requests, each with its 503
        assert all(f.l7 and f.l7.http and f.l7.http.code == 503 for f in lab.flows)

    budget = BudgetParams(percent=20, interval=10.0, min_count=1, min_interval=1.0)
    run(body, BackendParams(budget=budget), fake_clock=True)


def test_a_try_without_answer_whose_retry_is_refused_says_so_in_its_flow() -> None:
    async def body(lab: Lab) -> None:
        for backend in (lab.a, lab.b):
            assert backend.raw is not None
            await backend.raw.close()  # connections refused from here on
        for _ in range(3):
            assert (await lab.get("/retry"))[0] == 503
        lab.server.flows.flush()
        assert [f.drop_reason_desc for f in lab.flows] == ["UPSTREAM_RETRY_LIMIT_EXCEEDED"] * 3
        assert all(f.verdict is Verdict.DROPPED for f in lab.flows)
        assert metric(lab, "tulle_waypoint_retry_budget_exhausted_total") == 3.0

    budget = BudgetParams(percent=0, min_count=1, min_interval=1.0)
    run(body, BackendParams(budget=budget), fake_clock=True)


def test_without_a_budget_every_retry_goes() -> None:
    async def body(lab: Lab) -> None:
        lab.a.status = lab.b.status = 503
        for _ in range(10):
            assert (await lab.get("/retry"))[0] == 503
        assert lab.a.hits + lab.b.hits == 30

    run(body, BackendParams(), fake_clock=True)


def test_max_requests_per_connection_closes_after_each() -> None:
    async def body(lab: Lab) -> None:
        lab.a.delay = 0.3  # keep every request on b
        await lab.get()
        for _ in range(3):
            await lab.get()
        assert lab.b.raw is not None
        assert len(lab.b.raw.transports) == lab.b.hits  # one connection per request

    run(body, BackendParams(pool=PoolParams(max_requests_per_connection=1)), fake_clock=False)
