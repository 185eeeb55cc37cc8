"""programs.load_datapath without BCC: where the compile cache's hash runs on a fresh node."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from agent.datapath import programs, templates


class Recorder:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[str] = []
        self.remembered: list[dict[str, Any]] = []
        self.compile_started = threading.Event()
        real_inputs = templates.inputs

        def inputs(*args: Any) -> dict[str, Any]:
            where = "beside the compile" if self.compile_started.is_set() else "before"
            self.events.append(f"hash {where} on {threading.current_thread().name}")
            return real_inputs(*args)

        def compile_(pin_dir: Path, *_args: Any) -> programs.Datapath:
            self.compile_started.set()
            self.events.append("compile")
            return programs.Datapath(pin_dir, 3, 4, bpf=object(), compiled=True)

        def remember(_dp: Any, _state: Path, ins: dict[str, Any]) -> bool:
            self.remembered.append(ins)
            return False  # served as compiled: no adoption of its pins here

        monkeypatch.setattr(templates, "inputs", inputs)
        monkeypatch.setattr(programs, "_compile", compile_)
        monkeypatch.setattr(programs, "_remember", remember)


def test_without_a_record_the_compile_does_not_wait_for_the_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder(monkeypatch)
    state = tmp_path / "state"
    caplog.set_level("INFO", "tulle.datapath")
    dp = programs.load_datapath(tmp_path / "pins", state_dir=state,
                                compiling=lambda: rec.events.append("compiling"))
    assert dp.compiled and dp.from_pod_fd == 3
    # Nothing hashed on the loading thread before the compile: on a thread of its own.
    hashes = [e for e in rec.events if e.startswith("hash")]
    assert rec.events[0] == "compiling" and "compile" in rec.events
    assert len(hashes) == 1 and hashes[0].endswith(" on bcc-hash")
    # The record still gets the inputs of this compile.
    want = templates.inputs(list(programs.PROGRAM_SOURCES),
                            [f'-DTULLE_PIN_DIR="{tmp_path / "pins"}"'], programs.PROGRAMS)
    assert rec.remembered == [want]
    assert f"no compile record at {state / templates.RECORD_NAME}" in caplog.text


def test_with_a_record_the_hash_decides_before_any_compile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder(monkeypatch)
    state = tmp_path / "state"
    state.mkdir()
    (state / templates.RECORD_NAME).write_text("{}")  # another format: it compiles
    caplog.set_level("INFO", "tulle.datapath")
    programs.load_datapath(tmp_path / "pins", state_dir=state)
    assert rec.events == ["hash before on MainThread", "compile"]
    assert len(rec.remembered) == 1
    assert "has another format" in caplog.text
