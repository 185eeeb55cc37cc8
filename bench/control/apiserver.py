"""A lab API server process for the control-plane benchmarks: started over a store, ready
once it prints its kubeconfig, stopped (our own child, by its handle) on exit."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def served(store: Path, state_dir: Path, *args: str) -> Iterator[Path]:
    """Serve ``store`` (extra ``args`` go to ``python -m lab.apiserver``); yields the
    admin kubeconfig."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab.apiserver", "--store", str(store)]
        + ["--state-dir", str(state_dir), *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("KUBECONFIG="):
                break
        else:
            raise SystemExit("the lab API server exited before it served")
        yield state_dir / "kubeconfig"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
