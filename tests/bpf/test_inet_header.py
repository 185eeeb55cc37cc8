"""bpf/lib/inet.h stands in for the kernel's uapi in.h, tcp.h and icmp.h: the programs compile to
the same instructions as with the kernel's headers, and clang no longer parses the kernel-internal
headers those pulled in (bench/results/fresh-compile-2026-12-05.md: 0.27 s of CPU per compile)."""

from __future__ import annotations

import re
import secrets
import shutil
from collections.abc import Iterator

import pytest

from agent.datapath.bpf_loader import BPF
from agent.datapath.cdefs import BPF_DIR
from agent.datapath.csource import compile_flags, expand_sources
from agent.datapath.native import captured_stderr
from agent.datapath.programs import PROGRAM_SOURCES
from agent.tracing.tracer import SOURCES as TRACER_SOURCES
from lab.state import pin_dir

pytestmark = pytest.mark.bpf

KERNEL_HEADERS = ("#include <uapi/linux/in.h>\n#include <uapi/linux/icmp.h>\n"
                  "#include <uapi/linux/tcp.h>\n")
_MARKER = re.compile(r'^#line \d+ "(?P<file>[^"]*)"$')


def with_kernel_headers(text: str) -> str:
    """The expanded C with inet.h's inlined lines replaced by the kernel's own headers (AF_INET,
    which the kernel defines in the internal <linux/socket.h>, comes with in.h)."""
    out, current, replaced = [], None, False
    for line in text.splitlines(keepends=True):
        marker = _MARKER.match(line.rstrip("\n"))
        if marker:
            current = marker["file"]
        if current == "bpf/lib/inet.h":
            if not replaced:
                out.append(KERNEL_HEADERS)
                replaced = True
            continue
        out.append(line)
    assert replaced, "inet.h is not inlined in this text"
    return "".join(out)


def instructions(bpf: BPF) -> dict[str, bytes]:
    """Each function's instructions, map fds (the imm of pseudo map loads) zeroed."""
    from bcc.libbcc import lib

    out = {}
    for i in range(lib.bpf_num_functions(bpf.module)):
        name = lib.bpf_function_name(bpf.module, i)
        raw = bytearray(bpf.dump_func(name))
        at = 0
        while at < len(raw):
            if raw[at] == 0x18:  # BPF_LD | BPF_IMM | BPF_DW: 16 bytes
                if raw[at + 1] >> 4 in (1, 2):  # src_reg BPF_PSEUDO_MAP_FD / _VALUE
                    raw[at + 4:at + 8] = bytes(4)
                at += 16
            else:
                at += 8
        out[name.decode()] = bytes(raw)
    return out


def compiled(text: str, flags: list[str]) -> dict[str, bytes]:
    with captured_stderr():
        bpf = BPF(text=text.encode(), cflags=compile_flags(flags))
    try:
        return instructions(bpf)
    finally:
        bpf.cleanup()


@pytest.fixture
def pins() -> Iterator[list[str]]:
    pin = pin_dir("test" + secrets.token_hex(3), "n1")
    pin.mkdir(parents=True)
    try:
        yield [f'-DTULLE_PIN_DIR="{pin}"']
    finally:
        shutil.rmtree(pin.parent, ignore_errors=True)


@pytest.mark.parametrize("which", ["datapath", "tracer"])
def test_same_instructions_as_with_the_kernel_headers(which: str, pins: list[str]) -> None:
    if which == "datapath":
        sources, flags = list(PROGRAM_SOURCES), pins
    else:  # BCC attaches the tracer's tracepoints while it loads; cleanup() detaches them
        sources, flags = [BPF_DIR / s for s in TRACER_SOURCES], []
    text = expand_sources(sources)
    ours = compiled(text, flags)
    kernels = compiled(with_kernel_headers(text), flags)
    assert ours.keys() == kernels.keys() and len(ours) >= 2
    for name in ours:
        assert ours[name] == kernels[name], f"{name} compiles differently with inet.h"


def test_no_kernel_internal_header_is_parsed(pins: list[str]) -> None:
    """clang's own include listing (-H): the uapi headers we include reach no kernel-internal
    <linux/socket.h> (and so none of the ~580 headers behind it)."""
    text = expand_sources(list(PROGRAM_SOURCES))
    with captured_stderr() as stderr:
        BPF(text=text.encode(), cflags=compile_flags([*pins, "-H"])).cleanup()
    listed = [line.split()[-1] for line in stderr[0].splitlines() if line.startswith(".")]
    assert any(path.endswith("uapi/linux/ip.h") for path in listed)  # the listing works
    assert not [p for p in listed if p.endswith(("include/linux/socket.h", "linux/uio.h"))]
    assert len(listed) < 200, f"{len(listed)} headers parsed"
