"""testrun.test_run: results, the __sk_buff ctx layout, and errors that say what went wrong."""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from agent.datapath.bpf_loader import BPF, load_fn, load_program
from agent.datapath.testrun import TC_ACT_OK, SkBuff, test_run
from tests.bpf.conftest import Probe

pytestmark = pytest.mark.bpf

PACKET = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) / b"data")

# Field offsets checked against clang's view of uapi struct __sk_buff; index 0 is sizeof.
LAYOUT_FIELDS = ["mark", "priority", "ingress_ifindex", "ifindex", "cb", "data_meta", "tstamp",
                 "wire_len", "gso_segs", "gso_size", "tstamp_type", "hwtstamp"]  # fmt: skip
LAYOUT_C = """
#include "common.h"
BPF_ARRAY(layout, __u32, 16);
int skb_layout(struct __sk_buff *skb)
{
	__u32 values[] = {sizeof(struct __sk_buff), OFFSETS};
	for (__u32 i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		__u32 key = i, value = values[i];
		layout.update(&key, &value);
	}
	return TC_ACT_OK;
}
""".replace("OFFSETS", ", ".join(f"offsetof(struct __sk_buff, {f})" for f in LAYOUT_FIELDS))


@pytest.fixture(scope="module")
def layout_bpf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BPF]:
    source = tmp_path_factory.mktemp("layout") / "skb_layout.c"
    source.write_text(LAYOUT_C)
    bpf = load_program([source], [])
    yield bpf
    bpf.cleanup()


def test_skbuff_matches_the_kernel_headers(layout_bpf: BPF) -> None:
    prog = load_fn(layout_bpf, "skb_layout", BPF.SCHED_CLS)
    assert test_run(prog.fd, PACKET).retval == TC_ACT_OK
    table = layout_bpf[b"layout"]
    measured = [table[table.Key(i)].value for i in range(len(LAYOUT_FIELDS) + 1)]
    ours = [ctypes.sizeof(SkBuff)] + [getattr(SkBuff, f).offset for f in LAYOUT_FIELDS]
    assert measured == ours


def test_result_carries_verdict_output_and_duration(probe: Probe) -> None:
    result = test_run(probe.prog.fd, PACKET, repeat=50)
    assert result.retval == TC_ACT_OK
    assert result.data_out == PACKET
    assert result.duration_ns > 0
    assert result.ctx_out is None


def test_ctx_as_raw_bytes(probe: Probe) -> None:
    ctx = SkBuff(mark=9)
    result = test_run(probe.prog.fd, PACKET, ctx=bytes(ctx))
    assert result.ctx_out is not None and len(result.ctx_out) == ctypes.sizeof(SkBuff)
    assert result.skb().mark == 9


def test_bad_fd_names_the_errno() -> None:
    with pytest.raises(OSError, match=r"prog_fd=-1.*EBADF") as err:
        test_run(-1, PACKET)
    assert err.value.errno == errno.EBADF


def test_fd_that_is_not_a_program(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        with pytest.raises(OSError, match="EINVAL") as err:
            test_run(fd, PACKET)
        assert err.value.errno == errno.EINVAL
    finally:
        os.close(fd)


def test_data_shorter_than_ethernet(probe: Probe) -> None:
    with pytest.raises(OSError, match="EINVAL.*too short"):
        test_run(probe.prog.fd, PACKET[:10])


def test_ctx_field_the_kernel_refuses(probe: Probe) -> None:
    with pytest.raises(OSError, match="EINVAL.*ctx field"):
        test_run(probe.prog.fd, PACKET, ctx=SkBuff(len=5))


def test_ctx_ifindex_of_no_device(probe: Probe) -> None:
    with pytest.raises(OSError, match="ENODEV") as err:
        test_run(probe.prog.fd, PACKET, ctx=SkBuff(ifindex=999_999))
    assert err.value.errno == errno.ENODEV


def test_output_buffer_too_small(probe: Probe) -> None:
    with pytest.raises(OSError, match="ENOSPC.*data_size_out"):
        test_run(probe.prog.fd, PACKET, data_size_out=20)


def test_skb_without_ctx_is_an_error(probe: Probe) -> None:
    with pytest.raises(ValueError, match="no ctx"):
        test_run(probe.prog.fd, PACKET).skb()
