"""The pure parts of the HTTP/2 budgets (``l7proxy.h2limits``): counting control frames
in a byte stream cut anywhere, and the token bucket."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from l7proxy.h2limits import (
    ACK,
    DATA,
    PING,
    PRIORITY,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    Budget,
    FrameCounter,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind: int, flags: int = 0, payload: bytes = b"", stream: int = 1) -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload
    )


frames = st.lists(
    st.tuples(
        st.sampled_from([DATA, 0x1, PRIORITY, RST_STREAM, SETTINGS, PING, 0x7, 0x8, 0x9, 0xFA]),
        st.sampled_from([0, ACK, 0x4, 0x5]),
        st.binary(max_size=40),
    ),
    max_size=40,
)


@given(frames=frames, cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12))
def test_counts_survive_any_read_boundaries(
    frames: list[tuple[int, int, bytes]], cuts: list[int]
) -> None:
    stream = PREFACE + b"".join(frame(k, f, p) for k, f, p in frames)
    expected = (
        sum(k == RST_STREAM for k, _, _ in frames),
        sum(k == PING and not f & ACK for k, f, _ in frames),
        sum(k == SETTINGS and not f & ACK for k, f, _ in frames),
        sum(
            k == PRIORITY
            or (k == DATA and not p and not f & 0x1)
            or (k in (PING, SETTINGS) and f & ACK)
            for k, f, p in frames
        ),
        sum(k == WINDOW_UPDATE for k, _, _ in frames),
    )
    counter = FrameCounter()
    totals = [0, 0, 0, 0, 0]
    start = 0
    for cut in sorted({c % (len(stream) + 1) for c in cuts}) + [len(stream)]:
        for i, n in enumerate(counter.feed(stream[start:cut])):
            totals[i] += n
        start = cut
    assert tuple(totals) == expected


def test_a_payload_that_looks_like_frames_is_not_counted() -> None:
    fake = frame(RST_STREAM, 0, b"\x00\x00\x00\x08") * 10
    counter = FrameCounter()
    assert counter.feed(PREFACE + frame(0x0, 0, fake)) == (0, 0, 0, 0, 0)


def test_budget_refills_over_its_period() -> None:
    budget = Budget(10, 10.0, now=0.0)
    assert budget.spend(10, 0.0)
    assert not budget.spend(1, 0.0)  # overdrawn
    assert budget.spend(0, 0.0) is False  # spending nothing reports the state
    assert budget.spend(1, 3.0)  # -1 + 3 s * 1/s = 2 left, spend 1
    assert budget.spend(1, 100.0) and budget.tokens == 9  # capped at the limit
