"""The state directory's format (cni.record) and its atomic I/O (cni.store)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cni import store
from cni.record import (
    AttachMark,
    EndpointRecord,
    PodRef,
    RecordError,
    decode_mark,
    decode_record,
    encode_mark,
    encode_record,
    mark_for,
    record_key,
)

REC = EndpointRecord(
    "net",
    "c1",
    "eth0",
    "/run/netns/p",
    PodRef("shop", "web", "u1"),
    ("10.0.0.5/24", "fd00::5/64"),
    "veth1",
    7,
)


def test_records_and_marks_round_trip() -> None:
    assert decode_record(encode_record(REC)) == REC
    no_pod = EndpointRecord("net", "c1", "eth0", "", None, (), "veth1", 7)
    assert decode_record(encode_record(no_pod)) == no_pod
    assert decode_mark(encode_mark(mark_for(REC))) == AttachMark("net", "c1", "eth0", 7)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"schema": 2}, "schema"),
        ({"host": {"ifname": "veth1", "ifindex": "7"}}, "ifindex"),
        ({"host": {"ifname": "veth1", "ifindex": True}}, "ifindex"),
        ({"ips": ["10.0.0.5/24", 5]}, "ips"),
        ({"pod": "shop/web"}, "pod"),
        ({"pod": {"namespace": "shop", "name": "web"}}, "uid"),
        ({"containerID": None}, "containerID"),
    ],
)
def test_damaged_records_say_why(change: dict, why: str) -> None:
    doc = json.loads(encode_record(REC))
    doc.update(change)
    with pytest.raises(RecordError, match=why):
        decode_record(json.dumps(doc).encode())


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b"\xff"])
def test_undecodable_records(data: bytes) -> None:
    with pytest.raises(RecordError):
        decode_record(data)


def test_keys_are_readable_unambiguous_and_fit_a_file_name() -> None:
    assert record_key("net", "c1", "eth0") == "net:c1:eth0"
    assert record_key("a_b", "c", "eth0") != record_key("a", "b_c", "eth0")
    long = record_key("net", "c" * 300, "eth0")
    assert len(long) == 64 and long == record_key("net", "c" * 300, "eth0")


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    store.write_record(tmp_path, REC)
    store.write_record(tmp_path, REC)
    assert os.listdir(tmp_path / "endpoints") == ["net:c1:eth0.json"]
    assert store.read_record(tmp_path, REC.key) == REC
    assert store.keys(tmp_path) == ["net:c1:eth0"]


def test_wait_attached_sees_only_a_mark_for_the_records_ifindex(tmp_path: Path) -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(dt: float) -> None:
        slept.append(dt)
        now[0] += dt
        if len(slept) == 3:  # the agent answers while the plugin waits
            store.write_mark(tmp_path, mark_for(REC))

    store.write_mark(tmp_path, AttachMark("net", "c1", "eth0", 99))  # a previous sandbox's
    assert store.wait_attached(tmp_path, REC, 5.0, lambda: now[0], sleep)
    assert len(slept) == 3


def test_wait_attached_gives_up_at_the_timeout(tmp_path: Path) -> None:
    now = [0.0]

    def sleep(dt: float) -> None:
        now[0] += dt

    assert not store.wait_attached(tmp_path, REC, 1.0, lambda: now[0], sleep)
    assert 1.0 <= now[0] < 1.0 + 2 * store.POLL_INTERVAL
