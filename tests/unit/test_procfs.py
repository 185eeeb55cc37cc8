"""Process start times from /proc: one parser for the agent's age and the lab's records."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from agent.procfs import parse_start_ticks, start_ticks
from lab import procs


@given(comm=st.text(alphabet=st.sampled_from("ab )(:\t1"), max_size=15),
       ticks=st.integers(min_value=0, max_value=2**63 - 1))
def test_field_22_is_read_whatever_the_command_name_holds(comm: str, ticks: int) -> None:
    rest = ["S", "1", "1", "1", "0", "-1", "4194560"] + ["0"] * 12 + [str(ticks), "12345"]
    line = f"4242 ({comm}) {' '.join(rest)}\n"
    assert parse_start_ticks(line) == ticks


def test_a_process_named_with_a_paren_and_spaces(tmp_path: Path) -> None:
    # The kernel keeps the executable's name (up to 15 bytes) as field 2.
    odd = tmp_path / ") 1 2 3 x"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", odd)
    child = subprocess.Popen([str(odd), "30"])
    try:
        stat = Path(f"/proc/{child.pid}/stat").read_text()
        assert ") 1 2 3 x)" in stat
        ticks = start_ticks(child.pid)
        assert ticks is not None and ticks >= (start_ticks() or 0)
        # The lab's liveness check reads the same field: the child is alive as recorded.
        rec = procs.ProcRecord("odd", child.pid, ticks, (str(odd),), "")
        assert procs.is_alive(rec)
    finally:
        child.kill()
        child.wait()
    assert start_ticks(child.pid) is None
    assert not procs.is_alive(rec)


def test_this_process_is_self() -> None:
    assert start_ticks() == start_ticks(os.getpid())
    out = subprocess.run(
        [sys.executable, "-c", "import os; print(open(f'/proc/{os.getpid()}/stat').read())"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert parse_start_ticks(out) > 0
