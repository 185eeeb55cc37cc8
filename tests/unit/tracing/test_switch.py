"""The run-time tracing switch (bench/trace): detach and re-attach the plan's tracepoints."""

from __future__ import annotations

from typing import Any

import pytest

from agent.tracing import attach
from agent.tracing.attach import Hooks
from agent.tracing.feed import TraceFeed
from agent.tracing.tracer import HookPlan, program_names

from .golden import LAYOUT

PLAN = HookPlan(("trace_sock.c", "trace_drop.c"),
                ("tracepoint:sock:inet_sock_set_state", "raw_tracepoint:tcp_probe",
                 "tracepoint:skb:kfree_skb"), ())


class FakeKernel:
    """attach.attach's bookkeeping: an fd per attachment (os.close is patched to free it)."""

    def __init__(self, fail: str | None = None) -> None:
        self.live: dict[int, tuple[str, int]] = {}
        self.calls: list[tuple[str, str, int]] = []
        self.fail = fail
        self.next_fd = 1000

    def attach(self, hook: str, prog_fd: int) -> int:
        if hook == self.fail:
            raise OSError(22, f"refused {hook}")
        self.next_fd += 1
        self.live[self.next_fd] = (hook, prog_fd)
        self.calls.append(("attach", hook, prog_fd))
        return self.next_fd

    def close(self, fd: int) -> None:
        hook, _ = self.live.pop(fd)
        self.calls.append(("detach", hook, fd))


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> FakeKernel:
    fake = FakeKernel()
    monkeypatch.setattr(attach, "attach", fake.attach)
    monkeypatch.setattr(attach.os, "close", fake.close)
    return fake


def hooks() -> Hooks:
    return Hooks({hook: 10 + i for i, hook in enumerate(PLAN.hooks)})


def test_detach_then_attach_every_hook_with_its_program(kernel: FakeKernel) -> None:
    h = hooks()
    h.set(True)
    assert sorted(v for v in kernel.live.values()) == [
        ("raw_tracepoint:tcp_probe", 11), ("tracepoint:skb:kfree_skb", 12),
        ("tracepoint:sock:inet_sock_set_state", 10)]
    h.set(True)  # idempotent: attached hooks stay as they are
    h.set(False)
    assert kernel.live == {} and h.attached == ()
    h.set(False)  # idempotent: nothing left to detach
    h.set(True)
    assert set(h.attached) == set(PLAN.hooks) and len(kernel.live) == 3
    assert len(kernel.calls) == 9
    h.close()
    assert kernel.live == {}


def test_an_attach_that_fails_leaves_nothing_of_its_call_attached(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeKernel(fail="tracepoint:skb:kfree_skb")
    monkeypatch.setattr(attach, "attach", fake.attach)
    monkeypatch.setattr(attach.os, "close", fake.close)
    h = hooks()
    with pytest.raises(OSError, match="kfree_skb"):
        h.set(True)
    assert fake.live == {} and h.attached == ()


def test_the_programs_are_bccs_probe_functions() -> None:
    assert program_names(PLAN) == {
        "tracepoint:sock:inet_sock_set_state": "tracepoint__sock__inet_sock_set_state",
        "raw_tracepoint:tcp_probe": "raw_tracepoint__tcp_probe",
        "tracepoint:skb:kfree_skb": "tracepoint__skb__kfree_skb",
    }


class StubTracer:
    layout = LAYOUT

    def __init__(self) -> None:
        self.switches: list[bool] = []

    def set_attached(self, on: bool) -> None:
        self.switches.append(on)

    def set_local(self, _ips: Any) -> None:
        pass

    def read_raw(self) -> list[bytes]:
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
