"""``python -m bench.trace.waypointsys on|off REQUESTS``: the waypoint's own request path,
in-process, for counting what the request split adds per request in system calls
(``strace -c -f``) or instructions (``valgrind --tool=callgrind``): run it with the split
on and off, at two REQUESTS counts, and divide the differences by the requests between
them. One waypoint (``l7proxy.server``, one HTTPRoute), a loopback backend
(``l7proxy.testing.RawBackend``) and 8 keep-alive clients, in one process on uvloop (as
the waypoint runs), so all of them are counted, the same in both states; flows go to a
record sink that keeps nothing (the agent's side is ``bench.trace.agentcost``). No root,
no lab, loopback only."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import sys
from collections.abc import Sequence
from typing import Any

from bench.l7.balance import OK, ROUTE  # the same one-route Gateway and backend answer
from l7proxy.http import RequestHead
from l7proxy.server import WaypointServer, new_event_loop
from l7proxy.testing import RawBackend, gateway_config, read_response
from l7proxy.timing import SPLIT

CLIENTS = 8


class DropSink:
    """A record sink (as the agent forwarder is) that counts and keeps nothing."""

    raw_records = True

    def __init__(self) -> None:
        self.records = 0
        self.column_bytes = 0  # the split's clock readings that came with them

    def __call__(self, records: Sequence[Any], column: bytes) -> None:
        self.records += len(records)
        self.column_bytes += len(column)


async def answer(head: RequestHead, body: bytes) -> bytes:
    return OK


async def load(port: int, requests: int) -> None:
    left = itertools.count()

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while next(left) < requests:
                writer.write(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
                status, _, _ = await read_response(reader)
                if status != 200:
                    raise RuntimeError(f"status {status}")
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(CLIENTS)))


async def run(split: bool, requests: int) -> tuple[int, int]:
    """(flow records, bytes of split readings) the waypoint sent for ``requests``."""
    raw = RawBackend(answer)
    port = await raw.start()
    sink = DropSink()
    config = gateway_config(ROUTE, {"default/web:8080": [("127.0.0.1", port)]},
                            services=("web",))
    config = dataclasses.replace(config, request_split=split)
    server = WaypointServer(config, flow_sink=sink)
    try:
        [listen] = await server.start()
        await load(listen, requests)
    finally:
        await server.close()
        await raw.close()
    if SPLIT.on != split:
        raise RuntimeError("the waypoint did not take the split setting")
    return sink.records, sink.column_bytes


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("on", "off") or not args[1].isdigit():
        print(__doc__.split("\n\n")[0], file=sys.stderr)
        return 2
    loop = new_event_loop()  # uvloop, as the waypoint runs (``l7proxy.server``)
    try:
        records, _ = loop.run_until_complete(run(args[0] == "on", int(args[1])))
    finally:
        loop.close()
    print(f"split {args[0]}: {records} flow records", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
