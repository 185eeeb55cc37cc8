"""The tracer's compile cache and BCC-free attach, their pure parts: the attach arguments,
hook and program names, the cflags (and so the key) a plan compiles with, and the record's
name beside the datapath's. The kernel side: tests/bpf/test_trace_cache.py."""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import pytest

from agent.datapath import perf, templates
from agent.datapath.cdefs import BPF_DIR
from agent.tracing import attach, cache
from agent.tracing.tracer import (
    CLASSIC_PROBE,
    CLASSIC_STATE,
    RAW_PROBE,
    RAW_STATE,
    SK_HEAD,
    HookPlan,
)

from .golden import LAYOUT

PLAN = HookPlan(("trace_sock.c", "trace_drop.c"),
                ("tracepoint:sock:inet_sock_set_state", RAW_PROBE,
                 "tracepoint:tcp:tcp_retransmit_skb", "tracepoint:skb:kfree_skb"), ())
OFFSETS = {"TRACE_OFF_SK_NET": 48, "TRACE_OFF_TCP_SRTT": 1680, "TRACE_OFF_SKB_DEV": None}
REASONS = {3: "NO_SOCKET", 5: "QUEUE_PURGE", 77: "SOMETHING_ELSE"}


def test_the_perf_event_is_libbccs_of_the_version_1_size() -> None:
    attr = perf.event_attr(perf.PERF_TYPE_TRACEPOINT, 1234)
    assert ctypes.sizeof(attr) == attr.size == 72  # PERF_ATTR_SIZE_VER1
    assert (attr.type, attr.config, attr.sample_period, attr.flags) == (2, 1234, 1, 0)
    assert (attr.config1, attr.config2) == (0, 0)


@pytest.mark.parametrize(("hook", "parts", "name"), [
    ("tracepoint:sock:inet_sock_set_state", ("tracepoint", "sock", "inet_sock_set_state"),
     "tracepoint__sock__inet_sock_set_state"),
    ("raw_tracepoint:tcp_probe", ("raw_tracepoint", "", "tcp_probe"),
     "raw_tracepoint__tcp_probe"),
])
def test_hooks_name_their_tracepoint_and_bccs_function(
        hook: str, parts: tuple[str, str, str], name: str) -> None:
    assert attach.split_hook(hook) == parts
    assert attach.program_name(hook) == name


@pytest.mark.parametrize("hook", ["kprobe:tcp_v4_connect", "tracepoint:sock", "tracepoint::x",
                                  "raw_tracepoint:", "raw_tracepoint:a:b", "tracepoint:a:b:c"])
def test_other_hooks_are_refused_by_name(hook: str) -> None:
    with pytest.raises(ValueError, match="not a tracepoint hook"):
        attach.split_hook(hook)


def test_the_event_id_comes_from_the_first_tracefs_that_has_it(tmp_path: Path) -> None:
    second = tmp_path / "debug"
    (second / "events" / "tcp" / "tcp_probe").mkdir(parents=True)
    (second / "events" / "tcp" / "tcp_probe" / "id").write_text("1742\n")
    assert perf.tracepoint_id("tcp", "tcp_probe", [tmp_path / "none", second]) == 1742
    with pytest.raises(FileNotFoundError, match="tcp:nope not found.*tracefs mounted"):
        perf.tracepoint_id("tcp", "nope", [tmp_path / "none", second])


@pytest.mark.parametrize("text", ["", "abc", "0", "-3", "12 13"])
def test_a_malformed_event_id_is_named(text: str) -> None:
    with pytest.raises(ValueError, match="events/x/y/id: not a (positive )?number"):
        perf.parse_number(text, "events/x/y/id")


def test_raw_tcp_probe_with_the_srtt_offset() -> None:
    plan, flags = cache.build_flags(PLAN, OFFSETS, True, REASONS, None)
    assert plan == PLAN
    assert flags == ["-DTRACE_OFF_SK_NET=48", "-DTRACE_OFF_TCP_SRTT=1680",
                     "-DTRACE_PROBE_RAW", "-DTRACE_RETRANSMIT_HAS_ERR",
                     "-DTRACE_REASON_QUEUE_PURGE=5"]
    assert [(p.name, p.prog_type, p.kernel_name) for p in cache.programs(plan)] == [
        ("tracepoint__sock__inet_sock_set_state", 5, "sock__inet_sock_set_state"),
        ("raw_tracepoint__tcp_probe", 17, "tcp_probe"),
        ("tracepoint__tcp__tcp_retransmit_skb", 5, "tcp__tcp_retransmit_skb"),
        ("tracepoint__skb__kfree_skb", 5, "skb__kfree_skb")]


def test_without_the_srtt_offset_the_plan_falls_back_to_the_classic_probe() -> None:
    plan, flags = cache.build_flags(PLAN, {**OFFSETS, "TRACE_OFF_TCP_SRTT": None}, False,
                                    {}, 1)
    assert CLASSIC_PROBE in plan.hooks and RAW_PROBE not in plan.hooks
    assert flags == ["-DTRACE_OFF_SK_NET=48", "-DTRACE_PROBE_SAMPLE_MASK=0"]
    assert "tracepoint__tcp__tcp_probe" in [p.name for p in cache.programs(plan)]


RAW_STATE_PLAN = HookPlan(PLAN.sources, (RAW_STATE,) + PLAN.hooks[1:], ())
SOCK_OFFSETS = {**SK_HEAD, "TRACE_OFF_SK_PROTOCOL": 532, "TRACE_OFF_INET_SPORT": 814}


def test_raw_inet_sock_set_state_with_the_sockets_field_offsets() -> None:
    plan, flags = cache.build_flags(RAW_STATE_PLAN, {**OFFSETS, **SOCK_OFFSETS}, False, {},
                                    None)
    assert plan == RAW_STATE_PLAN
    assert flags[-2:] == ["-DTRACE_PROBE_RAW", "-DTRACE_STATE_RAW"]
    assert [(p.name, p.prog_type, p.kernel_name) for p in cache.programs(plan)][0] == (
        "raw_tracepoint__inet_sock_set_state", 17, "inet_sock_set_state")


@pytest.mark.parametrize(("name", "value"), [(n, None) for n in SOCK_OFFSETS]
                         + [("TRACE_OFF_SK_NUM", 16), ("TRACE_OFF_SK_FAMILY", 18)])
def test_without_a_socket_field_or_with_another_layout_the_classic_tracepoint_is_kept(
        name: str, value: int | None) -> None:
    plan, flags = cache.build_flags(RAW_STATE_PLAN,
                                    {**OFFSETS, **SOCK_OFFSETS, name: value}, False, {}, None)
    assert plan.hooks[0] == CLASSIC_STATE and RAW_STATE not in plan.hooks
    assert "-DTRACE_STATE_RAW" not in flags and "-DTRACE_PROBE_RAW" in flags
    assert cache.programs(plan)[0].name == "tracepoint__sock__inet_sock_set_state"


RAW_DROP_PLAN = HookPlan(PLAN.sources, PLAN.hooks[:-1] + ("raw_tracepoint:kfree_skb",), ())


def test_raw_kfree_skb_with_the_packets_protocol_offset_else_the_classic_one() -> None:
    plan, flags = cache.build_flags(RAW_DROP_PLAN, {**OFFSETS, "TRACE_OFF_SKB_PROTOCOL": 180},
                                    False, {}, None)
    assert plan == RAW_DROP_PLAN
    assert "-DTRACE_OFF_SKB_PROTOCOL=180" in flags and flags[-1] == "-DTRACE_DROP_RAW"
    assert cache.programs(plan)[-1] == templates.Program("raw_tracepoint__kfree_skb", 17,
                                                         "kfree_skb")
    # without the offset the raw program cannot tell IPv4: the classic tracepoint stays
    plan, flags = cache.build_flags(RAW_DROP_PLAN, OFFSETS, False, {}, None)
    assert plan.hooks[-1] == "tracepoint:skb:kfree_skb" and "-DTRACE_DROP_RAW" not in flags
    assert cache.programs(plan)[-1].name == "tracepoint__skb__kfree_skb"


def key(plan: HookPlan, flags: list[str]) -> str:
    sources = [BPF_DIR / s for s in plan.sources]
    return templates.key_of(templates.inputs(sources, flags, cache.programs(plan)))


@pytest.mark.parametrize("change", ["sample", "offset", "reason", "retransmit", "raw"])
def test_every_kernel_answer_and_the_sample_flag_change_the_key(change: str) -> None:
    base = cache.build_flags(PLAN, OFFSETS, True, REASONS, None)
    other = {
        "sample": lambda: cache.build_flags(PLAN, OFFSETS, True, REASONS, 1),
        "offset": lambda: cache.build_flags(PLAN, {**OFFSETS, "TRACE_OFF_SK_NET": 56}, True,
                                            REASONS, None),
        "reason": lambda: cache.build_flags(PLAN, OFFSETS, True, {4: "QUEUE_PURGE"}, None),
        "retransmit": lambda: cache.build_flags(PLAN, OFFSETS, False, REASONS, None),
        "raw": lambda: cache.build_flags(PLAN, {**OFFSETS, "TRACE_OFF_TCP_SRTT": None},
                                         True, REASONS, None),
    }[change]()
    assert key(*base) == key(*cache.build_flags(PLAN, OFFSETS, True, REASONS, None))
    assert key(*base) != key(*other)


def test_the_tracer_record_is_not_the_datapaths(tmp_path: Path) -> None:
    plan, flags = cache.build_flags(PLAN, OFFSETS, True, REASONS, None)
    ins = templates.inputs([BPF_DIR / s for s in plan.sources], flags, cache.programs(plan))
    record = {"format": templates.RECORD_FORMAT, "key": templates.key_of(ins), "inputs": ins,
              "programs": {}, "tables": {}}
    record["digest"] = templates._digest(record)
    (tmp_path / cache.RECORD_NAME).write_text(json.dumps(record))
    assert templates.read_record(tmp_path, record["key"], ins, cache.RECORD_NAME) == record
    with pytest.raises(templates.Mismatch, match="no compile record at .*datapath-template"):
        templates.read_record(tmp_path, record["key"], ins)


@pytest.mark.parametrize(("programs", "names"), [
    ({"tracepoint__a__b": {}, "raw_tracepoint__c": {}},
     {"tracepoint__a__b", "raw_tracepoint__c"}),
    ({"../../etc/x": {}, "..": {}, "": {}, "ok": {}}, {"ok"}),  # never outside the pin dir
    (["a"], set()),
])
def test_an_old_records_programs_are_read_for_unpinning(
        tmp_path: Path, programs: object, names: set[str]) -> None:
    (tmp_path / "r.json").write_text(json.dumps({"programs": programs}))
    assert templates._recorded_programs(tmp_path / "r.json") == names
    assert templates._recorded_programs(tmp_path / "absent.json") == set()


class LossyTracer:
    """An adopted tracer whose lost counter the last start already reported up to 7."""

    layout = LAYOUT

    def __init__(self) -> None:
        self.count = 7

    def set_attached(self, on: bool) -> None:
        pass

    def set_local(self, _ips: object) -> None:
        pass

    def read_raw(self) -> list[bytes]:
        return []

    def lost(self) -> int:
        return self.count


class Ingest:
    def __init__(self) -> None:
        self.lost: list[int] = []

    def record_lost(self, _source: object, count: int, node_name: str) -> None:
        self.lost.append(count)


def test_an_adopted_tracers_old_losses_are_not_reported_again() -> None:
    from agent.tracing.feed import TraceFeed

    tracer, ingest = LossyTracer(), Ingest()
    feed = TraceFeed(tracer, ingest, lambda: None, lambda: [], "n1",  # type: ignore[arg-type]
                     reasons={})
    feed.step()
    assert ingest.lost == []
    tracer.count = 10
    feed.step()
    assert ingest.lost == [3]
