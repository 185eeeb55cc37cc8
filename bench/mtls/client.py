"""The fixed-rate client as the runner starts it: build loadgen.c, the argv that runs
bench.mtls.loadgen in a pod's network namespace, and its JSON answer."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.l4.labs import BenchError

REPO = Path(__file__).resolve().parents[2]
SOURCE = Path(__file__).with_name("loadgen.c")


def build(out: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise BenchError(f"no C compiler for {SOURCE}: install gcc or pass --engine python")
    argv = [cc, "-O2", "-Wall", "-pthread", "-o", str(out), str(SOURCE)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise BenchError(f"building {SOURCE} failed: {proc.stderr.strip()[-600:]}")
    return out


def argv(
    url: str,
    *,
    rate: float,
    connections: int,
    warmup: float,
    seconds: float,
    c_binary: Path | None,
) -> list[str]:
    """`lab exec` keeps the environment but a pod runs from the repo only with PYTHONPATH."""
    args = ["env", f"PYTHONPATH={REPO}", sys.executable, "-m", "bench.mtls.loadgen",
            "--url", url, "--rate", str(rate), "--connections", str(connections),
            "--warmup", str(warmup), "--seconds", str(seconds)]  # fmt: skip
    return args + (["--c-binary", str(c_binary)] if c_binary is not None else [])


def result(proc: subprocess.CompletedProcess[str], url: str) -> dict[str, Any]:
    try:
        out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError) as err:
        raise BenchError(
            f"loadgen against {url} failed ({proc.returncode}): {proc.stderr.strip()[-600:]}"
        ) from err
    return out
