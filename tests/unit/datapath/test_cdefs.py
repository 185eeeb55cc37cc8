"""cdefs: the small C enum reader behind drop_reasons and config keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.datapath.cdefs import CDefsError, CEnumEntry, aliases, enum_entries, enum_values


def header(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "x.h"
    path.write_text(text)
    return path


def test_values_comments_and_implicit_numbering(tmp_path: Path) -> None:
    path = header(
        tmp_path,
        "enum other { NOT_ME = 9 };\n"
        "enum colour {\n"
        "\t/* a comment line */\n"
        "\tRED = 0x10, /* warm */\n"
        "\tGREEN,\n"
        "\tBLUE = RED, /* same as red */\n"
        "\tLAST = 40u\n"
        "};\n"
        "#define CRIMSON RED\n"
        "#define LIMIT (4 + 4)\n",
    )
    assert enum_entries(path, "colour") == [
        CEnumEntry("RED", 16, "warm"),
        CEnumEntry("GREEN", 17, ""),
        CEnumEntry("BLUE", 16, "same as red"),
        CEnumEntry("LAST", 40, ""),
    ]
    assert enum_values(path, "other") == {"NOT_ME": 9}
    assert aliases(path) == {"CRIMSON": "RED"}


def test_missing_enum_and_unreadable_values(tmp_path: Path) -> None:
    path = header(tmp_path, "enum e {\n\tA = 1 << 2,\n};\n")
    with pytest.raises(CDefsError, match="no 'enum nope"):
        enum_entries(path, "nope")
    with pytest.raises(CDefsError, match="not a literal"):
        enum_entries(path, "e")
