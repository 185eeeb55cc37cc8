"""csource.expand_sources without BCC: markers per line, and a path resolved once per file."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.datapath import csource
from agent.datapath.cdefs import BPF_DIR
from agent.datapath.programs import PROGRAM_SOURCES


def _tree(tmp_path: Path) -> Path:
    (tmp_path / "a.h").write_text('#include "b.h"\nint a;\n')
    (tmp_path / "b.h").write_text("int b;\n")
    main = tmp_path / "main.c"
    main.write_text('#include "a.h"\n#include "b.h"\n#define X \\\n  1\nint m;\n')
    return main


def test_every_line_keeps_its_file_and_number(tmp_path: Path) -> None:
    text = csource.expand_sources([_tree(tmp_path)])
    main, a, b = (str((tmp_path / n).resolve()) for n in ("main.c", "a.h", "b.h"))
    assert text.splitlines() == [
        f'#line 1 "{main}"', f'#line 1 "{a}"', f'#line 1 "{b}"', "int b;",
        f'#line 2 "{a}"', "int a;",
        f'#line 2 "{main}"',  # b.h: inlined once, like #pragma once
        f'#line 3 "{main}"', "#define X \\", "  1",  # no marker inside a continued line
        f'#line 5 "{main}"', "int m;",
    ]


def test_each_file_is_resolved_once_not_once_per_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # A resolve stats every path component (and lets another thread take the GIL): once per
    # line, it cost ~15,000 stats per expansion of the datapath.
    calls: list[Path] = []
    real = csource.display

    def counted(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(csource, "display", counted)
    text = csource.expand_sources(list(PROGRAM_SOURCES))
    files = {line.split('"')[1] for line in text.splitlines() if line.startswith("#line ")}
    assert len(files) > 5 and len(calls) == len(files)
    assert all(name.startswith("bpf/") for name in files)  # relative to the repository
    assert (BPF_DIR / "from_pod.c").resolve() in calls
