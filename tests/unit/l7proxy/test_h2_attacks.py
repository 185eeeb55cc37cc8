"""Attacks on the waypoint's HTTP/2 promises (issue 9 review), over real loopback sockets."""

from __future__ import annotations

import asyncio

import h2.errors
import pytest
from hyperframe.frame import DataFrame, WindowUpdateFrame

from l7proxy.config import Limits
from tests.unit.l7proxy.h2lab import waypoint
from tests.unit.l7proxy.h2wire import RawClient, get, kind, run

CALM = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


def data(sid: int, payload: bytes = b"", *, end: bool = False) -> bytes:
    frame = DataFrame(sid, payload)
    if end:
        frame.flags.add("END_STREAM")
    return bytes(frame.serialize())


def window_update(sid: int, increment: int) -> bytes:
    frame = WindowUpdateFrame(sid)
    frame.window_increment = increment
    return bytes(frame.serialize())


# --- budgets ------------------------------------------------------------------------------

PROVOKE = {
    # h2 itself resets the stream (a stream error), so no RST_STREAM of the client's counts.
    "stream window overflow": (False, lambda s: window_update(s, 2**31 - 1)),
    "DATA after END_STREAM": (True, lambda s: data(s, b"x")),
}


@pytest.mark.parametrize("how", sorted(PROVOKE))
def test_resets_the_h2_library_sends_for_the_client_draw_on_its_budget(how: str) -> None:
    """MadeYouReset (CVE-2025-8671) without malformed heads: each request starts backend
    work, then a frame that is a stream error makes the waypoint reset it. Those resets
    free the stream slot just as the client's own RST_STREAM would."""
    ended, provoke = PROVOKE[how]

    async def body() -> None:
        async with waypoint(Limits(h2_max_resets=5)) as wp:
            client = await RawClient.connect(wp.port)
            for s in range(1, 41, 2):
                client.write(client.headers(s, get(b"/h1/x"), end=ended))
                await asyncio.sleep(0.01)  # the exchange is under way
                client.write(provoke(s))
            goaway = await client.until(kind("GoAwayFrame"))
            assert goaway is not None and goaway.error_code == CALM
            assert goaway.last_stream_id < 39
            assert wp.metric("tulle_waypoint_h2_goaways_total", reason="reset_flood") == 1
            assert wp.metric("tulle_waypoint_h2_stream_resets_total", reason="protocol") >= 5
            client.close()

    run(body)
