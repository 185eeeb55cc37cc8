"""cdefs: the small C enum reader behind drop_reasons and config keys."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from agent.datapath.cdefs import (
    CDefsError,
    CEnumEntry,
    aliases,
    enum_entries,
    enum_values,
    struct_type,
)


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


def test_struct_type_has_c_layout(tmp_path: Path) -> None:
    path = header(
        tmp_path,
        "struct other { __u8 x; };\n"
        "struct rec {\n"
        "\t__u64 ts; /* first */\n"
        "\t/* a comment line */\n"
        "\t__be32 addr;\n"
        "\t__u8 kind;\n"
        "\t__u16 port; /* padded to 2 */\n"
        "\t__u64 total;\n"
        "};\n",
    )
    rec = struct_type(path, "rec")
    assert [field[0] for field in rec._fields_] == ["ts", "addr", "kind", "port", "total"]
    assert (rec.addr.offset, rec.kind.offset, rec.port.offset, rec.total.offset) == (8, 12, 14, 16)
    assert ctypes.sizeof(rec) == 24


def test_struct_type_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(CDefsError, match="no 'struct missing"):
        struct_type(header(tmp_path, "struct rec { __u8 a; };\n"), "missing")
    with pytest.raises(CDefsError, match="cannot read field line 'struct tuple4 t;'"):
        struct_type(header(tmp_path, "struct rec {\n\t__u8 a;\n\tstruct tuple4 t;\n};\n"), "rec")


def test_defines_reads_integer_flags_from_the_header(tmp_path) -> None:
    from agent.datapath.cdefs import CDefsError, defines

    header = tmp_path / "flags.h"
    header.write_text(
        "#define EP_F_A 0x1 /* one */\n#define EP_F_B 64\n#define EP_F_ALIAS EP_F_A\n"
        "#define OTHER 0x2\n"
    )
    assert defines(header, "EP_F_") == {"EP_F_A": 1, "EP_F_B": 64}
    with pytest.raises(CDefsError, match="no #define NOPE_"):
        defines(header, "NOPE_")


def test_the_waypoint_and_the_planners_load_without_bcc() -> None:
    """The waypoint reads shared flags from C through cdefs, not through the BCC-backed map
    writers: importing BCC (libLLVM, libclang) cost it ~60 MB and start-up time."""
    import subprocess
    import sys

    code = "import sys, l7proxy.node, agent.datapath.desired; print('bcc' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
