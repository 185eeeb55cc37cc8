"""The executable as a runtime runs it: environment and stdin in, JSON and exit status out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .helpers import conf, env

REPO = Path(__file__).resolve().parents[3]


def plugin(environ: dict[str, str], stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "cni"],
        env={**base, **environ},
        input=stdin,
        capture_output=True,
        timeout=30,
    )


def test_version_on_stdout_exit_0() -> None:
    proc = plugin({"CNI_COMMAND": "VERSION"}, b'{"cniVersion": "1.1.0"}')
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["supportedVersions"][-1] == "1.1.0"


def test_malformed_config_is_an_error_object_on_stdout_exit_1(tmp_path: Path) -> None:
    proc = plugin(env("ADD"), b"{not json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["code"] == 6
    assert b"tulle-cni:" in proc.stderr  # a copy for the runtime's log


def test_missing_command_is_code_4() -> None:
    proc = plugin({}, b"")
    assert proc.returncode == 1 and json.loads(proc.stdout)["code"] == 4


def test_del_twice_through_the_executable(tmp_path: Path) -> None:
    for _ in range(2):
        proc = plugin(env("DEL"), conf(tmp_path))
        assert (proc.returncode, proc.stdout) == (0, b""), proc.stderr


def test_the_plugin_never_loads_the_agent_or_pyroute2_for_del() -> None:
    code = (
        "import sys, os; from cni.plugin import run; "
        "run({'CNI_COMMAND': 'DEL', 'CNI_CONTAINERID': 'c', 'CNI_IFNAME': 'eth0', "
        '\'CNI_PATH\': \'/x\'}, lambda: b\'{"cniVersion": "1.0.0", "name": "n", '
        '"type": "tulle-cni", "stateDir": "/nonexistent/tulle"}\'); '
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('agent', 'pyroute2', 'lab', 'l7proxy', 'yaml', 'asyncio')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert out.strip() == "[]"
