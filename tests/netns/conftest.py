"""Fixtures for the netns tier: a real lab with its own state directory and lab name.

Every lab here is named test<random> so the session leak check can find anything left.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lab import lifecycle
from lab.state import LabPaths


@dataclass
class Lab:
    name: str
    env: dict[str, str]

    def tulle(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "agent.cli.main", *args],
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"tulle {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def apply(self, manifest: str) -> str:
        return self.tulle("apply", "-f", "-", input=manifest).stdout

    def get(self, kind: str, namespace: str = "default") -> list[dict[str, Any]]:
        out = self.tulle("get", kind, "-n", namespace, "-o", "json").stdout
        return list(json.loads(out)["items"])

    def exec(
        self, namespace: str, pod: str, *cmd: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        return self.tulle(
            "lab", "exec", "-n", namespace, pod, "--", *cmd, check=check, timeout=timeout
        )

    def wait_pods_ready(
        self, namespace: str, count: int, timeout: float = 60
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        pods: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            pods = self.get("pods", namespace)
            ready = [
                p
                for p in pods
                if any(
                    c.get("type") == "Ready" and c.get("status") == "True"
                    for c in (p.get("status") or {}).get("conditions", [])
                )
            ]
            if len(ready) == count and len(pods) == count:
                return pods
            time.sleep(0.2)
        raise AssertionError(
            f"{count} ready pods in {namespace} not seen within {timeout}s: {pods}"
        )


def new_lab_env(tmp: Path, name: str) -> dict[str, str]:
    return dict(os.environ, TULLE_STATE_DIR=str(tmp), TULLE_LAB=name)


def _progress(_msg: str) -> None:
    pass


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One two-node lab shared by the netns tier (bring-up costs a few seconds). Its pod
    network is `$TULLE_TEST_LAB_CNI` (`tulle lab up --cni`: builtin, the tier's default, or
    chain), so the whole tier can be run against the CNI chain; Tulle's install is
    `$TULLE_TEST_LAB_INSTALL` (`--install`: spawn, the tier's default, or manifests). The
    CLI's defaults are chain and manifests; the tier keeps the faster lab until a full root
    run has passed on those."""
    name = "test" + secrets.token_hex(3)
    state = tmp_path_factory.mktemp("tulle-state")
    env = new_lab_env(state, name)
    previous = os.environ.get("TULLE_STATE_DIR")
    os.environ["TULLE_STATE_DIR"] = str(state)
    try:
        lifecycle.up(name, 2, _progress, cni=os.environ.get("TULLE_TEST_LAB_CNI", "builtin"),
                     mode=os.environ.get("TULLE_TEST_LAB_INSTALL", "spawn"))
        yield Lab(name, env)
    finally:
        lifecycle.down(name, _progress)
        if previous is None:
            os.environ.pop("TULLE_STATE_DIR", None)
        else:
            os.environ["TULLE_STATE_DIR"] = previous


# What the lab's own processes said when a test failed: a CI run keeps no state directory,
# so a failure that depends on the lab's history (a controller round that stalled, a watch
# that ended) is only diagnosable from these lines in the report.
_LOGS_ON_FAILURE = ("controller.log", "apiserver.log")
_LOG_TAIL_LINES = 60


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed or "lab" not in getattr(item, "fixturenames", ()):
        return
    lab: Lab | None = getattr(item, "funcargs", {}).get("lab")
    if lab is None:
        return
    logs = LabPaths(lab.name, Path(lab.env["TULLE_STATE_DIR"]) / lab.name).logs
    for name in _LOGS_ON_FAILURE:
        try:
            lines = (logs / name).read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
        except OSError as err:
            lines = [f"(unreadable: {err})"]
        report.sections.append((f"lab {name} (last {_LOG_TAIL_LINES} lines)", "\n".join(lines)))
