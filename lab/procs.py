"""Starting and stopping the lab's long-running processes, tracked by PID and start time.

Each process gets a record file; a PID is only ever signalled after checking its start time
still matches, so a recycled PID belonging to someone else is never touched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.files import read_json, write_json_atomic
from agent.procfs import seconds_since, start_ticks


@dataclass(frozen=True, slots=True)
class ProcRecord:
    role: str
    pid: int
    start_time: int  # clock ticks since boot, /proc/PID/stat field 22
    argv: tuple[str, ...]
    log: str


def uptime(rec: ProcRecord) -> float:
    """Seconds since the recorded process started (it may have exited since); 0 if unknown."""
    if rec.start_time <= 0:
        return 0.0
    try:
        return max(0.0, seconds_since(rec.start_time))
    except (OSError, ValueError, IndexError):
        return 0.0


def is_alive(rec: ProcRecord) -> bool:
    return start_ticks(rec.pid) == rec.start_time and not _is_zombie(rec.pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def netns_argv(netns: str | None, argv: Sequence[str]) -> list[str]:
    """Switch only the network namespace, so bpffs and tracefs stay the host's."""
    if netns is None:
        return list(argv)
    return ["nsenter", f"--net=/var/run/netns/{netns}", "--", *argv]


def spawn(
    role: str,
    argv: Sequence[str],
    *,
    log: Path,
    record_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    pass_fds: Sequence[int] = (),
) -> tuple[subprocess.Popen[bytes], ProcRecord]:
    """Start a detached process (own session) with output appended to `log`; ``pass_fds``
    stay open in it under the same numbers (held listening sockets, lab/listeners.py)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(env) if env is not None else None,
            close_fds=True,
            pass_fds=tuple(pass_fds),
        )
    start = start_ticks(proc.pid) or 0
    rec = ProcRecord(role=role, pid=proc.pid, start_time=start, argv=tuple(argv), log=str(log))
    if record_dir is not None:
        write_json_atomic(record_dir / f"{role}.json", asdict(rec))
    return proc, rec


def load_records(record_dir: Path) -> list[ProcRecord]:
    records = []
    for path in sorted(record_dir.glob("*.json")):
        data = read_json(path)
        if data:
            data["argv"] = tuple(data["argv"])
            records.append(ProcRecord(**data))
    return records


def terminate(rec: ProcRecord, timeout: float = 5.0) -> bool:
    """SIGTERM the process group we started, then SIGKILL after `timeout`. True if it was ours."""
    if not is_alive(rec):
        return False
    _signal_group(rec.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(rec):
            return True
        time.sleep(0.05)
    _signal_group(rec.pid, signal.SIGKILL)
    return True


def signal_group(rec: ProcRecord, sig: signal.Signals) -> bool:
    """Send ``sig`` to the process group we started, without waiting. True if it was ours
    and alive."""
    if not is_alive(rec):
        return False
    _signal_group(rec.pid, sig)
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # Processes are started with start_new_session, so their PGID is their PID.
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)
