"""``python -m bench.l7.split_opcodes [--requests N]``: the Python opcodes the waypoint
executes per request with the request split on minus off, by function: keep-alive GETs
through the in-process lab of the unit tests (``tests.unit.l7proxy.test_server``: loopback
echo backends, a pooled upstream connection), counted with ``sys.settrace`` and
``f_trace_opcodes`` in the waypoint's own code (``l7proxy/`` but its test helpers).

Deterministic (no clock, no load dependence), so it resolves changes of a few opcodes
that ``python -m bench.l7.ab --callgrind`` cannot (~0.1% run to run there, ~360
instructions per request); it does not count the C work an opcode calls (a clock read, a
``struct`` pack): that is callgrind's. The agent's decoding of the flows, in-process here,
is not counted."""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
from types import FrameType
from typing import Any

from l7proxy import timing
from tests.unit.l7proxy.test_server import Lab, lab

REQUEST = b"GET /hdr HTTP/1.1\r\nHost: example.com\r\n\r\n"
Key = tuple[str, str]


def _counting(counts: collections.Counter[Key]) -> Any:
    def local(frame: FrameType, event: str, arg: object) -> Any:
        if event == "opcode":
            code = frame.f_code
            counts[(code.co_filename.rsplit("/l7proxy/", 1)[-1], code.co_name)] += 1
        return local

    def calls(frame: FrameType, event: str, arg: object) -> Any:
        name = frame.f_code.co_filename
        if "/l7proxy/" in name and not name.endswith("testing.py"):
            frame.f_trace_opcodes = True
            return local
        return None

    return calls


async def _side(the_lab: Lab, on: bool, requests: int) -> collections.Counter[Key]:
    timing.SPLIT.on = on
    reader, writer = await asyncio.open_connection("127.0.0.1", the_lab.port)

    async def one() -> None:
        writer.write(REQUEST)
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        await reader.readexactly(length)

    for _ in range(20):  # a pooled upstream connection, warm caches
        await one()
    counts: collections.Counter[Key] = collections.Counter()
    sys.settrace(_counting(counts))
    try:
        for _ in range(requests):
            await one()
    finally:
        sys.settrace(None)
        writer.close()
    the_lab.server.flows.flush()
    return counts


async def _measure(requests: int) -> tuple[collections.Counter[Key], collections.Counter[Key]]:
    async with lab() as the_lab:
        try:
            return (await _side(the_lab, False, requests), await _side(the_lab, True, requests))
        finally:
            timing.SPLIT.on = True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    off, on = asyncio.run(_measure(args.requests))
    n = args.requests
    for key in sorted(set(on) | set(off), key=lambda k: on[k] - off[k]):
        diff = (on[key] - off[key]) / n
        if abs(diff) >= 0.5:
            print(f"{diff:+8.1f}  l7proxy/{key[0]}:{key[1]}")
    print(f"per request: off {sum(off.values()) / n:.1f}, on {sum(on.values()) / n:.1f}, "
          f"on - off {(sum(on.values()) - sum(off.values())) / n:+.1f} opcodes")


if __name__ == "__main__":
    main()
