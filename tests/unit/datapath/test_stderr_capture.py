"""fd 2 borrowed by one thread (a BCC compile's ``captured_stderr``, the feature probe) must
not swallow what other threads log: the agent logs to its own dup of stderr, and the probe
silences libbpf through its print hook instead of redirecting fd 2."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from agent.datapath import features

REPO = Path(__file__).resolve().parents[3]

LOGGING_SCRIPT = r"""
import json, logging, os, threading
from agent.daemon import setup_logging
from agent.datapath.native import captured_stderr

setup_logging("n1")
inside, logged = threading.Event(), threading.Event()

def other():
    inside.wait(5)
    logging.getLogger("tulle.agent").info("logged by another thread")
    logged.set()

threading.Thread(target=other).start()
with captured_stderr() as out:
    inside.set()
    logged.wait(5)
    os.write(2, b"compiler diagnostics\n")
print(json.dumps(out))
"""


def test_a_record_logged_by_another_thread_during_a_capture_reaches_the_log() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LOGGING_SCRIPT], capture_output=True, text=True, cwd=REPO,
        timeout=60, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 0, result.stderr
    captured = json.loads(result.stdout.strip().splitlines()[-1])
    assert "n1 INFO logged by another thread" in result.stderr
    assert captured == ["compiler diagnostics\n"]  # the capture still gets fd 2's own text


def test_the_feature_probe_leaves_fd_2_to_other_threads(
        monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    def probe() -> dict[str, bool]:
        writer = threading.Thread(target=os.write, args=(2, b"written by another thread\n"))
        writer.start()
        writer.join()
        return {}

    monkeypatch.setattr(features, "_probe_all", probe)
    assert features.feature_probe.__wrapped__() == {}
    assert "written by another thread" in capfd.readouterr().err


_PRINT = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
features.libbpf.bpf_object__open_file.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
features.libbpf.bpf_object__open_file.restype = ctypes.c_void_p


def _libbpf_warns() -> None:
    """libbpf explains on its print hook why it cannot open a missing object file."""
    assert not features.libbpf.bpf_object__open_file(b"/nonexistent/tulle-test.o", None)


def test_the_feature_probe_silences_libbpf_and_restores_its_printer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    printed: list[bytes] = []
    printer = _PRINT(lambda _level, fmt, _args: printed.append(fmt) or 0)
    during: list[int] = []

    def probe() -> dict[str, bool]:
        _libbpf_warns()
        during.append(len(printed))
        return {}

    previous = features.libbpf.libbpf_set_print(printer)
    try:
        _libbpf_warns()
        assert printed  # the hook is ours
        printed.clear()
        monkeypatch.setattr(features, "_probe_all", probe)
        features.feature_probe.__wrapped__()
        assert during == [0]  # silent while probing
        _libbpf_warns()
        assert printed  # and ours again after
    finally:
        features.libbpf.libbpf_set_print(previous)


def test_what_bcc_raised_is_the_compile_error_s_reason_and_cause(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A compile that fails without a clang error (BCC's own Python, a missing kernel
    header package) keeps BCC's exception: its words in the message, itself as the cause
    (the traceback then shows where BCC failed), beside what went to fd 2."""
    from agent.datapath import bpf_loader

    source = tmp_path / "prog.c"
    source.write_text("int x;\n")
    boom = TypeError("an argument BCC did not expect")

    def failing_bpf(**_kwargs: object) -> None:
        os.write(2, b"modprobe: FATAL: Module kheaders not found\n")
        raise boom

    monkeypatch.setattr(bpf_loader, "BPF", failing_bpf)
    with pytest.raises(bpf_loader.CompileError) as err:
        bpf_loader.load_program([source], [])
    assert err.value.__cause__ is boom
    assert ("failed: no clang error found; BCC raised TypeError('an argument BCC did not "
            "expect')") in str(err.value)
    assert err.value.diagnostics == "modprobe: FATAL: Module kheaders not found"
