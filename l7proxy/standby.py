"""An active waypoint and a warm standby on one node, decided by an exclusive ``flock``.

A waypoint started with ``--active-lock PATH`` imports, connects and lists the cluster, then
waits for the lock; the one that holds it serves. The kernel releases a dead process's lock
at once, so the standby takes over within milliseconds of the active's death, with its
cluster view already synced (its informers keep running while it waits), instead of the ~1 s
a fresh Python process needs for its imports and first list (bench/mtls/restart.py). The
restarted process becomes the new standby. Nothing polls: the waiting thread blocks in
``flock`` and wakes the event loop.

The holder writes its PID into the file, so tools (the lab's benchmarks, an operator) can
tell which process is active; the lock, not the file's content, is what decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import threading
from pathlib import Path


class ActiveLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.held = False

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self._claim()
        return True

    async def acquire(self, *, second: bool = False) -> None:
        """Return once this process holds the lock (at once when nobody else does).
        ``second``: let a process that has not held it yet go first (the lab starts the
        pair together and wants the first one it started active, the other the standby)."""
        while second and holder(self.path) is None:
            await asyncio.sleep(0.05)
        if self.try_acquire():
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def wait() -> None:  # a daemon thread: never holds up the exit of a stopped standby
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX)
            except OSError as err:
                loop.call_soon_threadsafe(_settle, done, err)
            else:
                loop.call_soon_threadsafe(_settle, done, None)

        threading.Thread(target=wait, name="active-lock", daemon=True).start()
        await done
        self._claim()

    def _claim(self) -> None:
        self.held = True
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def close(self) -> None:
        os.close(self.fd)  # releases the lock: the standby takes over


def _settle(done: asyncio.Future[None], err: OSError | None) -> None:
    if done.done():
        return
    if err is None:
        done.set_result(None)
    else:
        done.set_exception(err)


def holder(path: Path) -> int | None:
    """The PID the active waypoint wrote, or None (no file, or nobody has held it yet)."""
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    return None
