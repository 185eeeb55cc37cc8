"""The run-time tracing switch (bench/trace): detach and re-attach the plan's tracepoints."""

from __future__ import annotations

from typing import Any

from agent.tracing.feed import TraceFeed
from agent.tracing.tracer import HookPlan, Tracer, attach_points, raw_attach_points

PLAN = HookPlan(("trace_sock.c", "trace_drop.c"),
                ("tracepoint:sock:inet_sock_set_state", "raw_tracepoint:tcp_probe",
                 "tracepoint:skb:kfree_skb"), ())


class FakeBPF:
    """BCC's attach/detach bookkeeping, as far as set_attached uses it."""

    def __init__(self) -> None:
        self.tracepoint_fds: dict[bytes, str] = {tp: "fd" for tp in attach_points(PLAN)}
        self.raw_tracepoint_fds: dict[bytes, str] = {tp: "fd" for tp in raw_attach_points(PLAN)}
        self.calls: list[tuple[str, bytes, bytes]] = []

    def attach_raw_tracepoint(self, tp: bytes, fn_name: bytes) -> None:
        self.calls.append(("attach", tp, fn_name))
        self.raw_tracepoint_fds[tp] = "fd"

    def detach_raw_tracepoint(self, tp: bytes) -> None:
        self.calls.append(("detach", tp, b""))
        del self.raw_tracepoint_fds[tp]

    def attach_tracepoint(self, tp: bytes, fn_name: bytes) -> None:
        self.calls.append(("attach", tp, fn_name))
        self.tracepoint_fds[tp] = "fd"

    def detach_tracepoint(self, tp: bytes) -> None:
        self.calls.append(("detach", tp, b""))
        del self.tracepoint_fds[tp]


def tracer(bpf: FakeBPF) -> Tracer:
    t = Tracer.__new__(Tracer)
    t.bpf, t.plan = bpf, PLAN
    return t


def test_detach_then_attach_uses_bcc_probe_names() -> None:
    bpf = FakeBPF()
    t = tracer(bpf)
    t.set_attached(False)
    assert bpf.tracepoint_fds == {} and bpf.raw_tracepoint_fds == {}
    t.set_attached(False)  # idempotent: nothing left to detach
    t.set_attached(True)
    assert set(bpf.tracepoint_fds) == {b"sock:inet_sock_set_state", b"skb:kfree_skb"}
    assert set(bpf.raw_tracepoint_fds) == {b"tcp_probe"}
    assert [c for c in bpf.calls if c[0] == "attach"] == [
        ("attach", b"sock:inet_sock_set_state", b"tracepoint__sock__inet_sock_set_state"),
        ("attach", b"skb:kfree_skb", b"tracepoint__skb__kfree_skb"),
        ("attach", b"tcp_probe", b"raw_tracepoint__tcp_probe"),
    ]
    assert len(bpf.calls) == 6


class StubTracer:
    def __init__(self) -> None:
        self.switches: list[bool] = []

    def set_attached(self, on: bool) -> None:
        self.switches.append(on)

    def set_local(self, _ips: Any) -> None:
        pass

    def read(self) -> list[Any]:
        return []

    def lost(self) -> int:
        return 0


def test_feed_applies_the_requested_state_once() -> None:
    stub = StubTracer()
    feed = TraceFeed(stub, None, lambda: None, lambda: [], "node1",  # type: ignore[arg-type]
                     reasons={})
    feed.step()
    assert stub.switches == []
    feed.want_attached = False
    feed.step()
    feed.step()
    feed.want_attached = True
    feed.step()
    assert stub.switches == [False, True]
