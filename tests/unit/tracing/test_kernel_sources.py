"""Reading the kernel's own tables: drop reason names from the tracefs format, kallsyms,
and which hooks the tracer can use given the feature probe's answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.tracing.kallsyms import Symbols, parse
from agent.tracing.reasons import parse_format
from agent.tracing.tracer import SOURCES, HookPlan, offset_flags, plan_hooks, reason_flags

FORMAT = '''name: kfree_skb
format:
\tfield:void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:enum skb_drop_reason reason;\toffset:36;\tsize:4;\tsigned:0;

print fmt: "skbaddr=%p reason: %s", REC->skbaddr, __print_symbolic(REC->reason, \
{ 1, "CONSUMED" }, { 2, "NOT_SPECIFIED" }, { 3, "NO_SOCKET" }, { 77, "TCP_FLAGS" }, \
{ 130, "MAX" })
'''


def test_reason_names_come_from_the_format_text() -> None:
    assert parse_format(FORMAT) == {2: "NOT_SPECIFIED", 3: "NO_SOCKET", 77: "TCP_FLAGS"}


def test_a_format_without_reasons_gives_none() -> None:
    assert parse_format('print fmt: "skbaddr=%p", REC->skbaddr') == {}


def test_kallsyms_resolves_the_nearest_text_symbol(tmp_path: Path) -> None:
    f = tmp_path / "kallsyms"
    f.write_text("ffffffff81000000 T _stext\nffffffff81000100 t tcp_v4_rcv\n"
                 "ffffffff81000200 D some_data\nffffffff81000300 T ip_rcv\n")
    symbols = Symbols(f)
    assert symbols(0xFFFFFFFF81000199) == "tcp_v4_rcv+0x99"
    assert symbols(0xFFFFFFFF81000300) == "ip_rcv+0x0"
    assert symbols(0x10) == ""


def test_kallsyms_without_root_shows_zeros_and_resolves_nothing() -> None:
    assert parse("0000000000000000 T _stext\n0000000000000000 t tcp_v4_rcv\n") == ([], [])


ALL = {h: True for needs in SOURCES.values() for h in needs} | {
    "map:ringbuf": True, "map:lru_hash": True, "kprobe": False, "fentry": False}


def test_every_hook_present_loads_both_programs() -> None:
    plan = plan_hooks(ALL)
    assert plan.sources == ("trace_sock.c", "trace_drop.c") and plan.missing == ()
    assert "raw_tracepoint:tcp_probe" in plan.hooks and "kprobe" not in plan.hooks
    assert plan.describe().startswith(
        "tracing hooks in use: raw_tracepoint:inet_sock_set_state")


def test_a_missing_tracepoint_drops_only_its_program_and_is_named() -> None:
    # no raw kfree_skb, and its classic fallback absent too: the classic one is named
    plan = plan_hooks(ALL | {"raw_tracepoint:kfree_skb": False})
    assert plan == HookPlan(("trace_sock.c",), SOURCES["trace_sock.c"],
                            ("tracepoint:skb:kfree_skb",))
    assert "missing: tracepoint:skb:kfree_skb" in plan.describe()


def test_no_ring_buffer_means_no_program() -> None:
    plan = plan_hooks(ALL | {"map:ringbuf": False})
    assert plan.sources == () and "map:ringbuf" in plan.missing


def test_offsets_not_found_are_left_out_of_the_flags() -> None:
    assert offset_flags({"TRACE_OFF_A": 48, "TRACE_OFF_B": None, "TRACE_OFF_C": 0}) == [
        "-DTRACE_OFF_A=48", "-DTRACE_OFF_C=0"]


def test_the_c_side_gets_reason_codes_as_this_kernel_numbers_them() -> None:
    assert reason_flags({3: "NO_SOCKET", 105: "QUEUE_PURGE"}) == ["-DTRACE_REASON_QUEUE_PURGE=105"]
    assert reason_flags({3: "NO_SOCKET"}) == []


# What feature_probe() reports (it tries raw tracepoints on kfree_skb, not tcp_probe).
PROBED = {"tracepoint:sock:inet_sock_set_state": True, "tracepoint:tcp:tcp_probe": True,
          "tracepoint:tcp:tcp_retransmit_skb": True, "tracepoint:skb:kfree_skb": True,
          "raw_tracepoint:kfree_skb": True, "map:ringbuf": True, "map:lru_hash": True}


def test_tcp_probe_runs_raw_where_raw_tracepoints_attach() -> None:
    """Every received segment of every TCP socket hits tcp_probe: the raw tracepoint skips
    the classic one's record fill (the suspect of bench/results/trace-2026-12-05.md)."""
    plan = plan_hooks(PROBED)
    assert "raw_tracepoint:tcp_probe" in plan.hooks and plan.missing == ()
    assert "tracepoint:tcp:tcp_probe" not in plan.hooks


def test_inet_sock_set_state_runs_raw_where_raw_tracepoints_attach() -> None:
    """Every TCP state change of the node hits it: the classic one fills a record (two
    sockaddr copies) first (bench/results/trace-2026-12-07-session19-attribute.md)."""
    plan = plan_hooks(PROBED)
    assert plan.hooks[0] == "raw_tracepoint:inet_sock_set_state"
    assert "tracepoint:sock:inet_sock_set_state" not in plan.hooks


def test_kfree_skb_runs_raw_where_raw_tracepoints_attach() -> None:
    """The classic tracepoints, attached through perf events, cost L4 new connections ~7%
    with ~1 kfree_skb hit a connection; an empty raw kfree_skb program ~1.6%
    (bench/results/trace-2026-12-07-session23.md)."""
    plan = plan_hooks(PROBED)
    assert plan.hooks[-1] == "raw_tracepoint:kfree_skb" and plan.missing == ()
    assert "tracepoint:skb:kfree_skb" not in plan.hooks


def test_without_raw_tracepoints_the_classic_tcp_probe_is_used() -> None:
    plan = plan_hooks(PROBED | {"raw_tracepoint:kfree_skb": False})
    assert "tracepoint:tcp:tcp_probe" in plan.hooks and plan.missing == ()
    assert "tracepoint:sock:inet_sock_set_state" in plan.hooks
    assert "tracepoint:skb:kfree_skb" in plan.hooks
    assert plan.sources == ("trace_sock.c", "trace_drop.c")


def test_without_the_state_event_trace_sock_is_left_out_and_the_classic_one_named() -> None:
    plan = plan_hooks(PROBED | {"tracepoint:sock:inet_sock_set_state": False})
    assert plan.sources == ("trace_drop.c",)
    assert plan.missing == ("tracepoint:sock:inet_sock_set_state",)


def test_without_the_tcp_probe_event_its_program_is_left_out_and_named() -> None:
    plan = plan_hooks(PROBED | {"tracepoint:tcp:tcp_probe": False})
    assert plan.sources == ("trace_drop.c",)
    assert plan.missing == ("tracepoint:tcp:tcp_probe",)


def test_probe_sample_flags() -> None:
    from agent.tracing.tracer import sample_flags

    assert sample_flags(None) == []  # conn_trace.h's default
    assert sample_flags(1) == ["-DTRACE_PROBE_SAMPLE_MASK=0"]
    assert sample_flags(64) == ["-DTRACE_PROBE_SAMPLE_MASK=63"]
    for bad in (0, 3, -16):
        with pytest.raises(ValueError, match=f"power of two >= 1, not {bad}"):
            sample_flags(bad)
