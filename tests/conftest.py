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
