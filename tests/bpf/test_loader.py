"""bpf_loader: clear compile and load errors, the debug dump, line fidelity, pins, features."""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bcc.libbcc import lib as bcc_lib

from agent.datapath.bpf_loader import (
    BPF,
    BPF_DIR,
    CompileError,
    LoadError,
    expand_sources,
    feature_probe,
    load_fn,
    load_program,
    map_fd,
    open_pinned,
    pin_map,
    unpin,
)
from lab.state import BPF_PIN_ROOT
from tests.bpf.conftest import Probe

pytestmark = pytest.mark.bpf


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_compile_error_names_file_and_line(tmp_path: Path) -> None:
    source = write(
        tmp_path / "broken.c",
        '#include "common.h"\n\nint f(struct __sk_buff *skb)\n{\n\treturn no_such_name;\n}\n',
    )
    with pytest.raises(CompileError) as err:
        load_program([source], [])
    assert (err.value.file, err.value.line) == (str(source), 5)
    assert "use of undeclared identifier 'no_such_name'" in str(err.value)
    assert "broken.c:5:" in err.value.diagnostics


def test_compile_error_inside_a_header_points_into_the_header(tmp_path: Path) -> None:
    write(tmp_path / "helper.h", "static int helper(void)\n{\n\treturn oops;\n}\n")
    source = write(tmp_path / "user.c", '#include "common.h"\n#include "helper.h"\n')
    with pytest.raises(CompileError) as err:
        load_program([source], [])
    assert (err.value.file, err.value.line) == (str(tmp_path / "helper.h"), 3)


def test_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothere.c"):
        load_program([tmp_path / "nothere.c"], [])


def test_verifier_rejection_carries_the_log(tmp_path: Path) -> None:
    source = write(
        tmp_path / "oob.c",
        '#include "common.h"\n'
        "int oob(struct __sk_buff *skb)\n"
        "{\n"
        "\tunsigned char *data = ctx_data(skb);\n"
        "\n"
        "\treturn data[100]; /* no bounds check: the verifier must refuse */\n"
        "}\n",
    )
    bpf = load_program([source], [])
    try:
        with pytest.raises(LoadError) as err:
            load_fn(bpf, "oob", BPF.SCHED_CLS)
        assert "invalid access to packet" in err.value.log
        assert "oob.c:6" in err.value.log  # BTF line info survives BCC's rewrite
        assert "'oob'" in str(err.value)
        with pytest.raises(LoadError, match=r"no such function; the module has \['oob'\]"):
            load_fn(bpf, "nope", BPF.SCHED_CLS)
    finally:
        bpf.cleanup()


def test_cflags_reach_the_compiler(tmp_path: Path) -> None:
    source = write(
        tmp_path / "flag.c",
        '#include "common.h"\nint f(struct __sk_buff *skb) { return TULLE_TEST_VERDICT; }\n',
    )
    bpf = load_program([source], ["-DTULLE_TEST_VERDICT=TC_ACT_SHOT"])
    try:
        from agent.datapath.testrun import TC_ACT_SHOT, test_run

        packet = b"\x00" * 12 + b"\x90\x00" + b"\x00" * 46
        assert test_run(load_fn(bpf, "f", BPF.SCHED_CLS).fd, packet).retval == TC_ACT_SHOT
    finally:
        bpf.cleanup()


def test_debug_dump_holds_the_rewritten_c(tmp_path: Path) -> None:
    dump = tmp_path / "probe.dump.c"
    bpf = load_program([BPF_DIR / "probe_parse.c"], [], debug_dump_path=dump)
    bpf.cleanup()
    text = dump.read_text()
    assert "bpf_pseudo_fd" in text  # BCC's rewrite of map calls, in headers too
    assert '#line 1 "bpf/lib/drop.h"' in text
    assert "int probe_parse(struct __sk_buff *skb)" in text


def test_debug_dump_is_written_when_compilation_fails(tmp_path: Path) -> None:
    source = write(tmp_path / "bad.c", "int f(void) { return x; }\n")
    dump = tmp_path / "bad.dump.c"
    with pytest.raises(CompileError):
        load_program([source], [], debug_dump_path=dump)
    assert "return x;" in dump.read_text()


def test_expanded_sources_mark_every_line() -> None:
    text = expand_sources([BPF_DIR / "probe_parse.c"])
    assert text.count('#line 1 "bpf/lib/common.h"') == 1  # inlined once, though included twice
    lines = (BPF_DIR / "probe_parse.c").read_text().splitlines()
    assert f'#line {len(lines)} "bpf/probe_parse.c"\n{lines[-1]}' in text


# ---- maps and pins ------------------------------------------------------------------------------


@pytest.fixture
def pin_dir() -> Iterator[Path]:
    path = BPF_PIN_ROOT / f"test-loader-{os.getpid()}"
    yield path
    for pin in path.glob("*"):
        unpin(pin)
    if path.exists():
        path.rmdir()


def test_pin_open_and_unpin_a_map(probe: Probe, pin_dir: Path) -> None:
    config = probe.bpf[b"tulle_config_v1"]
    pin = pin_map(probe.bpf, "tulle_config_v1", pin_dir / "tulle_config_v1")
    config[config.Key(3)] = config.Leaf(0xC0FFEE)
    fd = open_pinned(pin)
    try:
        key, value = ctypes.c_uint32(3), ctypes.c_uint64()
        assert bcc_lib.bpf_lookup_elem(fd, ctypes.byref(key), ctypes.byref(value)) == 0
        assert value.value == 0xC0FFEE  # the pin is the same map the program uses
    finally:
        os.close(fd)
        config[config.Key(3)] = config.Leaf(0)
    with pytest.raises(FileExistsError):
        pin_map(probe.bpf, "tulle_config_v1", pin)
    assert pin_map(probe.bpf, "tulle_config_v1", pin, replace=True) == pin
    unpin(pin)
    assert not pin.exists()
    unpin(pin)  # missing_ok by default


def test_pin_outside_bpffs_fails_clearly(probe: Probe, tmp_path: Path) -> None:
    with pytest.raises(OSError, match="bpf_obj_pin.*EPERM.*bpffs"):
        pin_map(probe.bpf, "tulle_config_v1", tmp_path / "pin")


def test_open_pinned_missing(pin_dir: Path) -> None:
    with pytest.raises(OSError, match="bpf_obj_get.*ENOENT"):
        open_pinned(pin_dir / "nothing")


def test_map_fd_unknown_map(probe: Probe) -> None:
    assert map_fd(probe.bpf, "tulle_drops_v1") >= 0
    with pytest.raises(KeyError, match="no_such_map"):
        map_fd(probe.bpf, "no_such_map")


# ---- features -----------------------------------------------------------------------------------

REQUIRED_HERE = ["sched_cls", "xdp", "cgroup_sock_addr_connect4", "sock_ops", "sk_lookup",
                 "ringbuf", "tracepoint:sock:inet_sock_set_state",
                 "tracepoint:tcp:tcp_retransmit_skb", "tracepoint:skb:kfree_skb"]  # fmt: skip


def test_feature_probe_is_quick_complete_and_cached() -> None:
    feature_probe.cache_clear()
    started = time.monotonic()
    found = feature_probe()
    assert time.monotonic() - started < 3.0
    assert feature_probe() is found
    assert all(isinstance(v, bool) for v in found.values())
    assert {"kprobe", "fentry"} <= found.keys()
    missing = [name for name in REQUIRED_HERE if not found.get(name)]
    assert missing == [], f"hooks Tulle needs are missing: {missing}"
