"""What the agent's health report says of its tracer's feed (`agent.tracing.feed`): records
read, batches failed, the last failure, and whether a failure is to be logged now. Pure."""

from __future__ import annotations

import dataclasses

FAILURE_LOG_INTERVAL_S = 60.0  # a repeating failure's log line, at most this often


@dataclasses.dataclass
class FeedHealth:
    """What the agent's health report says of its tracer (`report`): records read, batches
    failed and the last failure. `failed` decides whether a failure is logged now."""

    records: int = 0
    failed_batches: int = 0
    last_error: str | None = None
    last_error_time: float | None = None  # Unix time
    _logged_at: float | None = None  # monotonic time of the last failure logged
    _unlogged: int = 0  # failures since then, not logged

    def failed(self, err: BaseException, now: float, wall: float) -> int | None:
        """Count a failed batch. The number of failures not logged since the last one that
        was (0 for the first), when this one is to be logged; None when not yet."""
        self.failed_batches += 1
        self.last_error = f"{type(err).__name__}: {err}"
        self.last_error_time = wall
        if self._logged_at is not None and now - self._logged_at < FAILURE_LOG_INTERVAL_S:
            self._unlogged += 1
            return None
        unlogged, self._unlogged, self._logged_at = self._unlogged, 0, now
        return unlogged

    def report(self) -> dict[str, object]:
        return {"records": self.records, "failed_batches": self.failed_batches,
                "last_error": self.last_error, "last_error_time": self.last_error_time}
