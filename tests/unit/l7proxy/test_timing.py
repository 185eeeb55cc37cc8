"""Where a request's time went, measured by the in-process waypoint against loopback
backends (real sockets: the kernel's RTTs are real): the echo's ``?delay=`` lands in the
backend part, a new upstream connection in the connect part, a local answer in the proxy
part, and the parts add up to the total."""

from __future__ import annotations

import asyncio

from agent.flows.flow import Flow, RequestSplit
from agent.flows.reqsplit import PARTS
from tests.unit.l7proxy.test_server import Lab, run

DELAY_NS = 300_000_000  # the backend's own time, from ?delay=300ms


def _splits(lab: Lab) -> list[tuple[Flow, RequestSplit]]:
    lab.server.flows.flush()
    out = []
    for f in lab.flows:
        assert f.tulle is not None and f.tulle.request is not None, f
        out.append((f, f.tulle.request))
    return out


def _adds_up(f: Flow, r: RequestSplit) -> None:
    assert sum(getattr(r, p) for p in PARTS) == r.total_ns
    assert f.l7 is not None and r.total_ns == r.client_network_ns + f.l7.latency_ns
    assert all(getattr(r, p) >= 0 for p in PARTS)


def test_the_backends_delay_is_backend_time_and_nothing_else() -> None:
    async def body(lab: Lab) -> None:
        status, _, _ = await lab.get("/hdr?delay=300ms")
        assert status == 200
        [(f, r)] = _splits(lab)
        _adds_up(f, r)
        assert r.backend_ns >= DELAY_NS - 1_000_000  # asyncio's sleep may wake ~1 ms early
        for part in ("client_network_ns", "proxy_ns", "upstream_connect_ns",
                     "upstream_network_ns"):
            assert getattr(r, part) < DELAY_NS // 3, (part, r)
        assert r.client_network_ns > 0 and r.upstream_network_ns > 0  # loopback TCP has RTTs

    run(body)


def test_a_new_upstream_connection_is_connect_time_and_a_pooled_one_is_not() -> None:
    async def body(lab: Lab) -> None:
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", lab.port)
            writer.write(b"GET /hdr HTTP/1.1\r\nHost: example.com\r\n\r\n")
            await reader.readuntil(b"}")
            writer.close()
        (f1, first), (f2, second) = _splits(lab)
        _adds_up(f1, first)
        _adds_up(f2, second)
        assert first.upstream_connect_ns > 0
        assert second.upstream_connect_ns == 0  # the pool's connection

    run(body)


def test_a_local_answer_is_all_waypoint_time() -> None:
    async def body(lab: Lab) -> None:
        status, _, _ = await lab.get("/nothing/here")
        assert status == 404
        [(f, r)] = _splits(lab)
        _adds_up(f, r)
        assert f.l7 is not None and r.proxy_ns == f.l7.latency_ns
        assert r.upstream_connect_ns == r.upstream_network_ns == r.backend_ns == 0

    run(body)


def test_a_refused_connect_is_connect_time_with_no_upstream_exchange() -> None:
    async def body(lab: Lab) -> None:
        status, _, _ = await lab.get("/down")
        assert status == 503
        [(f, r)] = _splits(lab)
        _adds_up(f, r)
        assert r.upstream_connect_ns > 0
        assert r.upstream_network_ns == r.backend_ns == 0

    run(body)


def test_retries_count_as_backend_time_not_waypoint_time() -> None:
    async def body(lab: Lab) -> None:
        # 503 twice (each after 100 ms), then 200: the tries and the backoff are upstream
        status, _, _ = await lab.get("/retry?uuid=t1&succeedAfter=2&delayRetry=100ms")
        assert status == 200
        [(f, r)] = _splits(lab)
        _adds_up(f, r)
        assert r.backend_ns >= 200_000_000 - 2_000_000
        assert r.proxy_ns < 100_000_000

    run(body)


def test_an_h2c_backend_has_the_split_too() -> None:
    async def body(lab: Lab) -> None:
        status, _, _ = await lab.request(
            b"POST /grpc.Echo/Say HTTP/1.1\r\nHost: example.com\r\nContent-Length: 2\r\n\r\nhi"
        )
        assert status == 200
        [(f, r)] = _splits(lab)
        _adds_up(f, r)
        assert r.upstream_connect_ns > 0 and r.upstream_network_ns > 0

    run(body)
