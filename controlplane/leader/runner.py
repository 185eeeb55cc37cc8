"""The election loop: one thread that reads the Lease, writes it when the pure ``Elector``
says so, and calls back when leadership starts and stops. Work that must run only while
leading checks ``leading()`` before each round: it turns False by itself at the renew
deadline, even when this thread is stuck in a slow request."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from controlplane.leader.election import JITTER_FACTOR, ElectionConfig, Elector, LeaseRecord
from controlplane.leader.lease import Leases, LostRace, lease_object

log = logging.getLogger("tulle.leader")
Callback = Callable[[], None]


def _wall() -> datetime:
    return datetime.now(UTC)


class LeaderElection:
    def __init__(
        self,
        leases: Leases,
        namespace: str,
        name: str,
        config: ElectionConfig,
        *,
        on_started: Callback | None = None,
        on_stopped: Callback | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = _wall,
    ) -> None:
        self.leases = leases
        self.namespace = namespace
        self.name = name
        self.elector = Elector(config)
        self.on_started = on_started
        self.on_stopped = on_stopped
        self.clock = clock
        self.wall = wall
        self._was_leading = False
        self._lock = threading.Lock()

    @property
    def identity(self) -> str:
        return self.elector.config.identity

    def leading(self) -> bool:
        with self._lock:
            return self.elector.leading(self.clock())

    def try_acquire_or_renew(self) -> bool:
        """One attempt (client-go's tryAcquireOrRenew): True when we hold the Lease now."""
        began = self.clock()
        seen = self.leases.get(self.namespace, self.name)
        record = None if seen is None else LeaseRecord.from_spec(seen.get("spec") or {})
        with self._lock:
            self.elector.observe(record, began)
            want = self.elector.desired(self.wall(), began)
        if want is None:
            return False
        obj = lease_object(self.namespace, self.name, want, seen)
        try:
            if seen is None:
                self.leases.create(obj)
            else:
                self.leases.replace(obj)
        except LostRace:
            log.info("lease %s/%s: another candidate wrote first", self.namespace, self.name)
            return False
        with self._lock:
            self.elector.written(want, began)
        return True

    def step(self) -> float:
        """One attempt, then the start/stop callbacks; returns the seconds to wait."""
        try:
            self.try_acquire_or_renew()
        except Exception as err:  # the API away or failing: the deadline decides
            log.warning("lease %s/%s: %s", self.namespace, self.name, err)
        self._transition()
        period = self.elector.config.retry_period
        if self._was_leading:
            return period
        return period * (1 + random.uniform(0, JITTER_FACTOR))  # client-go's jittered wait

    def _transition(self) -> None:
        now_leading = self.leading()
        if now_leading and not self._was_leading:
            log.info("%s: started leading (lease %s/%s)", self.identity, self.namespace,
                     self.name)
            self._was_leading = True
            if self.on_started is not None:
                self.on_started()
        elif not now_leading and self._was_leading:
            log.warning("%s: stopped leading (lease %s/%s)", self.identity, self.namespace,
                        self.name)
            self._was_leading = False
            if self.on_stopped is not None:
                self.on_stopped()

    def run(self, stop: threading.Event) -> None:
        """Campaign and renew until ``stop``; then stop leading and release the Lease."""
        try:
            while not stop.is_set():
                stop.wait(self.step())
        finally:
            self.release()

    def release(self) -> None:
        """Give the Lease up (client-go's ReleaseOnCancel), after stopping our work, so
        another replica takes over at once rather than after the lease duration."""
        if self._was_leading:
            self._was_leading = False
            if self.on_stopped is not None:
                self.on_stopped()
        with self._lock:
            give_up = self.elector.release(self.wall())
            self.elector.released()
        if give_up is None:
            return
        try:
            seen = self.leases.get(self.namespace, self.name)
            if seen is None or (seen.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            self.leases.replace(lease_object(self.namespace, self.name, give_up, seen))
        except Exception as err:  # it expires on its own
            log.warning("lease %s/%s: release failed: %s", self.namespace, self.name, err)

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop,), name="leader-election",
                                  daemon=True)
        thread.start()
        return thread
