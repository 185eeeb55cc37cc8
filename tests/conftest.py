"""Test tiers and the CI rules that guard them.

Tiers: unit (no marker, no root), `root`, `netns` and `bpf` (need root and kernel features).
Under CI=true a required tier may not skip: a skipped root/netns/bpf test fails the run,
because a green run that skipped the datapath proves nothing.
"""

from __future__ import annotations

import os

import pytest

ROOT_TIERS = ("root", "netns", "bpf")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (run `sudo make test`)")
    for item in items:
        if any(item.get_closest_marker(t) for t in ROOT_TIERS):
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and any(item.get_closest_marker(t) for t in ROOT_TIERS):
        report.outcome = "failed"
        report.longrepr = f"required tier skipped under CI: {report.longrepr}"


# -- leak check --------------------------------------------------------------------------
TEST_LAB_PREFIX = "tulle-test"


def _leftovers() -> list[str]:
    import subprocess
    from pathlib import Path

    found: list[str] = []
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [
        f"netns {line.split()[0]}" for line in ns.splitlines() if line.startswith(TEST_LAB_PREFIX)
    ]
    pins = Path("/sys/fs/bpf/tulle")
    if pins.is_dir():
        found += [f"bpf pins {p}" for p in pins.glob("test*")]
    cgroups = Path("/sys/fs/cgroup/unified/tulle")  # lab.cgroups: labs' and fixtures' trees
    if cgroups.is_dir():
        found += [f"cgroup {p}" for p in cgroups.glob("test*")]
    etc = Path("/etc/netns")
    if etc.is_dir():
        found += [f"resolver dir {p}" for p in etc.glob(f"{TEST_LAB_PREFIX}*")]
    # Lab processes and pods carry TULLE_LAB=<lab> in their environment.
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            env = environ.read_bytes().split(b"\0")
            cmd = (
                (environ.parent / "cmdline")
                .read_bytes()
                .replace(b"\0", b" ")
                .decode(errors="replace")
            )
        except OSError:
            continue
        if any(v.startswith(b"TULLE_LAB=test") for v in env):
            found.append(f"process {environ.parent.name}: {cmd.strip()}")
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Every test run ends with a leak check: fixtures must remove all they created."""
    if os.geteuid() != 0:
        return
    leaks = _leftovers()
    if leaks:
        print("\nLEAK CHECK FAILED: the tests left these behind:\n  " + "\n  ".join(leaks))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
