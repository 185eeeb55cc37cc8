"""The agent's watch on tulle-cni's records: a pod's CNI ADD is blocked until the agent marks
its record, so a new record must reach the datapath within a fraction of a second.

A poll, not inotify: one ``scandir`` of ``<stateDir>/endpoints`` every ``INTERVAL`` (a stat
per record: ~1 ms of CPU a second for 100 pods), compared by (name, inode, mtime): every
record is written by rename, so a rewritten one is a new file. A record deleted and written
again at once may get the freed inode back (tests/unit/cni/test_agent_records.py caught
that), hence the mtime; and the records are read in full every ``FULL_EVERY`` seconds,
should both match. It works the same on any filesystem and through a container's bind
mount.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from agent.cni import attachments, registry
from cni.record import ENDPOINTS_DIR, EndpointRecord

log = logging.getLogger("tulle.cni")
INTERVAL = 0.1  # seconds between looks: ADD's wait grows by half of it on average
FULL_EVERY = 2.0  # seconds between full reads, whatever the listing says


def listing(endpoints: Path) -> frozenset[tuple[str, int, int]]:
    """(name, inode, mtime) of every record file (temporary files left out); empty when the
    directory is not there yet."""
    found = set()
    try:
        with os.scandir(endpoints) as entries:
            for entry in entries:
                if not entry.name.endswith(".json") or entry.name.startswith("."):
                    continue
                try:
                    found.add((entry.name, entry.inode(), entry.stat().st_mtime_ns))
                except FileNotFoundError:  # removed by a DEL since the listing
                    continue
    except FileNotFoundError:
        pass
    return frozenset(found)


class RecordWatch:
    """Reads the records when they change and hands the live ones to ``on_records``."""

    def __init__(self, state_dir: Path, on_records: Callable[[list[EndpointRecord]], object],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.state_dir = state_dir
        self.on_records = on_records
        self.clock = clock
        self._seen: frozenset[tuple[str, int, int]] | None = None
        self._read_at = float("-inf")
        self._damaged: tuple[tuple[str, str], ...] = ()
        self._stale: frozenset[str] = frozenset()

    def poll(self) -> bool:
        """One look; True when the records were read and handed over."""
        now = self.clock()
        seen = listing(self.state_dir / ENDPOINTS_DIR)
        if seen == self._seen and now - self._read_at < FULL_EVERY:
            return False
        self._seen, self._read_at = seen, now
        snapshot = registry.read_records(self.state_dir)
        if snapshot.damaged != self._damaged:
            for name, why in snapshot.damaged:
                log.warning("tulle-cni record %s ignored: %s", name, why)
            self._damaged = snapshot.damaged
        kept, stale = attachments.live(snapshot.records.values())
        stale_keys = frozenset(r.key for r in stale)
        for key in sorted(stale_keys - self._stale):
            log.warning("tulle-cni record %s ignored: its netns is gone (no DEL came)", key)
        self._stale = stale_keys
        self.on_records(kept)
        return True

    def run(self, stop: threading.Event, interval: float = INTERVAL) -> None:
        while not stop.is_set():
            self.poll_logged()
            stop.wait(interval)

    def poll_logged(self) -> None:
        """``poll``, whatever goes wrong logged and not raised: a thread that died would leave
        every later ADD on the node waiting while the agent reports healthy."""
        try:
            self.poll()
        except OSError as err:  # a state directory that went away: say so, look again
            log.warning("cannot read tulle-cni's records in %s: %s", self.state_dir, err)
        except Exception:
            log.exception("tulle-cni's records in %s: reading them failed", self.state_dir)
            self._seen = None  # read again in full next time


def watch_records(state_dir: Path, node: str,
                  on_records: Callable[[list[EndpointRecord]], object],
                  wake: threading.Event, stop: threading.Event) -> threading.Thread:
    """Read the records once, announce the agent (the plugin's STATUS answers ready), then
    follow them on a thread of their own until ``stop``; ``wake`` is set after each
    hand-over (the agent's sync loop programs what it took)."""

    def take(records: list[EndpointRecord]) -> None:
        on_records(records)
        wake.set()

    watch = RecordWatch(state_dir, take)
    watch.poll_logged()  # before the announcement: what ADDs wait on is taken in at once
    registry.announce(state_dir, node)
    log.info("reading tulle-cni's records in %s", state_dir)
    thread = threading.Thread(target=watch.run, args=(stop,), name="cni-records", daemon=True)
    thread.start()
    return thread
