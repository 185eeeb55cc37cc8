"""Reading and writing the CNI state directory (thin I/O over ``cni.record``).

Runtimes run the plugin for different pods in parallel, and the agent reads while the plugin
writes: each file is written to a unique temporary name in its directory, fsynced and renamed,
so readers see the old file, the new file or none, never half of one.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cni.record import (
    AGENT_FILE,
    ATTACHED_DIR,
    ENDPOINTS_DIR,
    AttachMark,
    EndpointRecord,
    RecordError,
    decode_mark,
    decode_record,
    encode_mark,
    encode_record,
)

POLL_INTERVAL = 0.05  # the ADD's wait for the agent's mark; ~1 stat per 50 ms is nothing


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def endpoint_path(state_dir: Path, key: str) -> Path:
    return state_dir / ENDPOINTS_DIR / f"{key}.json"


def mark_path(state_dir: Path, key: str) -> Path:
    return state_dir / ATTACHED_DIR / f"{key}.json"


def agent_path(state_dir: Path) -> Path:
    return state_dir / AGENT_FILE


def write_record(state_dir: Path, rec: EndpointRecord) -> None:
    write_atomic(endpoint_path(state_dir, rec.key), encode_record(rec))


def read_record(state_dir: Path, key: str) -> EndpointRecord | None:
    """The record under ``key``; None when there is none; RecordError when it is damaged."""
    try:
        data = endpoint_path(state_dir, key).read_bytes()
    except FileNotFoundError:
        return None
    return decode_record(data)


def write_mark(state_dir: Path, mark: AttachMark) -> None:
    write_atomic(mark_path(state_dir, mark.key), encode_mark(mark))


def read_mark(state_dir: Path, key: str) -> AttachMark | None:
    try:
        return decode_mark(mark_path(state_dir, key).read_bytes())
    except (FileNotFoundError, RecordError):  # half-made by an older writer: not attached yet
        return None


def remove(state_dir: Path, key: str) -> None:
    """Forget an attachment: its record and the agent's mark (missing files are fine)."""
    endpoint_path(state_dir, key).unlink(missing_ok=True)
    mark_path(state_dir, key).unlink(missing_ok=True)


def keys(state_dir: Path) -> list[str]:
    """Every attachment key that has a record or a mark."""
    found: set[str] = set()
    for sub in (ENDPOINTS_DIR, ATTACHED_DIR):
        try:
            names = os.listdir(state_dir / sub)
        except FileNotFoundError:
            continue
        found.update(
            n[: -len(".json")] for n in names if n.endswith(".json") and not n.startswith(".")
        )
    return sorted(found)


def wait_attached(
    state_dir: Path,
    rec: EndpointRecord,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Wait until the agent marks ``rec``'s host interface attached; False after ``timeout``.

    A mark for another ifindex (a previous sandbox under the same key) does not count."""
    deadline = clock() + timeout
    while True:
        mark = read_mark(state_dir, rec.key)
        if mark is not None and mark.host_ifindex == rec.host_ifindex:
            return True
        if clock() >= deadline:
            return False
        sleep(POLL_INTERVAL)
