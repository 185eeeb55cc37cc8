"""`Tracer.set_local`, run every drain: what it writes to the kernel's tables, and that the
addresses of last time cost no parse and no write."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from agent.tracing import tracer as tracer_module
from agent.tracing.attach import SOCKOPS
from agent.tracing.tracer import RAW_STATE, HookPlan, Tracer, _be32


class Table(dict):  # type: ignore[type-arg]
    """BCC's table API as set_local uses it: Key/Leaf wrap a value, writes are counted."""

    def __init__(self, *items: tuple[int, int]) -> None:
        super().__init__((k, v) for k, v in items)
        self.writes = 0
        self.Key = self.Leaf = lambda value: SimpleNamespace(value=value)

    def __setitem__(self, key: Any, leaf: Any) -> None:
        self.writes += 1
        super().__setitem__(getattr(key, "value", key), getattr(leaf, "value", leaf))

    def __getitem__(self, key: Any) -> Any:
        return SimpleNamespace(value=super().__getitem__(getattr(key, "value", key)))

    def __delitem__(self, key: Any) -> None:
        self.writes += 1
        super().__delitem__(getattr(key, "value", key))

    def items(self) -> Any:  # type: ignore[override]
        return [(SimpleNamespace(value=k), SimpleNamespace(value=v))
                for k, v in list(dict.items(self))]


def tracer(local: set[str], *, netns: Table | None = None,
           learns_foreign: bool = True) -> tuple[Tracer, dict[str, Table]]:
    """An adopted start's tracer; without ``learns_foreign`` (sock_ops in place of the state
    tracepoint) its programs use no ``trace_gen_v1``, so the adopted tables have none."""
    tables = {"trace_local_v1": Table(*((_be32(ip), 1) for ip in local)),
              "trace_netns_v1": netns or Table()}
    if learns_foreign:
        tables["trace_gen_v1"] = Table((0, 7))
    t: Any = object.__new__(Tracer)
    t.adopted, t.local = SimpleNamespace(tables=tables), set(local)  # as an adopted start
    t.plan = HookPlan((), (RAW_STATE if learns_foreign else SOCKOPS,), ())
    return t, tables


def test_new_addresses_are_written_and_the_generation_bumped() -> None:
    t, tables = tracer(set())
    t.set_local(["10.244.1.2", "fd00::1"])  # IPv6: not traced
    assert set(tables["trace_local_v1"]) == {_be32("10.244.1.2")}
    assert dict.__getitem__(tables["trace_gen_v1"], 0) == 8
    assert t.local == {"10.244.1.2"}


def test_without_the_state_tracepoint_new_addresses_bump_no_generation() -> None:
    # An adopted sock_ops tracer: a KeyError here once stopped every drain after a restart.
    t, tables = tracer(set(), learns_foreign=False)
    t.set_local(["10.244.1.2"])
    assert set(tables["trace_local_v1"]) == {_be32("10.244.1.2")} and "trace_gen_v1" not in tables
    assert t.local == {"10.244.1.2"}


def test_the_same_addresses_again_are_neither_parsed_nor_written(
        monkeypatch: pytest.MonkeyPatch) -> None:
    t, tables = tracer(set())
    t.set_local(["10.244.1.2", "10.244.1.3"])
    writes = tables["trace_local_v1"].writes
    monkeypatch.setattr(tracer_module.ipaddress, "ip_address", lambda _ip: pytest.fail("parsed"))
    t.set_local(["10.244.1.3", "10.244.1.2"])
    assert tables["trace_local_v1"].writes == writes


def test_an_adopted_tracers_first_call_forgets_pods_gone_meanwhile() -> None:
    """The first call has no last time to match: even an empty list removes what the last
    start left in the table, and the namespaces learned for those pods."""
    netns = Table((4026532001, _be32("10.244.1.9")), (4026532002, _be32("10.244.1.2")))
    t, tables = tracer({"10.244.1.9", "10.244.1.2"}, netns=netns)
    t.set_local([])
    assert not tables["trace_local_v1"] and not netns and t.local == set()


def test_a_pod_that_left_is_forgotten_with_its_namespace() -> None:
    netns = Table((4026532001, _be32("10.244.1.9")), (4026532002, _be32("10.244.1.2")))
    t, tables = tracer(set(), netns=netns)
    t.set_local(["10.244.1.9", "10.244.1.2"])
    t.set_local(["10.244.1.2"])
    assert set(tables["trace_local_v1"]) == {_be32("10.244.1.2")}
    assert set(netns) == {4026532002}
