"""The active/standby pair's lock (l7proxy/standby.py): one holder at a time, the standby
takes over when the active lets go (as the kernel does when it dies), and a second starter
lets the first go first."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from l7proxy.standby import ActiveLock, holder

BOUND = 30.0  # a liveness bound for a busy machine, not a timing assertion


def test_one_holder_at_a_time_and_it_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "run" / "waypoint.lock"
    first, second = ActiveLock(path), ActiveLock(path)
    try:
        assert holder(path) is None
        assert first.try_acquire() and first.held
        assert not second.try_acquire() and not second.held
        assert holder(path) == os.getpid()
    finally:
        first.close()
        second.close()


def test_the_standby_takes_over_when_the_active_dies(tmp_path: Path) -> None:
    path = tmp_path / "waypoint.lock"
    # The active is another process holding the lock until it is killed (SIGKILL).
    active = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nos.write(fd, b'%d\\n' % os.getpid())\n"
         "print('held', flush=True)\ntime.sleep(600)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert active.stdout is not None and active.stdout.readline() == "held\n"
        standby = ActiveLock(path)

        async def main() -> bool:
            waiting = asyncio.ensure_future(standby.acquire())
            await asyncio.sleep(0.2)
            before = waiting.done()
            active.kill()
            await asyncio.wait_for(waiting, BOUND)
            return before

        assert asyncio.run(main()) is False  # it waited while the active lived
        assert standby.held and holder(path) == os.getpid()
        standby.close()
    finally:
        active.kill()
        active.wait()


def test_a_second_starter_lets_the_first_take_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "waypoint.lock"
    second, first = ActiveLock(path), ActiveLock(path)

    async def main() -> None:
        waiting = asyncio.ensure_future(second.acquire(second=True))
        await asyncio.sleep(0.2)
        assert not waiting.done() and not second.held  # nobody has held it: it waits
        assert first.try_acquire()
        await asyncio.sleep(0.2)
        assert not waiting.done()  # now the first holds it
        first.close()
        await asyncio.wait_for(waiting, BOUND)

    asyncio.run(main())
    assert second.held
    second.close()
