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
libc = ctypes.CDLL(None, use_errno=True)  # the process's C library (syscall, madvise, ...)

libbpf.bpf_obj_pin.argtypes = [ctypes.c_int, ctypes.c_char_p]
libbpf.bpf_obj_pin.restype = ctypes.c_int
libbpf.bpf_obj_get.argtypes = [ctypes.c_char_p]
libbpf.bpf_obj_get.restype = ctypes.c_int
libbpf.bpf_map_update_batch.argtypes = [
    ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32),
    ctypes.c_void_p,
]
libbpf.bpf_map_update_batch.restype = ctypes.c_int
libbpf.bpf_map_delete_batch.argtypes = [
    ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32), ctypes.c_void_p,
]
libbpf.bpf_map_delete_batch.restype = ctypes.c_int
libbpf.bpf_map_delete_elem.argtypes = [ctypes.c_int, ctypes.c_void_p]
libbpf.bpf_map_delete_elem.restype = ctypes.c_int
libbpf.bpf_map_lookup_batch.argtypes = [
    ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint32), ctypes.c_void_p,
]
libbpf.bpf_map_lookup_batch.restype = ctypes.c_int


ENOTSUPP = 524  # kernel-internal errno that leaks out of bpf(2); Python's errno lacks it


def errno_name(err: int) -> str:
    """``EBADF`` for 9; ``errno 4242`` for codes Python does not know."""
    return "ENOTSUPP" if err == ENOTSUPP else errno.errorcode.get(err, f"errno {err}")


def os_error(err: int, what: str, hint: str = "") -> OSError:
    """An OSError whose text names the call, the errno symbol and its meaning."""
    meaning = "operation not supported" if err == ENOTSUPP else os.strerror(err)
    text = f"{what}: {errno_name(err)} ({meaning})"
    return OSError(err, f"{text}; {hint}" if hint else text)


def failure(ret: int) -> int:
    """The errno of a libbpf call's return ``ret``, 0 when it succeeded: libbpf >= 1.0
    returns ``-errno`` directly (and sets errno); a bare -1 means look at errno."""
    if ret >= 0:
        return 0
    return -ret if ret < -1 else ctypes.get_errno() or errno.EINVAL


def check(ret: int, what: str, hints: dict[int, str] | None = None) -> int:
    """Return ``ret`` when it is >= 0, else raise :func:`os_error`."""
    err = failure(ret)
    if not err:
        return ret
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


class BatchError(OSError):
    """A batch call failed part-way: ``written`` entries, the first ones, were done (the
    kernel's generic batch stops at the first entry it cannot write or delete)."""

    def __init__(self, err: OSError, written: int) -> None:
        super().__init__(err.errno, err.strerror)
        self.written = written


Buffer = ctypes.Array[Any] | bytearray


def _address(buffer: Buffer) -> int:
    if isinstance(buffer, bytearray):
        return ctypes.addressof((ctypes.c_char * len(buffer)).from_buffer(buffer))
    return ctypes.addressof(buffer)


def update_batch(fd: int, keys: Buffer, values: Buffer, count: int | None = None) -> None:
    """Write ``keys[i] -> values[i]`` in one bpf(2) call (BPF_MAP_UPDATE_BATCH, flags 0):
    ctypes arrays (``count`` defaults to their length) or packed buffers of ``count``
    entries. Raises :class:`BatchError` naming the errno and how many were written."""
    n = len(keys) if count is None else count
    done = ctypes.c_uint32(n)
    ret = libbpf.bpf_map_update_batch(fd, _address(keys), _address(values),
                                      ctypes.byref(done), None)
    try:
        check(ret, f"bpf_map_update_batch(fd={fd}, {n} entries; {done.value} written)")
    except OSError as err:
        raise BatchError(err, done.value) from None


def delete_batch(fd: int, keys: Buffer, count: int) -> None:
    """Delete ``count`` packed keys in one bpf(2) call (BPF_MAP_DELETE_BATCH). A missing
    key stops the batch there (ENOENT): :class:`BatchError` says how many went."""
    done = ctypes.c_uint32(count)
    ret = libbpf.bpf_map_delete_batch(fd, _address(keys), ctypes.byref(done), None)
    try:
        check(ret, f"bpf_map_delete_batch(fd={fd}, {count} entries; {done.value} deleted)")
    except OSError as err:
        raise BatchError(err, done.value) from None


def lookup_batch(fd: int, key_size: int, value_size: int, chunk: int) -> tuple[bytes, bytes, int]:
    """Every entry of a hash map, read ``chunk`` at a time (BPF_MAP_LOOKUP_BATCH): the packed
    keys, the packed values and how many. ``chunk`` must exceed the entries of any one hash
    bucket (ENOSPC otherwise); a few thousand does."""
    token_size = max(key_size, 8)  # the kernel's resume token: a bucket index for a hash
    tokens = (bytearray(token_size), bytearray(token_size))
    keys, values = bytearray(chunk * key_size), bytearray(chunk * value_size)
    key_parts, value_parts, total, first = [], [], 0, True
    while True:
        count = ctypes.c_uint32(chunk)
        ret = libbpf.bpf_map_lookup_batch(
            fd, None if first else _address(tokens[0]), _address(tokens[1]),
            _address(keys), _address(values), ctypes.byref(count), None)
        err = failure(ret)
        if err not in (0, errno.ENOENT):  # ENOENT: the last entries (or none) came with it
            raise os_error(err, f"bpf_map_lookup_batch(fd={fd}, {chunk} entries)")
        n = count.value
        key_parts.append(bytes(keys[:n * key_size]))
        value_parts.append(bytes(values[:n * value_size]))
        total += n
        if err:
            return b"".join(key_parts), b"".join(value_parts), total
        tokens, first = (tokens[1], tokens[0]), False


def delete_elem(fd: int, key: Buffer) -> bool:
    """Delete one key; False when it was not there."""
    ret = libbpf.bpf_map_delete_elem(fd, _address(key))
    if failure(ret) == errno.ENOENT:
        return False
    check(ret, f"bpf_map_delete_elem(fd={fd})")
    return True


libbpf.bpf_raw_tracepoint_open.argtypes = [ctypes.c_char_p, ctypes.c_int]
libbpf.bpf_raw_tracepoint_open.restype = ctypes.c_int


def raw_tracepoint_open(event: bytes | None, prog_fd: int) -> int:
    """Run ``prog_fd`` on raw tracepoint ``event`` (None: the program's own BTF target, as
    fentry attaches); the returned fd holds it there. OSError naming the call otherwise."""
    return check(libbpf.bpf_raw_tracepoint_open(event, prog_fd),
                 f"bpf_raw_tracepoint_open({event!r}, program fd {prog_fd})")


BPF_CGROUP_SOCK_OPS = 3  # uapi enum bpf_attach_type
BPF_F_ALLOW_MULTI = 2  # other programs (another node's agent, a CNI) keep their place

libbpf.bpf_prog_attach.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_uint]
libbpf.bpf_prog_attach.restype = ctypes.c_int
libbpf.bpf_prog_detach2.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
libbpf.bpf_prog_detach2.restype = ctypes.c_int
libbpf.bpf_prog_query.argtypes = [
    ctypes.c_int, ctypes.c_int, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32),
    ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_uint32),
]
libbpf.bpf_prog_query.restype = ctypes.c_int


def prog_attach(prog_fd: int, target_fd: int, attach_type: int,
                flags: int = BPF_F_ALLOW_MULTI) -> None:
    """Attach ``prog_fd`` to a cgroup (``target_fd``) for ``attach_type``; it stays
    attached (beyond our fds) until :func:`prog_detach`."""
    check(libbpf.bpf_prog_attach(prog_fd, target_fd, attach_type, flags),
          f"bpf_prog_attach(program fd {prog_fd}, cgroup fd {target_fd}, type {attach_type})",
          {errno.EEXIST: "already attached there"})


def prog_detach(prog_fd: int, target_fd: int, attach_type: int) -> bool:
    """Detach ``prog_fd`` from the cgroup; False when it was not attached there."""
    ret = libbpf.bpf_prog_detach2(prog_fd, target_fd, attach_type)
    if failure(ret) == errno.ENOENT:
        return False
    check(ret, f"bpf_prog_detach2(program fd {prog_fd}, cgroup fd {target_fd}, "
               f"type {attach_type})")
    return True


libbpf.bpf_prog_get_fd_by_id.argtypes = [ctypes.c_uint32]
libbpf.bpf_prog_get_fd_by_id.restype = ctypes.c_int


def prog_fd_by_id(prog_id: int) -> int:
    """An fd for the loaded program ``prog_id`` (the caller closes it)."""
    return check(libbpf.bpf_prog_get_fd_by_id(prog_id), f"bpf_prog_get_fd_by_id({prog_id})")


def prog_query(target_fd: int, attach_type: int, room: int = 64) -> list[int]:
    """The ids of the programs attached to the cgroup ``target_fd`` for ``attach_type``
    (directly, not inherited from its parents)."""
    ids = (ctypes.c_uint32 * room)()
    count, flags = ctypes.c_uint32(room), ctypes.c_uint32(0)
    check(libbpf.bpf_prog_query(target_fd, attach_type, 0, ctypes.byref(flags), ids,
                                ctypes.byref(count)),
          f"bpf_prog_query(cgroup fd {target_fd}, type {attach_type})")
    return list(ids[:count.value])


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
        trim = libc.malloc_trim
    except AttributeError:
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)
    return True


# The compiler behind BCC: ~80 MB of their file pages stay mapped in our RSS after a compile.
COMPILER_LIBRARIES = ("libLLVM", "libclang-cpp", "libbcc", "libz3")
_MADV_DONTNEED = 4
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.madvise.restype = ctypes.c_int


def drop_file_pages(prefixes: tuple[str, ...] = COMPILER_LIBRARIES,
                    smaps: Path = Path("/proc/self/smaps")) -> int:
    """Unmap the resident pages of the libraries whose file names start with ``prefixes``
    (madvise MADV_DONTNEED), where that loses nothing: read-only mappings that hold no
    private (copied-on-write) page, resident or swapped, whose next access reads the same
    bytes back from the page cache. A compile done, its pages leave our RSS; the next
    compile faults back only those it uses. Returns the kB of RSS dropped."""
    dropped = 0
    for start, end, rss_kb in _clean_mappings(smaps.read_text(), prefixes):
        if libc.madvise(start, end - start, _MADV_DONTNEED) == 0:
            dropped += rss_kb
    return dropped


def _clean_mappings(text: str, prefixes: tuple[str, ...]) -> list[tuple[int, int, int]]:
    """(start, end, Rss kB) of each smaps entry that :func:`drop_file_pages` may drop. Pure."""
    out: list[tuple[int, int, int]] = []
    span: tuple[int, int] | None = None  # the entry being read, when it is a candidate
    fields: dict[str, int] = {}
    for line in [*text.splitlines(), "0-0 ---p end"]:  # the sentinel ends the last entry
        head = line.split(maxsplit=5)
        if len(head) >= 3 and "-" in head[0] and not head[0].endswith(":"):
            # A private copy may be resident (Anonymous, Private_Dirty) or swapped out (Swap);
            # a field that is absent counts as one (never drop blind).
            if span is not None and fields.get("Rss", 0) and not any(
                    fields.get(f, 1) for f in ("Anonymous", "Private_Dirty", "Swap")):
                out.append((span[0], span[1], fields["Rss"]))
            start, end = (int(x, 16) for x in head[0].split("-"))
            name = Path(head[5]).name if len(head) > 5 else ""
            span = (start, end) if "w" not in head[1] and name.startswith(prefixes) else None
            fields = {}
        elif span is not None and len(head) >= 2 and head[0].endswith(":") \
                and head[1].isdigit():
            fields[head[0][:-1]] = int(head[1])
    return out
