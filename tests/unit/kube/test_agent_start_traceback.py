"""An agent start that fails while its BCC thread compiles still leaves its traceback in
the container's log (the process's stderr: `kubectl logs`).

The compile borrows fd 2 process-wide (agent.datapath.native.captured_stderr) for as long
as clang runs, seconds on a fresh node. A failure on the main thread meanwhile (here: the
metrics port is taken) ends the process before the compile gives fd 2 back; the
interpreter's traceback used to go into the compile's capture file and vanish with it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.unit.kube.conftest import Lab, account_kubeconfig, free_port

REPO = Path(__file__).resolve().parents[3]

# The agent's CLI with a datapath compile that holds fd 2 and never ends.
AGENT = r"""
import sys, threading
from agent import bcc_thread
from agent.datapath.native import captured_stderr

def compiling(pin_dir, state_dir, compiling=None, maps_ready=None):
    if compiling is not None:
        compiling()
    with captured_stderr():
        print("compile started", file=sys.__stdout__, flush=True)
        threading.Event().wait()

bcc_thread.load_datapath = compiling
from agent.cli.node import node_cli
node_cli(sys.argv[1:], prog_name="tulle-agent")
"""


def test_a_start_failing_during_the_compile_leaves_its_traceback_on_stderr(
    lab: Lab, tmp_path: Path,
) -> None:
    kubeconfig = account_kubeconfig(lab, "tulle-agent")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-c", AGENT, "agent", "--node", "node1",
             "--kubeconfig", str(kubeconfig), "--pin-dir", str(tmp_path / "pins"),
             "--state-dir", "", "--no-trace", "--observer-port", str(free_port()),
             "--metrics-address", f"127.0.0.1:{busy}"],
            capture_output=True, text=True, timeout=60, cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert "compile started" in done.stdout, done.stdout + done.stderr  # the failure came during it
    assert done.returncode == 1, done.stderr
    assert "Traceback (most recent call last)" in done.stderr, done.stderr
    assert "OSError: [Errno 98] Address already in use" in done.stderr, done.stderr
