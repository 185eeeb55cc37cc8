"""Parsing a BPF ring buffer's data area: committed records in order, stop at a busy one,
skip discarded ones, other lengths read one by one."""

from __future__ import annotations

import struct

from agent.datapath.ringbuf import BUSY_BIT, DISCARD_BIT, parse_records


def rec(data: bytes, flags: int = 0) -> bytes:
    padded = (len(data) + 8 + 7) & ~7
    return struct.pack("<II", len(data) | flags, 0) + data + b"\0" * (padded - 8 - len(data))


def payload(i: int, size: int = 16) -> bytes:
    return bytes([i]) * size


def test_fixed_size_records_in_order() -> None:
    chunk = b"".join(rec(payload(i)) for i in range(5))
    assert parse_records(chunk, 16) == ([payload(i) for i in range(5)], len(chunk))


def test_stops_at_the_first_busy_record() -> None:
    chunk = rec(payload(1)) + rec(payload(2), BUSY_BIT) + rec(payload(3))
    assert parse_records(chunk, 16) == ([payload(1)], 24)
    assert parse_records(rec(payload(1), BUSY_BIT), 16) == ([], 0)


def test_discarded_records_are_consumed_not_returned() -> None:
    chunk = rec(payload(1)) + rec(payload(2), DISCARD_BIT) + rec(payload(3))
    assert parse_records(chunk, 16) == ([payload(1), payload(3)], len(chunk))


def test_other_lengths_take_the_careful_path() -> None:
    odd = b"xyz"  # 3 bytes, padded to 8
    chunk = rec(payload(1)) + rec(odd) + rec(payload(2)) + rec(payload(3, 20))
    records, used = parse_records(chunk, 16)
    assert records == [payload(1), odd, payload(2), payload(3, 20)]
    assert used == len(chunk)


def test_a_truncated_tail_is_left_for_later() -> None:
    chunk = rec(payload(1)) + rec(payload(2))[:10]
    assert parse_records(chunk, 16) == ([payload(1)], 24)
    assert parse_records(b"", 16) == ([], 0)
