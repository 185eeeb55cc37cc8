"""Load the kernel connection tracer, keep its list of local pods, read its records.

    plan = plan_hooks(feature_probe(), cgroup) # pure: which programs this kernel can run
    tracer = Tracer.load(plan)                 # compiles bpf/trace_*.c, attaches (attach.py)
    Tracer.load(plan, pin_dir=p, state_dir=s)  # or adopts what a compile pinned (cache.py)
    tracer.set_local({"10.1.0.5", ...})        # the node's pods: what to trace
    records = tracer.read()                    # KernelRecords drained from the ring buffer

Hooks are tracepoints and sock_ops (DESIGN.md: no kprobes, no fentry here). ``trace_sock.c``
needs the three socket/TCP tracepoints, ``trace_drop.c`` needs ``skb:kfree_skb``; each is loaded
when its hooks exist, and the plan says which are in use and which are missing.

``tcp_probe`` fires for every segment any TCP socket of the node receives, so it runs as a
raw tracepoint where the kernel has them (``raw_tracepoint:tcp_probe``): the classic one
fills its whole record (sockaddr copies, the socket cookie) before the program even looks
up the socket (bench/results/trace-2026-12-05.md: keep-alive +4.4%, waypoint +2.2%). The
classic tracepoint stays the fallback, also when BTF lacks ``tcp_sock.srtt_us``. Either
way it takes a random 1 in 16 segments before any map lookup (conn_trace.h;
bench/results/tracecost-2026-12-05.md).

``kfree_skb`` runs raw (``raw_tracepoint:kfree_skb``), reading the packet's protocol at its
BTF offset. The classic tracepoints attached alone (kfree_skb and tcp_retransmit_skb, through
perf events) cost L4 new connections +7.0% [+4.2, +10.4], with ~1 kfree_skb hit a connection
and none of the other; an empty program on the raw kfree_skb, +1.6% [+0.7, +4.1]
(bench/results/trace-2026-12-07-session23.md; why the classic path costs that much is not
known). Without raw tracepoints or the offset, the classic one stays.

``inet_sock_set_state`` runs raw too (``raw_tracepoint:inet_sock_set_state``): it fires for
every state change of every TCP socket, and the classic one's record (two sockaddr copies)
is mostly unread. The raw program reads the socket's fields itself at BTF offsets
(``raw_state_readable``), so without them, or without raw tracepoints, the classic one stays
(bench/results/trace-2026-12-07-session20-raw.md).

Given the cgroup that holds the node's pods (``--pod-cgroup``, ``agent.tracing.cgroup``),
``trace_sockops.c``'s sock_ops program on that cgroup carries the connections instead of
both tracepoints: their start, establishment and close from its callbacks, and RTT samples
from ``RTT_CB``. It runs only for the pods' sockets: the tracepoints run for every TCP socket
of the node (bench/results/sockops-rtt-2026-12-05.md: 3-4x cheaper per keep-alive request;
bench/results/trace-2026-12-07-session21.md: per new connection). Without a cgroup, or on a
kernel without sock_ops, the tracepoints stay, and the plan says so.
"""

from __future__ import annotations

import ctypes
import ipaddress
import re
import socket
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.datapath.ringbuf import MappedRingBuffer
from agent.tracing.attach import SOCKOPS, Hooks, program_name
from agent.tracing.records import NO_LOSS_WITHOUT_DATA, KernelRecord

if TYPE_CHECKING:
    from agent.datapath.templates import Adopted

RING = "trace_events_v1"
RAW_PROBE, CLASSIC_PROBE = "raw_tracepoint:tcp_probe", "tracepoint:tcp:tcp_probe"
RAW_STATE = "raw_tracepoint:inet_sock_set_state"
CLASSIC_STATE = "tracepoint:sock:inet_sock_set_state"
RAW_DROP, CLASSIC_DROP = "raw_tracepoint:kfree_skb", "tracepoint:skb:kfree_skb"
SOURCES: dict[str, tuple[str, ...]] = {
    "trace_sock.c": (
        RAW_STATE,
        RAW_PROBE,
        "tracepoint:tcp:tcp_retransmit_skb",
    ),
    "trace_drop.c": (RAW_DROP,),
}
# Hooks the feature probe does not try by name, and what proves them: raw tracepoints attach
# (it tries kfree_skb), and the event exists.
DERIVED = {RAW_PROBE: ("raw_tracepoint:kfree_skb", CLASSIC_PROBE),
           RAW_STATE: ("raw_tracepoint:kfree_skb", CLASSIC_STATE)}
FALLBACK = {RAW_PROBE: CLASSIC_PROBE, RAW_STATE: CLASSIC_STATE, RAW_DROP: CLASSIC_DROP}
SOCKOPS_SOURCE = "trace_sockops.c"  # with trace_sock.c, in place of its tcp_probe
SOCKOPS_FEATURE = "sock_ops"  # the program type, as feature_probe names it
NEEDED_MAPS = ("map:ringbuf", "map:lru_hash")
# -D name -> (struct, member path) read from BTF at load time (agent/tracing/btf.py)
OFFSETS = {
    "TRACE_OFF_SK_NET": ("sock", "__sk_common.skc_net"),
    "TRACE_OFF_NET_INUM": ("net", "ns.inum"),
    "TRACE_OFF_SKB_HEAD": ("sk_buff", "head"),
    "TRACE_OFF_SKB_NETWORK_HEADER": ("sk_buff", "network_header"),
    "TRACE_OFF_TCP_SRTT": ("tcp_sock", "srtt_us"),
    "TRACE_OFF_TCP_TOTAL_RETRANS": ("tcp_sock", "total_retrans"),
    "TRACE_OFF_SKB_DEV": ("sk_buff", "dev"),
    "TRACE_OFF_SKB_PROTOCOL": ("sk_buff", "protocol"),
    "TRACE_OFF_DEV_NET": ("net_device", "nd_net.net"),
    "TRACE_OFF_SK_DADDR": ("sock", "__sk_common.skc_daddr"),
    "TRACE_OFF_SK_RCV_SADDR": ("sock", "__sk_common.skc_rcv_saddr"),
    "TRACE_OFF_SK_DPORT": ("sock", "__sk_common.skc_dport"),
    "TRACE_OFF_SK_NUM": ("sock", "__sk_common.skc_num"),
    "TRACE_OFF_SK_FAMILY": ("sock", "__sk_common.skc_family"),
    "TRACE_OFF_SK_PROTOCOL": ("sock", "sk_protocol"),
    "TRACE_OFF_INET_SPORT": ("inet_sock", "inet_sport"),
}
# The raw inet_sock_set_state reads struct sock_common's head in one piece (trace_sock.c's
# struct sk_head): each field's place after skc_daddr, as BTF must show it.
SK_HEAD = {"TRACE_OFF_SK_DADDR": 0, "TRACE_OFF_SK_RCV_SADDR": 4, "TRACE_OFF_SK_DPORT": 12,
           "TRACE_OFF_SK_NUM": 14, "TRACE_OFF_SK_FAMILY": 16}
MAX_READ_BYTES = 1 << 20


class TracerUnavailable(Exception):
    """This kernel lacks what the tracer needs; the message names what is missing."""


@dataclass(frozen=True)
class HookPlan:
    sources: tuple[str, ...]  # bpf/*.c files to load
    hooks: tuple[str, ...]  # hooks in use
    missing: tuple[str, ...]  # hooks or maps this kernel lacks
    cgroup: str | None = None  # the pod cgroup the sock_ops hook attaches to

    @property
    def rtt_source(self) -> str:
        """Where RTT samples (and, with ``sock_ops``, connections) come from: ``sock_ops``
        (callbacks on the pod cgroup), ``tcp_probe`` or ``none``."""
        if SOCKOPS in self.hooks:
            return "sock_ops"
        return "tcp_probe" if RAW_PROBE in self.hooks or CLASSIC_PROBE in self.hooks else "none"

    @property
    def learns_foreign(self) -> bool:
        """Whether a program learns foreign namespaces (``trace_gen_v1``): only the state
        tracepoint does. With sock_ops in its place no program uses that map, and an adopted
        tracer holds only the maps its programs use."""
        return RAW_STATE in self.hooks or CLASSIC_STATE in self.hooks

    def describe(self) -> str:
        used = ", ".join(self.hooks) or "none"
        lacking = f"; missing: {', '.join(self.missing)}" if self.missing else ""
        if self.rtt_source == "sock_ops":
            rtt = f"; connections and RTT from sock_ops on the pod cgroup {self.cgroup}"
        elif self.rtt_source == "tcp_probe":
            rtt = ("; RTT from tcp_probe (per received segment: "
                   + ("sock_ops unavailable" if SOCKOPS_FEATURE in self.missing
                      else "no --pod-cgroup") + ")")
        else:
            rtt = ""
        return f"tracing hooks in use: {used}{lacking}{rtt}"


def plan_hooks(features: Mapping[str, bool], cgroup: str | None = None) -> HookPlan:
    """Which tracer programs this kernel can run, from `feature_probe()`'s answers; RTT from
    sock_ops on `cgroup` (the node's pod cgroup, checked by the caller) when given and the
    kernel loads sock_ops, else from tcp_probe. Pure."""
    maps_missing = [m for m in NEEDED_MAPS if not features.get(m)]
    missing = list(maps_missing)
    sockops = cgroup is not None and bool(features.get(SOCKOPS_FEATURE))
    if cgroup is not None and not sockops:
        missing.append(SOCKOPS_FEATURE)
    sources: list[str] = []
    hooks: list[str] = []
    for source, wanted in SOURCES.items():
        if sockops and source == "trace_sock.c":  # trace_sockops.c carries connections and RTT
            wanted = tuple(h for h in wanted if h not in (RAW_PROBE, RAW_STATE))
        needs = tuple(_usable(h, features) for h in wanted)
        lacking = [h for h in needs if not features.get(h) and not _derived(h, features)]
        missing.extend(lacking)
        if not lacking and not maps_missing:  # one program's missing hook spares the other
            sources.append(source)
            hooks.extend(needs)
            if sockops and source == "trace_sock.c":
                sources.append(SOCKOPS_SOURCE)
                hooks.append(SOCKOPS)
    used_cgroup = cgroup if SOCKOPS in hooks else None
    return HookPlan(tuple(sources), tuple(hooks), tuple(missing), used_cgroup)


def _derived(hook: str, features: Mapping[str, bool]) -> bool:
    proofs = DERIVED.get(hook)
    return proofs is not None and all(features.get(p) for p in proofs)


def _usable(hook: str, features: Mapping[str, bool]) -> str:
    """`hook`, or its fallback when the kernel offers only that."""
    if features.get(hook) or _derived(hook, features) or hook not in FALLBACK:
        return hook
    return FALLBACK[hook]


def raw_state_readable(offsets: Mapping[str, int | None]) -> bool:
    """Whether the raw inet_sock_set_state can read what the classic record holds: the
    socket's protocol and local port, and its head laid out as ``SK_HEAD`` says. Pure."""
    base = offsets.get("TRACE_OFF_SK_DADDR")
    if any(offsets.get(name) is None
           for name in ("TRACE_OFF_SK_PROTOCOL", "TRACE_OFF_INET_SPORT")) or base is None:
        return False
    return all(offsets.get(name) == base + place for name, place in SK_HEAD.items())


def offset_flags(offsets: Mapping[str, int | None]) -> list[str]:
    """-D flags for the struct offsets found (an absent one leaves its feature off in C)."""
    return [f"-D{name}={value}" for name, value in offsets.items() if value is not None]


def reason_flags(reasons: Mapping[int, str]) -> list[str]:
    """-D flags giving the C side the codes it filters on, as this kernel numbers them."""
    return [f"-DTRACE_REASON_{name}={code}" for code, name in sorted(reasons.items())
            if name in NO_LOSS_WITHOUT_DATA]


def sample_flags(probe_sample: int | None) -> list[str]:
    """The -D flag for tcp_probe's 1-in-`probe_sample` draw (None: the C default)."""
    if probe_sample is None:
        return []
    if probe_sample < 1 or probe_sample & (probe_sample - 1):
        raise ValueError(f"probe_sample must be a power of two >= 1, not {probe_sample}")
    return [f"-DTRACE_PROBE_SAMPLE_MASK={probe_sample - 1}"]


def rtt_cap_flags(rtt_cap: int | None) -> list[str]:
    """The -D flag capping sock_ops RTT samples per socket (None: no cap)."""
    if rtt_cap is None:
        return []
    if rtt_cap < 1:
        raise ValueError(f"rtt_cap must be >= 1, not {rtt_cap}")
    return [f"-DTRACE_RTT_SAMPLE_CAP={rtt_cap}"]


def tracepoint_has_field(category: str, event: str, field: str) -> bool:
    """Whether a tracepoint's tracefs format declares `field` (they gain fields over time)."""
    from agent.tracing.reasons import TRACEFS_ROOTS

    pattern = re.compile(rf"field:[^;]*\b{re.escape(field)};")
    for root in TRACEFS_ROOTS:
        try:
            text = (root / "events" / category / event / "format").read_text()
        except OSError:
            continue
        return bool(pattern.search(text))
    return False


def _be32(ip: str) -> int:
    """An IPv4 address as the kernel stores __be32, read as a little-endian integer (the
    value BCC's ctypes shows for it)."""
    return int(struct.unpack("<I", socket.inet_aton(ip))[0])


def program_names(plan: HookPlan) -> dict[str, str]:
    """hook -> the name of the program BCC makes for it (and of its pin). Pure."""
    return {hook: program_name(hook) for hook in plan.hooks}


def _ip_of(be32: int) -> str:
    return socket.inet_ntoa(struct.pack("<I", be32))


class Tracer:
    """The loaded tracer: its tables (BCC's, or ``KernelTable``s when adopted from its pins),
    one program per hook of the plan, attached by ``agent.tracing.attach`` either way."""

    _given: frozenset[str] | None = None  # set_local's last argument, once applied

    def __init__(self, plan: HookPlan, prog_fds: Mapping[str, int], *, bpf: Any = None,
                 adopted: Adopted | None = None) -> None:
        self.bpf = bpf  # the BCC module when this start compiled; None when it adopted
        self.adopted = adopted
        self.plan = plan
        self.hooks = Hooks({})
        self.ring: MappedRingBuffer | None = None
        try:
            self.hooks = Hooks({h: prog_fds[name] for h, name in program_names(plan).items()},
                               Path(plan.cgroup) if plan.cgroup else None)
            self.layout = self.table("trace_record_layout").Leaf
            self.record_size = ctypes.sizeof(self.layout)
            ring = self.table(RING)
            self.ring = MappedRingBuffer(ring.map_fd, ring.max_entries, self.record_size)
            # An adopted trace_local_v1 holds the last start's pods: known, so set_local can
            # drop the ones that left meanwhile.
            self.local = {_ip_of(k.value) for k in self.table("trace_local_v1").keys()}
            self.hooks.set(True)
        except BaseException:
            self.close()  # what this made; the caller's BCC module or adopted fds too
            raise

    @classmethod
    def load(cls, plan: HookPlan, probe_sample: int | None = None, *,
             pin_dir: Path | None = None, state_dir: Path | None = None,
             rtt_cap: int | None = None) -> Tracer:
        """Compile and attach the plan's programs. `probe_sample`: tcp_probe takes 1 in that
        many segments (a power of two; None: conn_trace.h's default, 16; 1: every one).
        `rtt_cap`: sock_ops stops a socket's RTT callbacks after that many samples (None:
        never).
        With `pin_dir` and `state_dir`, adopt the programs an earlier compile of the same
        inputs pinned there (no BCC), or compile and pin them for the next start
        (``agent.tracing.cache``)."""
        from agent.tracing.cache import load

        return load(plan, probe_sample, pin_dir=pin_dir, state_dir=state_dir, rtt_cap=rtt_cap)

    def table(self, name: str) -> Any:
        """Map ``name`` with BCC's table API."""
        if self.adopted is not None:
            return self.adopted.tables[name]
        return self.bpf[name.encode()]

    def set_local(self, ips: Iterable[str]) -> None:
        """Trace sockets of these (IPv4) pod addresses from now on; forget the others.
        Called every drain (`agent.tracing.feed`): the same addresses as last time return
        before parsing any of them."""
        given = frozenset(ips)
        if given == self._given:
            return
        wanted = {ip for ip in given if ipaddress.ip_address(ip).version == 4}
        if wanted == self.local:
            self._given = given
            return
        table = self.table("trace_local_v1")
        for ip in wanted - self.local:
            table[table.Key(_be32(ip))] = table.Leaf(1)
        if wanted - self.local and self.plan.learns_foreign:
            # After the addresses: what the kernel learned foreign before them (conn_trace.h,
            # trace_foreign) no longer counts, so a pod whose address came late is traced.
            gen = self.table("trace_gen_v1")
            gen[gen.Key(0)] = gen.Leaf((gen[gen.Key(0)].value + 1) & 0xFFFFFFFF)
        gone = {_be32(ip) for ip in self.local - wanted}
        for ip_value in gone:
            try:
                del table[table.Key(ip_value)]
            except KeyError:
                pass
        if gone:  # a namespace learned for a pod that left must not name the next one
            netns = self.table("trace_netns_v1")
            for key, value in list(netns.items()):
                if value.value in gone:
                    try:
                        del netns[key]
                    except KeyError:
                        pass
        self.local = wanted
        self._given = given

    def read_raw(self) -> list[bytes]:
        """The records drained from the ring, as bytes of ``self.layout`` (the agent's
        path: `agent.tracing.intake` reads them by column)."""
        if self.ring is None:
            return []
        raws = self.ring.read(MAX_READ_BYTES)
        if raws and set(map(len, raws)) != {self.record_size}:  # sizes checked in C
            return [raw for raw in raws if len(raw) == self.record_size]
        return raws

    def read(self) -> list[KernelRecord]:
        return [KernelRecord.of(self.layout.from_buffer_copy(raw)) for raw in self.read_raw()]

    def lost(self) -> int:
        table = self.table("trace_lost_v1")
        return int(sum(table.getvalue(table.Key(0))))

    def set_attached(self, on: bool) -> None:
        """Attach or detach every hook of the plan (maps and ring stay): the run-time switch
        `make bench-trace` uses to compare tracing on and off without reloading anything."""
        self.hooks.set(on)

    def close(self) -> None:
        """Detach and release our fds: unpinned programs and maps go with the last one,
        pinned ones (``agent.tracing.cache``) stay loaded, attached nowhere."""
        try:
            self.hooks.close()
        finally:
            self._release()

    def _release(self) -> None:
        if self.ring is not None:
            self.ring.close()
            self.ring = None
        if self.adopted is not None:
            self.adopted.close()
        if self.bpf is not None:
            self.bpf.cleanup()
            self.bpf = None
