"""bench.l7.ab's callgrind mode reads a dump's instruction total (the rest of it runs
processes: exercised by running it, bench/results/request-split-2026-12-05-cost2.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.l7.ab import _callgrind_totals

DUMP = """# callgrind format
version: 1
creator: callgrind-3.19.0
cmd:  python -m l7proxy --request-split on
events: Ir
summary: 1531621419

fn=(1) main
16 5
totals: 1533921849
"""


def test_the_totals_line_is_the_instruction_count(tmp_path: Path) -> None:
    path = tmp_path / "cg.out.1"
    path.write_text(DUMP)
    assert _callgrind_totals(path) == 1531621419  # the first of summary/totals
    path.write_text(DUMP.replace("summary: 1531621419\n", ""))
    assert _callgrind_totals(path) == 1533921849


def test_a_dump_without_totals_is_named(tmp_path: Path) -> None:
    path = tmp_path / "cg.out.1"
    path.write_text("# callgrind format\nevents: Ir\n")
    with pytest.raises(ValueError, match="no totals line"):
        _callgrind_totals(path)
