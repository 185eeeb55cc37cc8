"""The compile cache's key and record, without a kernel: what changes the key, and how a
record that cannot be trusted is refused with a reason naming what differs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from agent.datapath import templates
from agent.datapath.cdefs import BPF_DIR
from agent.datapath.templates import Mismatch, Program

SOURCES = [BPF_DIR / "from_pod.c", BPF_DIR / "to_pod.c"]
FLAGS = ['-DTULLE_PIN_DIR="/sys/fs/bpf/tulle/x/n1"']
PROGRAMS = [Program("tulle_from_pod", 3), Program("tulle_to_pod", 3)]


def key(sources: list[Path] = SOURCES, flags: list[str] = FLAGS,
        programs: list[Program] = PROGRAMS) -> str:
    return templates.key_of(templates.inputs(sources, flags, programs))


def test_same_inputs_same_key() -> None:
    assert key() == key()
    assert len(key()) == 64


def test_a_changed_header_changes_the_key(tmp_path: Path) -> None:
    """A header included by the source, not just the source file itself."""
    main = tmp_path / "main.c"
    (tmp_path / "mine.h").write_text("#define X 1\n")
    main.write_text('#include "mine.h"\nint x = X;\n')
    before = key([main])
    (tmp_path / "mine.h").write_text("#define X 2\n")
    assert key([main]) != before


def test_a_copied_source_with_one_more_comment_changes_the_key(tmp_path: Path) -> None:
    copy = tmp_path / "from_pod.c"
    copy.write_text((BPF_DIR / "from_pod.c").read_text() + "/* one more line */\n")
    assert key([copy, SOURCES[1]]) != key()


@pytest.mark.parametrize("flags", [[*FLAGS, "-DTULLE_DEBUG=1"],
                                   ['-DTULLE_PIN_DIR="/sys/fs/bpf/tulle/x/n2"']])
def test_flags_and_the_pin_dir_change_the_key(flags: list[str]) -> None:
    assert key(flags=flags) != key()


def test_program_names_and_types_change_the_key() -> None:
    assert key(programs=PROGRAMS[:1]) != key()
    assert key(programs=[Program("tulle_from_pod", 4), PROGRAMS[1]]) != key()


def test_kernel_and_bcc_are_in_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    before = key()
    real = os.uname()
    other = os.uname_result((real.sysname, real.nodename, real.release + "+1", real.version,
                             real.machine))
    monkeypatch.setattr(templates.os, "uname", lambda: other)
    assert key() != before
    monkeypatch.undo()
    monkeypatch.setattr(templates, "_bcc_version", lambda: "9.9.9")
    assert key() != before


def write(state: Path, record: dict[str, Any], *, digest: bool = True) -> None:
    if digest:
        record["digest"] = templates._digest(record)
    state.mkdir(exist_ok=True)
    (state / templates.RECORD_NAME).write_text(json.dumps(record))


def base_record() -> dict[str, Any]:
    ins = templates.inputs(SOURCES, FLAGS, PROGRAMS)
    return {"format": templates.RECORD_FORMAT, "key": templates.key_of(ins), "inputs": ins,
            "programs": {}, "tables": {}}


def read(state: Path) -> dict[str, Any]:
    ins = templates.inputs(SOURCES, FLAGS, PROGRAMS)
    return templates.read_record(state, templates.key_of(ins), ins)


def test_a_matching_record_is_read(tmp_path: Path) -> None:
    write(tmp_path, base_record())
    assert read(tmp_path)["programs"] == {}


def test_no_record(tmp_path: Path) -> None:
    with pytest.raises(Mismatch, match="no compile record at"):
        read(tmp_path)


@pytest.mark.parametrize("text", ["", "{not json", "[1, 2]", '{"format": 99}'])
def test_unreadable_or_foreign_records(tmp_path: Path, text: str) -> None:
    (tmp_path / templates.RECORD_NAME).write_text(text)
    with pytest.raises(Mismatch, match="unreadable|another format"):
        read(tmp_path)


def test_an_edited_record_fails_its_digest(tmp_path: Path) -> None:
    record = base_record()
    write(tmp_path, record)
    record["programs"] = {"tulle_from_pod": {"tag": "00" * 8, "map_ids": [], "type": 3}}
    write(tmp_path, record, digest=False)
    with pytest.raises(Mismatch, match="does not match its digest"):
        read(tmp_path)


def test_the_reason_names_the_inputs_that_changed(tmp_path: Path) -> None:
    old = base_record()
    old["inputs"]["cflags"] = [*old["inputs"]["cflags"], "-DOLD"]
    old["key"] = templates.key_of(old["inputs"])
    write(tmp_path, old)
    with pytest.raises(Mismatch, match=r"^the cflags changed since the last compile$"):
        read(tmp_path)
    old["inputs"]["source_sha256"] = "0" * 64
    write(tmp_path, old)
    with pytest.raises(Mismatch, match=r"^the source_sha256, cflags changed"):
        read(tmp_path)
