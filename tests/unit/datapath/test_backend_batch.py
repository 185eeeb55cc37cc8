"""A service's backends go to a kernel map in one BPF_MAP_UPDATE_BATCH call; a refused batch
reads as BCC's refused update (the applier reports it and keeps the other services)."""

from __future__ import annotations

import ctypes
import errno
import ipaddress
from typing import Any

import pytest

from agent.datapath import maps, native


def test_a_batch_on_a_bad_fd_names_the_call_and_errno() -> None:
    keys = (ctypes.c_uint32 * 2)()
    values = (ctypes.c_uint32 * 2)()
    with pytest.raises(OSError, match=r"bpf_map_update_batch\(fd=-1, 2 entries.*EBADF") as err:
        native.update_batch(-1, keys, values)
    assert err.value.errno == errno.EBADF


class Svc(ctypes.Structure):  # test stand-ins shaped like BCC's ctypes for lb.h's structs
    _fields_ = [("vip", ctypes.c_uint32), ("port", ctypes.c_uint16), ("proto", ctypes.c_uint8)]


class Key(ctypes.Structure):
    _fields_ = [("svc", Svc), ("index", ctypes.c_uint32)]


class Leaf(ctypes.Structure):
    _fields_ = [("addr", ctypes.c_uint32), ("port", ctypes.c_uint16)]


class KernelMap:
    Key, Leaf = Key, Leaf
    map_fd = 1234


BACKENDS = [(ipaddress.IPv4Address("10.1.0.1"), 8080), (ipaddress.IPv4Address("10.1.0.2"), 8081)]


def test_one_call_carries_every_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, list[Any]]] = []

    def batch(fd: int, keys: Any, values: Any) -> None:
        calls.append((fd, [(k.svc.vip, k.svc.port, k.index, v.addr, v.port)
                           for k, v in zip(keys, values, strict=True)]))

    monkeypatch.setattr(maps, "update_batch", batch)
    svc = Svc(maps.be32(ipaddress.IPv4Address("10.96.0.5")), maps.be16(80), 6)
    maps._write_backends(KernelMap(), svc, 32768, BACKENDS)
    assert calls == [(1234, [
        (svc.vip, svc.port, 32768, maps.be32(BACKENDS[0][0]), maps.be16(8080)),
        (svc.vip, svc.port, 32769, maps.be32(BACKENDS[1][0]), maps.be16(8081)),
    ])]


def test_a_refused_batch_reads_as_a_refused_update(monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, keys: Any, values: Any) -> None:
        raise native.os_error(errno.E2BIG, "bpf_map_update_batch")

    monkeypatch.setattr(maps, "update_batch", full)
    with pytest.raises(Exception, match="^Could not update table") as err:
        maps._write_backends(KernelMap(), Svc(1, 2, 6), 0, BACKENDS)
    from agent.datapath.applier import _refused_by_kernel

    assert _refused_by_kernel(err.value)


def test_interleave_places_each_field_of_each_record_and_zeroes_the_rest() -> None:
    from agent.datapath.packing import interleave

    out = interleave(8, 3, [(0, 2, b"aabbcc"), (4, 3, b"xyzXYZ123")])
    assert bytes(out) == b"aa\x00\x00xyz\x00" b"bb\x00\x00XYZ\x00" b"cc\x00\x00123\x00"


def test_interleave_names_a_source_of_the_wrong_length() -> None:
    from agent.datapath.packing import interleave

    with pytest.raises(ValueError, match="a field of 2 bytes needs 6, got 5"):
        interleave(8, 3, [(0, 2, b"aabbc")])
