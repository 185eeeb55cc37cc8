"""Wake-ups on commit: a watcher of some kinds hears at once that this process committed a
write of one of them, instead of finding it at its next poll of ``PRAGMA data_version``.

Only the kinds a transaction wrote wake anyone: an EndpointSlice write wakes the watches of
EndpointSlices, not the lab's dozens of Pod, Lease or NetworkPolicy watches (each woken watch
opens a read transaction and takes the GIL in the API server that is serving the writer).
A writer only sets flags: a watcher that is slow, or whose client stopped reading, never
delays it. Writes by other processes are not seen here; watchers still poll for them.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable


class Subscription:
    """One watcher's flag: set by a commit of a watched kind (or a wake), cleared by ``wait``."""

    def __init__(self, signal: CommitSignal, kinds: frozenset[str]) -> None:
        self._signal = signal
        self.kinds = kinds
        self._flag = threading.Event()

    def wait(self, timeout: float) -> bool:
        """Until a commit of a watched kind since the last ``wait`` (or ``timeout``);
        True when one came. A commit before the call returns at once: none is lost."""
        woke = self._flag.wait(timeout)
        self._flag.clear()
        return woke

    def set(self) -> None:
        self._flag.set()

    def close(self) -> None:
        self._signal.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class CommitSignal:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_kind: dict[str, set[Subscription]] = {}
        self.notified = 0  # wake-ups sent, summed over watchers (for tests and benches)

    def subscribe(self, kinds: Collection[str]) -> Subscription:
        sub = Subscription(self, frozenset(kinds))
        with self._lock:
            for kind in sub.kinds:
                self._by_kind.setdefault(kind, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            for kind in sub.kinds:
                subs = self._by_kind.get(kind)
                if subs is not None:
                    subs.discard(sub)
                    if not subs:
                        del self._by_kind[kind]

    def watchers(self, kind: str) -> int:
        """How many subscriptions a commit of ``kind`` wakes."""
        with self._lock:
            return len(self._by_kind.get(kind, ()))

    def notify(self, kinds: Iterable[str]) -> None:
        """A transaction that wrote ``kinds`` committed: wake their watchers."""
        with self._lock:
            woken: set[Subscription] = set()
            for kind in kinds:
                woken.update(self._by_kind.get(kind, ()))
            self.notified += len(woken)
        for sub in woken:
            sub.set()

    def wake_all(self) -> None:
        """Every watcher, whatever it watches (a stopping server: they see the stop now)."""
        with self._lock:
            woken = {sub for subs in self._by_kind.values() for sub in subs}
        for sub in woken:
            sub.set()
