"""The pure elector (controlplane/leader/election.py) with a fake clock: client-go's
leaderelection semantics, two candidates sharing one Lease record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlplane.leader import ElectionConfig, ElectionConfigError, Elector, LeaseRecord
from controlplane.leader.election import format_micro_time, parse_micro_time

T0 = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)


def wall(now: float) -> datetime:
    return T0 + timedelta(seconds=now)


def test_defaults_are_client_go_s() -> None:
    cfg = ElectionConfig("a")
    assert (cfg.lease_duration, cfg.renew_deadline, cfg.retry_period) == (15.0, 10.0, 2.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"identity": ""}, "identity must not be empty"),
        ({"identity": "a", "lease_duration": 10.0}, "greater than the renew deadline"),
        ({"identity": "a", "lease_duration": 5.0, "renew_deadline": 8.0}, "renew deadline"),
        ({"identity": "a", "renew_deadline": 2.4}, "retry period"),
        ({"identity": "a", "retry_period": 0.0}, "greater than zero"),
        ({"identity": "a", "lease_duration": -1.0}, "greater than zero"),
    ],
)
def test_unsafe_durations_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ElectionConfigError, match=message):
        ElectionConfig(**kwargs)  # type: ignore[arg-type]


def test_first_candidate_creates_the_lease() -> None:
    a = Elector(ElectionConfig("a"))
    a.observe(None, 0.0)
    want = a.desired(wall(0), 0.0)
    assert want == LeaseRecord("a", 15, wall(0), wall(0), 0)
    assert not a.leading(0.0)  # not before the write succeeded
    a.written(want, 0.0)
    assert a.leading(0.1)


def test_renewal_keeps_acquire_time_and_transitions() -> None:
    a = Elector(ElectionConfig("a"))
    held = LeaseRecord("a", 15, wall(0), wall(0), 3)
    a.written(held, 0.0)
    renewed = a.desired(wall(2), 2.0)
    assert renewed == LeaseRecord("a", 15, wall(0), wall(2), 3)


def test_another_holder_blocks_until_the_lease_expires_in_our_eyes() -> None:
    b = Elector(ElectionConfig("b"))
    held = LeaseRecord("a", 15, wall(0), wall(0), 0)
    b.observe(held, 100.0)  # first seen at 100 on b's clock, whatever its timestamps say
    assert b.desired(wall(110), 110.0) is None
    assert b.desired(wall(114.9), 114.9) is None
    b.observe(held, 114.9)  # unchanged: the expiry does not move
    took = b.desired(wall(115), 115.0)
    assert took == LeaseRecord("b", 15, wall(115), wall(115), 1)


def test_a_renewal_seen_pushes_the_expiry() -> None:
    b = Elector(ElectionConfig("b"))
    b.observe(LeaseRecord("a", 15, wall(0), wall(0), 0), 0.0)
    b.observe(LeaseRecord("a", 15, wall(0), wall(10), 0), 10.0)
    assert b.desired(wall(20), 20.0) is None
    assert b.desired(wall(25), 25.0) is not None


def test_the_record_s_own_duration_decides_expiry() -> None:
    b = Elector(ElectionConfig("b"))
    b.observe(LeaseRecord("a", 60, wall(0), wall(0), 0), 0.0)
    assert b.desired(wall(30), 30.0) is None
    assert b.desired(wall(60), 60.0) is not None


def test_a_released_lease_is_taken_at_once_and_counts_a_transition() -> None:
    b = Elector(ElectionConfig("b"))
    b.observe(LeaseRecord("", 1, wall(0), wall(0), 4), 0.0)
    assert b.desired(wall(0.1), 0.1) == LeaseRecord("b", 15, wall(0.1), wall(0.1), 5)


def test_leader_stops_at_the_renew_deadline_before_anyone_can_take_over() -> None:
    cfg_a, cfg_b = ElectionConfig("a"), ElectionConfig("b")
    a, b = Elector(cfg_a), Elector(cfg_b)
    record = LeaseRecord("a", 15, wall(0), wall(0), 0)
    a.written(record, 0.0)
    b.observe(record, 0.5)  # b reads it after a's write began
    # a's renewals fail from here on.
    assert a.leading(9.99)
    assert not a.leading(10.0)
    assert b.desired(wall(10.0), 10.0) is None  # a has stopped; b still may not take over
    assert b.desired(wall(15.5), 15.5) is not None
    # Whatever the instant, never both.
    for tenth in range(0, 300):
        now = tenth / 10
        assert not (a.leading(now) and b.desired(wall(now), now) is not None)


def test_a_leader_that_sees_another_holder_stops_leading() -> None:
    a = Elector(ElectionConfig("a"))
    a.written(LeaseRecord("a", 15, wall(0), wall(0), 0), 0.0)
    a.observe(LeaseRecord("b", 15, wall(1), wall(1), 1), 1.0)  # b won (e.g. a was paused)
    assert not a.leading(1.0)
    assert a.desired(wall(2), 2.0) is None


def test_release_gives_up_only_our_own_lease() -> None:
    a = Elector(ElectionConfig("a"))
    assert a.release(wall(0)) is None
    a.written(LeaseRecord("a", 15, wall(0), wall(0), 2), 0.0)
    assert a.release(wall(3)) == LeaseRecord("", 1, wall(3), wall(3), 2)
    a.released()
    assert not a.leading(3.0)


def test_spec_round_trip_in_micro_time() -> None:
    record = LeaseRecord("a", 15, wall(0.25), wall(1.5), 7)
    spec = record.to_spec()
    assert spec == {
        "holderIdentity": "a",
        "leaseDurationSeconds": 15,
        "leaseTransitions": 7,
        "acquireTime": "2026-12-06T12:00:00.250000Z",
        "renewTime": "2026-12-06T12:00:01.500000Z",
    }
    assert LeaseRecord.from_spec(spec) == record


@pytest.mark.parametrize("text", [None, "", "yesterday", 12, "2026-13-01T00:00:00Z"])
def test_malformed_times_read_as_none(text: object) -> None:
    assert parse_micro_time(text) is None
    record = LeaseRecord.from_spec({"holderIdentity": "a", "renewTime": text})
    assert record.renew_time is None and record.lease_duration_seconds == 0


def test_a_record_without_duration_expires_after_ours() -> None:
    b = Elector(ElectionConfig("b"))
    b.observe(LeaseRecord.from_spec({"holderIdentity": "a"}), 0.0)
    assert b.desired(wall(14), 14.0) is None
    assert b.desired(wall(15), 15.0) is not None


def test_format_micro_time_converts_to_utc() -> None:
    from datetime import timezone

    t = datetime(2026, 1, 1, 3, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    assert format_micro_time(t) == "2026-01-01T01:00:00.000000Z"
