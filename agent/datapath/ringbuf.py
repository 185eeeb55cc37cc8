"""A BPF ring buffer read through its memory map, a batch per call instead of a Python
callback per record.

The kernel maps a ring buffer as: one page holding the consumer position (ours to write),
one page holding the producer position, then the data area mapped twice in a row, so a
record that wraps around the end is still contiguous. Each record is an 8-byte header (its
length, with BUSY set until it is committed and DISCARD set if it was dropped) followed by
the data, padded to 8 bytes.

`parse_records` is the pure part: given bytes copied from the data area, it returns the
committed records and how far it got (stopping at the first BUSY one). `MappedRingBuffer`
copies, parses, copies again what was committed (so the data is read after its header said
so, on CPUs that reorder loads too) and advances the consumer position.

Why not BCC's `ring_buffer_poll`: it calls into Python once per record through ctypes, which
cost more than everything else the agent does with a record (bench/results/observe-*).
"""

from __future__ import annotations

import mmap
import select
import struct
import threading

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HEADER_SIZE = 8
_HEADER = struct.Struct("<I4x")


def _padded(length: int) -> int:
    return (length + HEADER_SIZE + 7) & ~7


def parse_records(chunk: bytes, record_size: int) -> tuple[list[bytes], int]:
    """(committed records' data in order, bytes of `chunk` consumed). Records of
    `record_size` bytes take a fast path (one C-level unpack for the lot); any other length
    is read one by one."""
    stride = _padded(record_size)
    fixed = struct.Struct(f"<I4x{record_size}s{stride - HEADER_SIZE - record_size}x")
    out: list[bytes] = []
    pos = 0
    usable = len(chunk) - len(chunk) % stride
    for header, data in fixed.iter_unpack(memoryview(chunk)[:usable]):
        if header != record_size:
            break  # busy, discarded or another length: the careful path from here
        out.append(data)
        pos += stride
    else:
        if pos == len(chunk):
            return out, pos
    while pos + HEADER_SIZE <= len(chunk):
        (header,) = _HEADER.unpack_from(chunk, pos)
        if header & BUSY_BIT:
            break
        length = header & ~(BUSY_BIT | DISCARD_BIT)
        end = pos + _padded(length)
        if end > len(chunk):
            break  # cannot happen with positions read from the kernel; never read past
        if not header & DISCARD_BIT:
            out.append(chunk[pos + HEADER_SIZE:pos + HEADER_SIZE + length])
        pos = end
    return out, pos


class MappedRingBuffer:
    """Read records from a BPF_MAP_TYPE_RINGBUF map by its fd; `size` is its data size
    (max_entries, a power of two pages)."""

    def __init__(self, map_fd: int, size: int, record_size: int) -> None:
        page = mmap.PAGESIZE
        self.size = size
        self.mask = size - 1
        self.record_size = record_size
        self._consumer = mmap.mmap(map_fd, page, mmap.MAP_SHARED,
                                   mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._producer = mmap.mmap(map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ,
                                   offset=page)
        # Positions through 8-byte views: one aligned load or store each (struct's "<Q"
        # goes byte by byte, and a torn consumer position looks like a full ring).
        self._consumer_pos = memoryview(self._consumer).cast("Q")
        self._producer_pos = memoryview(self._producer).cast("Q")
        self._data = memoryview(self._producer)[page:]
        self._epoll = select.epoll()
        self._epoll.register(map_fd, select.EPOLLIN)
        self._fence = threading.Lock()

    def _barrier(self) -> None:
        """A lock round trip: loads before it complete before loads after it (the kernel's
        side uses release/acquire on the header and positions)."""
        self._fence.acquire()
        self._fence.release()

    def wait(self, timeout_s: float) -> bool:
        """Sleep until the kernel signals records (or `timeout_s`); True if it did."""
        return bool(self._epoll.poll(timeout_s))

    def pending(self) -> int:
        """Bytes the producer has reserved past our position."""
        return int(self._producer_pos[0] - self._consumer_pos[0])

    def read(self, max_bytes: int = 1 << 20) -> list[bytes]:
        """Committed records from our position on (at most about `max_bytes`), consumed."""
        consumer = self._consumer_pos[0]
        producer = self._producer_pos[0]
        if producer == consumer:
            return []
        self._barrier()
        start = consumer & self.mask
        length = min(producer - consumer, max_bytes, self.size)
        _, used = parse_records(bytes(self._data[start:start + length]), self.record_size)
        if not used:
            return []
        self._barrier()  # headers said committed: now read the data they cover
        records, used = parse_records(bytes(self._data[start:start + used]), self.record_size)
        self._barrier()  # done reading before the kernel may reuse the space
        self._consumer_pos[0] = consumer + used
        return records

    def close(self) -> None:
        self._epoll.close()
        for view in (self._data, self._consumer_pos, self._producer_pos):
            view.release()
        self._producer.close()
        self._consumer.close()
