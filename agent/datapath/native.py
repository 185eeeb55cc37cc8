"""ctypes access to the few libbpf.so.1 calls that BCC 0.26's Python side lacks.

Also home of :func:`captured_stderr`, because libbcc and clang print compiler diagnostics and
verifier logs straight to file descriptor 2, never to Python: we borrow fd 2 to put them into
exceptions.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

libbpf = ctypes.CDLL("libbpf.so.1", use_errno=True)

libbpf.bpf_obj_pin.argtypes = [ctypes.c_int, ctypes.c_char_p]
libbpf.bpf_obj_pin.restype = ctypes.c_int
libbpf.bpf_obj_get.argtypes = [ctypes.c_char_p]
libbpf.bpf_obj_get.restype = ctypes.c_int
libbpf.bpf_map_update_batch.argtypes = [
    ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32),
    ctypes.c_void_p,
]
libbpf.bpf_map_update_batch.restype = ctypes.c_int


ENOTSUPP = 524  # kernel-internal errno that leaks out of bpf(2); Python's errno lacks it


def errno_name(err: int) -> str:
    """``EBADF`` for 9; ``errno 4242`` for codes Python does not know."""
    return "ENOTSUPP" if err == ENOTSUPP else errno.errorcode.get(err, f"errno {err}")


def os_error(err: int, what: str, hint: str = "") -> OSError:
    """An OSError whose text names the call, the errno symbol and its meaning."""
    meaning = "operation not supported" if err == ENOTSUPP else os.strerror(err)
    text = f"{what}: {errno_name(err)} ({meaning})"
    return OSError(err, f"{text}; {hint}" if hint else text)


def check(ret: int, what: str, hints: dict[int, str] | None = None) -> int:
    """Return ``ret`` when it is >= 0, else raise :func:`os_error`.

    libbpf >= 1.0 returns ``-errno`` directly (and sets errno); a bare -1 means look at errno.
    """
    if ret >= 0:
        return ret
    err = -ret if ret < -1 else ctypes.get_errno() or errno.EINVAL
    raise os_error(err, what, (hints or {}).get(err, ""))


def obj_pin(fd: int, path: Path) -> None:
    """Pin a map or program fd at ``path`` (which must lie on a bpffs mount)."""
    check(
        libbpf.bpf_obj_pin(fd, os.fsencode(path)),
        f"bpf_obj_pin(fd={fd}, {str(path)!r})",
        {
            errno.EPERM: "is the path on a bpffs mount (mount -t bpf bpf /sys/fs/bpf)?",
            errno.EEXIST: "something is already pinned there",
        },
    )


def obj_get(path: Path) -> int:
    """Open a pinned map or program; the caller owns (and must close) the returned fd."""
    return check(libbpf.bpf_obj_get(os.fsencode(path)), f"bpf_obj_get({str(path)!r})")


def update_batch(fd: int, keys: ctypes.Array[Any], values: ctypes.Array[Any]) -> None:
    """Write ``keys[i] -> values[i]`` in one bpf(2) call (BPF_MAP_UPDATE_BATCH, flags 0).
    Raises OSError naming the errno; entries before the failing one may have been written."""
    count = ctypes.c_uint32(len(keys))
    check(
        libbpf.bpf_map_update_batch(
            fd, ctypes.addressof(keys), ctypes.addressof(values), ctypes.byref(count), None
        ),
        f"bpf_map_update_batch(fd={fd}, {len(keys)} entries; {count.value} written)",
    )


@contextlib.contextmanager
def captured_stderr(fd: int = 2) -> Iterator[list[str]]:
    """Redirect ``fd`` (stderr by default) into a temporary file; on exit the list holds what
    was written.

    Process-wide while active (other threads' output lands here too), so keep the window short.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(fd)
    out: list[str] = []
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield out
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode(errors="replace"))


def malloc_trim() -> bool:
    """Hand the C heap's free pages back to the kernel (glibc's malloc_trim(0)). A BCC
    compile leaves tens of MB of freed LLVM memory in the heap; without this, the agent's
    first sync stacks its own peak on top of it. False where the libc has no malloc_trim."""
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)
    return True
