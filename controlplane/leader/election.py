"""Leader election's decisions, pure: client-go's ``leaderelection`` over a
coordination.k8s.io/v1 Lease, with the clock passed in.

A candidate reads the Lease, then writes itself as holder when the Lease is absent, released
(no holder), its own, or expired; expiry is judged on the candidate's own monotonic clock from
when it last saw the Lease *change* (as client-go does), never from the writer's timestamps, so
clock skew between machines does not matter. The leader renews every retry period and stops
leading once ``renew_deadline`` has passed since its last successful write began: that is
before any other candidate can see the Lease expire (``lease_duration`` after it last saw a
change), since ``renew_deadline < lease_duration``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

# client-go's defaults (k8s.io/client-go/tools/leaderelection, and kube-controller-manager's
# --leader-elect-lease-duration / -renew-deadline / -retry-period).
LEASE_DURATION = 15.0
RENEW_DEADLINE = 10.0
RETRY_PERIOD = 2.0
JITTER_FACTOR = 1.2  # client-go's: a candidate waits up to retry_period * (1 + 1.2)


class ElectionConfigError(ValueError):
    """Durations that would let two replicas lead at once, or an empty identity."""


@dataclass(frozen=True)
class ElectionConfig:
    identity: str
    lease_duration: float = LEASE_DURATION
    renew_deadline: float = RENEW_DEADLINE
    retry_period: float = RETRY_PERIOD

    def __post_init__(self) -> None:
        # client-go's NewLeaderElector checks, in its words.
        if not self.identity:
            raise ElectionConfigError("leader election: identity must not be empty")
        if self.retry_period <= 0 or self.renew_deadline <= 0 or self.lease_duration <= 0:
            raise ElectionConfigError("leader election: durations must be greater than zero")
        if self.lease_duration <= self.renew_deadline:
            raise ElectionConfigError(
                "leader election: lease duration must be greater than the renew deadline"
            )
        if self.renew_deadline <= JITTER_FACTOR * self.retry_period:
            raise ElectionConfigError(
                f"leader election: the renew deadline must be greater than "
                f"retry period * {JITTER_FACTOR}"
            )


@dataclass(frozen=True)
class LeaseRecord:
    """A Lease's spec as client-go's LeaderElectionRecord reads it."""

    holder: str
    lease_duration_seconds: int
    acquire_time: datetime | None
    renew_time: datetime | None
    transitions: int

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> LeaseRecord:
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=parse_micro_time(spec.get("acquireTime")),
            renew_time=parse_micro_time(spec.get("renewTime")),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "leaseTransitions": self.transitions,
        }
        if self.acquire_time is not None:
            spec["acquireTime"] = format_micro_time(self.acquire_time)
        if self.renew_time is not None:
            spec["renewTime"] = format_micro_time(self.renew_time)
        return spec


def format_micro_time(when: datetime) -> str:
    """metav1.MicroTime: RFC 3339 in UTC with six fractional digits."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_micro_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None  # a malformed time is no time: expiry is judged locally anyway


class Elector:
    """One candidate's view of the election. ``now`` is its monotonic clock (seconds),
    ``wall`` the UTC time written into the Lease for people to read."""

    def __init__(self, config: ElectionConfig) -> None:
        self.config = config
        self.observed: LeaseRecord | None = None
        self.observed_at = 0.0  # when ``observed`` was last seen to change
        self.renewed_at: float | None = None  # when our last successful write began

    def observe(self, record: LeaseRecord | None, now: float) -> None:
        """What a read of the Lease returned (None: there is no Lease)."""
        if record != self.observed:
            self.observed = record
            self.observed_at = now

    def held_by_other(self, now: float) -> bool:
        """Another candidate holds a Lease that has not expired in our eyes."""
        cur = self.observed
        if cur is None or not cur.holder or cur.holder == self.config.identity:
            return False
        duration = cur.lease_duration_seconds or self.config.lease_duration
        return now < self.observed_at + duration

    def desired(self, wall: datetime, now: float) -> LeaseRecord | None:
        """The record to write to acquire or renew the Lease; None while another holds it."""
        if self.held_by_other(now):
            return None
        duration = max(1, round(self.config.lease_duration))
        cur = self.observed
        if cur is None:
            return LeaseRecord(self.config.identity, duration, wall, wall, 0)
        if cur.holder == self.config.identity:
            return replace(cur, lease_duration_seconds=duration, renew_time=wall)
        # Taking over from another holder (expired) or a released Lease: a transition.
        return LeaseRecord(self.config.identity, duration, wall, wall, cur.transitions + 1)

    def written(self, record: LeaseRecord, began: float) -> None:
        """Our write of ``record``, sent at ``began``, succeeded."""
        self.observed = record
        self.observed_at = began
        self.renewed_at = began

    def leading(self, now: float) -> bool:
        """Do we lead? Only until ``renew_deadline`` after our last successful write began,
        which is before any other candidate can see our Lease expire."""
        if self.renewed_at is None or self.observed is None:
            return False
        if self.observed.holder != self.config.identity:
            return False
        return now - self.renewed_at < self.config.renew_deadline

    def release(self, wall: datetime) -> LeaseRecord | None:
        """client-go's ReleaseOnCancel: the record that gives the Lease up at once (no holder,
        one second), or None when we do not hold it."""
        cur = self.observed
        if cur is None or cur.holder != self.config.identity:
            return None
        return LeaseRecord("", 1, wall, wall, cur.transitions)

    def released(self) -> None:
        self.renewed_at = None
        if self.observed is not None:
            self.observed = replace(self.observed, holder="")
