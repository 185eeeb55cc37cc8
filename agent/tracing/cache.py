"""The tracer's compile cache: a restarted agent adopts the tracer it pinned, without BCC.

The tracer's BCC compile costs ~1 s and, with libbcc's pages, ~130 MB of the agent's RSS on
every start (bench/results/trace-cache-2026-12-05.md). The datapath's cache
(``agent.datapath.templates``) does the work; this module gives it the tracer's inputs:

- the key covers the expanded C of the plan's sources and the full cflags: the struct
  offsets read from BTF, whether ``tcp_retransmit_skb`` has ``err``, this kernel's drop
  reason codes, the raw ``tcp_probe`` and ``inet_sock_set_state`` choices and the sample
  mask (or sock_ops in its place, and its cap); plus the kernel, BCC, and each program's
  name and type (the pod cgroup is not: it is where the sock_ops program attaches, not
  what it is);
- after a compile, the programs are pinned in the node's pin dir beside the datapath's
  (their maps, unpinned, live as long as the programs) and ``tracer-template.json`` is
  written beside the datapath's record in the state dir;
- on start, a matching record whose pins the kernel confirms (tags, map ids, map shapes) is
  adopted; anything else is logged in one line and the tracer compiles as before.

Pinned programs stay loaded after the agent exits but run nowhere: attaching is per process
(``agent.tracing.attach``). The exception is the sock_ops program on the pod cgroup: an agent
that dies without stopping leaves it attached (still tracing), and the next start that adopts
it finds it there (``BPF_PROG_QUERY``) and does not attach it twice. ``tulle lab down`` and the
fixtures remove the pin dir and the cgroups, and with them the programs.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.datapath import templates
from agent.datapath.cdefs import BPF_DIR
from agent.tracing.attach import SOCKOPS, SOCKOPS_FN, split_hook
from agent.tracing.tracer import (
    CLASSIC_DROP,
    CLASSIC_PROBE,
    CLASSIC_STATE,
    OFFSETS,
    RAW_DROP,
    RAW_PROBE,
    RAW_STATE,
    HookPlan,
    Tracer,
    TracerUnavailable,
    offset_flags,
    program_names,
    raw_state_readable,
    reason_flags,
    rtt_cap_flags,
    sample_flags,
    tracepoint_has_field,
)

log = logging.getLogger("tulle.tracing")
RECORD_NAME = "tracer-template.json"
PROG_TYPES = {"tracepoint": 5, "raw_tracepoint": 17, "sock_ops": 13}  # enum bpf_prog_type
COMPILING = "tracer: compiling, not adopting the pinned programs: "


def build_flags(plan: HookPlan, offsets: Mapping[str, int | None], retransmit_has_err: bool,
                reasons: Mapping[int, str], probe_sample: int | None,
                rtt_cap: int | None = None) -> tuple[HookPlan, list[str]]:
    """The plan as it will run and the cflags that build it. Pure: the kernel's answers come
    in as arguments. The raw tcp_probe reads ``srtt_us`` itself, and the raw
    inet_sock_set_state the socket's family, protocol, addresses and ports
    (``raw_state_readable``): without those offsets each falls back to its classic
    tracepoint. With the sock_ops hook, trace_sock.c leaves tcp_probe and inet_sock_set_state
    out (``TRACE_CONN_SOCKOPS``): trace_sockops.c carries the connections."""
    flags = offset_flags(offsets)
    if SOCKOPS in plan.hooks:
        flags.append("-DTRACE_CONN_SOCKOPS")
        flags.extend(rtt_cap_flags(rtt_cap))
    plan = _raw_or_classic(plan, flags, RAW_PROBE, CLASSIC_PROBE, "-DTRACE_PROBE_RAW",
                           offsets.get("TRACE_OFF_TCP_SRTT") is not None)
    plan = _raw_or_classic(plan, flags, RAW_STATE, CLASSIC_STATE, "-DTRACE_STATE_RAW",
                           raw_state_readable(offsets))
    plan = _raw_or_classic(plan, flags, RAW_DROP, CLASSIC_DROP, "-DTRACE_DROP_RAW",
                           offsets.get("TRACE_OFF_SKB_PROTOCOL") is not None)
    if retransmit_has_err:
        flags.append("-DTRACE_RETRANSMIT_HAS_ERR")
    flags.extend(reason_flags(reasons))
    flags.extend(sample_flags(probe_sample))
    return plan, flags


def _raw_or_classic(plan: HookPlan, flags: list[str], raw: str, classic: str, flag: str,
                    readable: bool) -> HookPlan:
    """Keep the plan's raw tracepoint `raw` (adding its -D `flag`) when the socket fields it
    reads have offsets (`readable`), else swap in its classic tracepoint. Pure."""
    if raw not in plan.hooks:
        return plan
    if readable:
        flags.append(flag)
        return plan
    return dataclasses.replace(plan, hooks=tuple(classic if h == raw else h for h in plan.hooks))


def programs(plan: HookPlan) -> list[templates.Program]:
    """The plan's programs (name, type, kernel name), as the cache keys and checks them.
    Pure."""
    return [templates.Program(name, PROG_TYPES[_kind(hook)], kernel_name(name))
            for hook, name in program_names(plan).items()]


def _kind(hook: str) -> str:
    return "sock_ops" if hook == SOCKOPS else split_hook(hook)[0]


def kernel_name(function: str) -> str:
    """The name libbcc gives a probe's program in the kernel: the function's, less its
    ``tracepoint__`` / ``raw_tracepoint__`` prefix (truncated by the kernel). Pure."""
    for prefix in ("tracepoint__", "raw_tracepoint__"):
        if function.startswith(prefix):
            return function[len(prefix):]
    return function


def _kernel_flags(plan: HookPlan, probe_sample: int | None,
                  rtt_cap: int | None) -> tuple[HookPlan, list[str]]:
    from agent.tracing.btf import field_offsets
    from agent.tracing.reasons import kernel_drop_reasons

    return build_flags(plan, field_offsets(OFFSETS),
                       tracepoint_has_field("tcp", "tcp_retransmit_skb", "err"),
                       kernel_drop_reasons(), probe_sample, rtt_cap)


def load(plan: HookPlan, probe_sample: int | None = None, *, pin_dir: Path | None = None,
         state_dir: Path | None = None, rtt_cap: int | None = None) -> Tracer:
    """``Tracer.load``: adopt (with both dirs and a matching record) or compile."""
    if not plan.sources:
        raise TracerUnavailable(
            "kernel tracing unavailable: " + (", ".join(plan.missing) or "no hooks"))
    plan, flags = _kernel_flags(plan, probe_sample, rtt_cap)
    sources = [BPF_DIR / s for s in plan.sources]
    progs = programs(plan)
    ins = templates.inputs(sources, flags, progs) if pin_dir and state_dir else {}
    if pin_dir is not None and state_dir is not None:
        try:
            adopted = templates.adopt(pin_dir, state_dir, ins, progs, RECORD_NAME)
        except templates.Mismatch as why:
            log.info("%s%s", COMPILING, why)
        else:
            try:
                tracer = Tracer(plan, adopted.prog_fds, adopted=adopted)
            except (OSError, KeyError, ValueError) as err:  # Tracer closed what it opened
                log.info("%sattaching the adopted programs failed: %s", COMPILING, err)
            else:
                log.info("tracer: adopted the programs pinned in %s (same inputs; no compile)",
                         pin_dir)
                return tracer
    tracer = _compile(plan, sources, flags)
    if pin_dir is not None and state_dir is not None:
        _remember(tracer, pin_dir, state_dir, ins)
    return tracer


def _compile(plan: HookPlan, sources: list[Path], flags: list[str]) -> Tracer:
    from agent.datapath.bpf_loader import load_program  # BCC: the compile path only

    bpf = load_program(sources, flags)
    try:
        # BCC loaded every probe and attached it while compiling; we attach them ourselves,
        # by fd, as an adopted tracer does (one path for pause and resume).
        for tp in list(bpf.tracepoint_fds):
            bpf.detach_tracepoint(tp)
        for raw in list(bpf.raw_tracepoint_fds):
            bpf.detach_raw_tracepoint(raw)
        if SOCKOPS in plan.hooks:  # not a probe BCC loads by itself
            bpf.load_func(SOCKOPS_FN.encode(), bpf.SOCK_OPS)
        fds = {name: bpf.funcs[name.encode()].fd for name in program_names(plan).values()}
    except BaseException:
        bpf.cleanup()
        raise
    return Tracer(plan, fds, bpf=bpf)


def _remember(tracer: Tracer, pin_dir: Path, state_dir: Path,
              ins: dict[str, Any]) -> None:
    """Pin the programs and record them; a failure costs only the next start's compile."""
    from agent.datapath.bpf_loader import table_descriptions

    prog_fds = {name: tracer.hooks.prog_fds[hook]
                for hook, name in program_names(tracer.plan).items()}
    try:
        pin_dir.mkdir(parents=True, exist_ok=True)
        record = templates.build_record(ins, prog_fds, table_descriptions(tracer.bpf),
                                        pin_dir)
        templates.remember(state_dir, pin_dir, record, prog_fds, RECORD_NAME)
    except (OSError, ValueError) as err:
        log.warning("tracer: compiled programs not recorded for the next start: %s", err)
