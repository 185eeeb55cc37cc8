"""``python -m bench.l7.balance``: the waypoint's endpoint choice, P2C over peak-EWMA (the
default) against round robin (what it did before), with one slow backend among fast ones.

All in one process on loopback: N backends (asyncio; one answers after ``--slow-ms``, the
others at once), the waypoint (``l7proxy.server``) in front of them, and a client keeping
``--concurrency`` requests open for ``--requests`` requests. Both modes run alternately in
``--rounds`` rounds against the same backends; round robin is the waypoint with ``pick``
replaced by a counter (the code before P2C). Reports throughput, latency percentiles and
the slow backend's share of requests. Short by default: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import time
from collections.abc import Callable
from typing import Any

from gatewayapi import BackendTarget
from l7proxy.http import RequestHead
from l7proxy.server import WaypointServer
from l7proxy.testing import RawBackend, gateway_config, read_response

ROUTE = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: main, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules: [{backendRefs: [{name: web, port: 8080}]}]
"""
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def backend(delay: float, hits: list[int], i: int) -> Callable[[RequestHead, bytes], Any]:
    async def handle(head: RequestHead, body: bytes) -> bytes:
        hits[i] += 1
        if delay:
            await asyncio.sleep(delay)
        return OK

    return handle


def round_robin(server: WaypointServer) -> None:
    """The waypoint's choice before P2C: the next endpoint in turn."""
    proxy = server.proxy
    turns: dict[BackendTarget, int] = {}

    def pick(target: BackendTarget, client: tuple[str, int]) -> tuple[str, int]:
        endpoints = proxy.endpoints(target)
        i = turns.get(target, 0)
        turns[target] = i + 1
        return endpoints[i % len(endpoints)]

    proxy.pick = pick  # type: ignore[method-assign]


async def load(port: int, requests: int, concurrency: int) -> list[float]:
    """Latencies (s) of ``requests`` GETs over ``concurrency`` keep-alive connections."""
    latencies: list[float] = []
    left = itertools.count()

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while next(left) < requests:
                start = time.perf_counter()
                writer.write(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
                status, _, _ = await read_response(reader)
                if status != 200:
                    raise RuntimeError(f"status {status}")
                latencies.append(time.perf_counter() - start)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


async def run(args: argparse.Namespace) -> None:
    hits = [0] * args.backends
    delays = [args.slow_ms / 1000 if i == 0 else 0.0 for i in range(args.backends)]
    raws = [RawBackend(backend(d, hits, i)) for i, d in enumerate(delays)]
    ports = [await raw.start() for raw in raws]
    endpoints = {"default/web:8080": [("127.0.0.1", p) for p in ports]}
    results: dict[str, list[tuple[float, list[float], float]]] = {"p2c": [], "round-robin": []}
    try:
        for _ in range(args.rounds):
            for mode in results:
                config = gateway_config(ROUTE, endpoints, services=("web",))
                server = WaypointServer(config)
                if mode == "round-robin":
                    round_robin(server)
                [port] = await server.start()
                for i in range(len(hits)):
                    hits[i] = 0
                start = time.perf_counter()
                latencies = await load(port, args.requests, args.concurrency)
                elapsed = time.perf_counter() - start
                await server.close()
                results[mode].append((len(latencies) / elapsed, latencies, hits[0] / sum(hits)))
    finally:
        for raw in raws:
            await raw.close()
    print(f"{args.backends} backends, one answering after {args.slow_ms} ms; "
          f"{args.requests} requests x {args.rounds} rounds, concurrency {args.concurrency}")
    print(f"{'mode':<12} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'slow share':>10}")
    summary = {}
    for mode, rounds in results.items():
        rate = statistics.median(r[0] for r in rounds)
        lat = [x for r in rounds for x in r[1]]
        share = statistics.median(r[2] for r in rounds)
        summary[mode] = rate
        print(f"{mode:<12} {rate:>8.0f} {percentile(lat, .5) * 1e3:>8.2f} "
              f"{percentile(lat, .9) * 1e3:>8.2f} {percentile(lat, .99) * 1e3:>8.2f} "
              f"{share:>10.1%}")
    print(f"p2c / round-robin throughput: {summary['p2c'] / summary['round-robin']:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.l7.balance", description=__doc__)
    parser.add_argument("--backends", type=int, default=3)
    parser.add_argument("--slow-ms", type=float, default=50.0)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.backends < 2:
        parser.error("--backends must be at least 2 (one slow, one or more fast)")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
