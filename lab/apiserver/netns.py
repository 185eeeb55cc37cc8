"""Open a listening socket inside another network namespace: a socket keeps the namespace it
was created in, so the thread enters the namespace, creates and binds it, and returns."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from typing import TypeVar

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/var/run/netns"
T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def in_netns(name: str, make: Callable[[], T]) -> T:
    """Run ``make`` with this thread in netns ``name`` (setns is per thread), then come back."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(os.path.join(NETNS_DIR, name), os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            return make()
        finally:
            _setns(home)
    finally:
        os.close(home)
