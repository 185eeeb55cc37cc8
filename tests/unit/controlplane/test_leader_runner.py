"""The election loop (controlplane/leader/runner.py) over an in-memory Lease store with
resourceVersions: a leader whose API goes away keeps leading only until the renew deadline,
then calls its stop callback; it resumes when the API answers and it still holds the Lease."""

from __future__ import annotations

import copy
from typing import Any

from controlplane.leader import ElectionConfig, LeaderElection, LostRace

Obj = dict[str, Any]


class MemoryLeases:
    def __init__(self) -> None:
        self.stored: Obj | None = None
        self.version = 0
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise ConnectionRefusedError("API server away")

    def get(self, namespace: str, name: str) -> Obj | None:
        self._check()
        return copy.deepcopy(self.stored)

    def _put(self, obj: Obj) -> Obj:
        self.version += 1
        self.stored = copy.deepcopy(obj)
        self.stored["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.stored)

    def create(self, obj: Obj) -> Obj:
        self._check()
        if self.stored is not None:
            raise LostRace("already exists")
        return self._put(obj)

    def replace(self, obj: Obj) -> Obj:
        self._check()
        assert self.stored is not None
        if obj["metadata"].get("resourceVersion") != self.stored["metadata"]["resourceVersion"]:
            raise LostRace("conflict")
        return self._put(obj)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_api_away_stops_the_leader_at_its_deadline_and_it_resumes() -> None:
    leases, clock, calls = MemoryLeases(), Clock(), []
    a = LeaderElection(leases, "tulle-system", "tulle-controller", ElectionConfig("a"),
                       on_started=lambda: calls.append("started"),
                       on_stopped=lambda: calls.append("stopped"), clock=clock)
    assert a.step() == 2.0  # a leader retries every retry period, without jitter
    assert a.leading() and calls == ["started"]
    leases.down = True
    for _ in range(4):
        clock.now += 2.0
        a.step()
    assert a.leading() and calls == ["started"]  # 8 s without a renewal: still within 10 s
    clock.now += 2.0
    wait = a.step()
    assert not a.leading() and calls == ["started", "stopped"]
    assert 2.0 <= wait <= 2.0 * 2.2  # a candidate's jittered wait
    leases.down = False
    clock.now += 1.0  # back before anyone else could take the Lease: ours still
    a.step()
    assert a.leading() and calls == ["started", "stopped", "started"]
    assert leases.stored is not None and leases.stored["spec"]["leaseTransitions"] == 0


def test_a_candidate_never_leads_while_another_renews() -> None:
    leases, clock = MemoryLeases(), Clock()
    a = LeaderElection(leases, "ns", "l", ElectionConfig("a"), clock=clock)
    b = LeaderElection(leases, "ns", "l", ElectionConfig("b"), clock=clock)
    for _ in range(50):
        a.step()
        b.step()
        assert a.leading() and not b.leading()
        clock.now += 1.9


def test_release_without_the_lease_writes_nothing() -> None:
    leases, clock = MemoryLeases(), Clock()
    a = LeaderElection(leases, "ns", "l", ElectionConfig("a"), clock=clock)
    b = LeaderElection(leases, "ns", "l", ElectionConfig("b"), clock=clock)
    a.step()
    b.step()
    version = leases.version
    b.release()
    assert leases.version == version and a.leading()
    leases.down = True
    a.release()  # the API away: the Lease is left to expire, no error escapes
    assert not a.leading()
