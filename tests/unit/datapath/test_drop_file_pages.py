"""native.drop_file_pages: a compile's library pages leave the RSS, and nothing a mapping
holds privately (relocated, copied-on-write pages) is ever thrown away."""

from __future__ import annotations

import ctypes
import mmap
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.datapath.native import _clean_mappings, drop_file_pages

SMAPS = """\
7f0000000000-7f0000100000 r-xp 00000000 08:01 11 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
Rss:                 400 kB
Anonymous:             0 kB
Private_Dirty:         0 kB
Swap:                  0 kB
VmFlags: rd ex mr mw me
7f0000100000-7f0000200000 r--p 00100000 08:01 11 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
Rss:                 200 kB
Anonymous:            12 kB
Private_Dirty:        12 kB
7f0000200000-7f0000300000 rw-p 00200000 08:01 11 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
Rss:                  64 kB
Anonymous:             0 kB
Private_Dirty:         0 kB
7f0000300000-7f0000400000 r-xp 00000000 08:01 12 /usr/lib/x86_64-linux-gnu/libssl.so.3
Rss:                 100 kB
Anonymous:             0 kB
7f0000400000-7f0000500000 r--p 00000000 08:01 13 /usr/lib/libbcc.so.0.26.0
Rss:                   0 kB
Anonymous:             0 kB
7f0000500000-7f0000600000 r--p 00000000 08:01 13 /usr/lib/libbcc.so.0.26.0
Rss:                   8 kB
7f0000600000-7f0000700000 r--p 00000000 08:01 14 /opt/my dir/libclang-cpp.so.14
Rss:                  16 kB
Anonymous:             0 kB
Private_Dirty:         0 kB
Swap:                  0 kB
7f0000700000-7f0000800000 r--p 00000000 08:01 14 /opt/my dir/libclang-cpp.so.14
Rss:                  16 kB
Anonymous:             0 kB
Private_Dirty:         0 kB
Swap:                  8 kB
"""


def test_only_clean_read_only_resident_mappings_of_the_named_libraries() -> None:
    found = _clean_mappings(SMAPS, ("libLLVM", "libbcc", "libclang-cpp"))
    # Not: the relocated (anonymous) one, the writable one, another library, an empty one,
    # one whose smaps does not say it holds no private page, one with a swapped-out copy.
    assert found == [(0x7F0000000000, 0x7F0000100000, 400),
                     (0x7F0000600000, 0x7F0000700000, 16)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.mmap.restype = ctypes.c_void_p
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
SIZE = 64 * mmap.PAGESIZE


def _rss_kb(address: int) -> int:
    lines = Path("/proc/self/smaps").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.split("-")[0] == f"{address:x}":
            return next(int(f.split()[1]) for f in lines[i + 1:] if f.startswith("Rss:"))
    raise AssertionError(f"no mapping at {address:x}")


@pytest.fixture
def library(tmp_path: Path) -> Iterator[tuple[Path, bytes]]:
    content = os.urandom(SIZE)
    path = tmp_path / "libtulletest.so.1"
    with path.open("wb") as f:
        f.write(content)
        os.fsync(f.fileno())  # clean in the page cache, as an installed library is
    yield path, content


def _map(path: Path, prot: int) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        address = _libc.mmap(None, SIZE, prot, mmap.MAP_PRIVATE, fd, 0)
    finally:
        os.close(fd)
    assert address not in (None, ctypes.c_void_p(-1).value)
    return int(address)


def test_clean_pages_leave_the_rss_and_read_back_the_same(
        library: tuple[Path, bytes]) -> None:
    path, content = library
    address = _map(path, mmap.PROT_READ)
    try:
        assert ctypes.string_at(address, SIZE) == content  # every page resident
        assert _rss_kb(address) == SIZE // 1024
        assert drop_file_pages(("libtulletest",)) == SIZE // 1024
        assert _rss_kb(address) == 0
        assert ctypes.string_at(address, SIZE) == content
    finally:
        _libc.munmap(address, SIZE)


def test_a_private_copy_is_never_thrown_away(library: tuple[Path, bytes]) -> None:
    """A page written after mapping (as the loader relocates .data.rel.ro, then makes it
    read-only) exists only in memory: dropping it would revert it to the file's bytes."""
    path, content = library
    address = _map(path, mmap.PROT_READ | mmap.PROT_WRITE)
    try:
        ctypes.memset(address, 0x5A, mmap.PAGESIZE)
        assert _libc.mprotect(address, SIZE, mmap.PROT_READ) == 0
        ctypes.string_at(address, SIZE)
        assert drop_file_pages(("libtulletest",)) == 0
        assert ctypes.string_at(address, mmap.PAGESIZE) == b"\x5a" * mmap.PAGESIZE
        assert ctypes.string_at(address + mmap.PAGESIZE, SIZE - mmap.PAGESIZE) \
            == content[mmap.PAGESIZE:]
    finally:
        _libc.munmap(address, SIZE)
