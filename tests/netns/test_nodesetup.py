"""The DaemonSet's node setup puts the waypoint address on a node's loopback (here a network
namespace the test makes, as a hostNetwork pod would the host's), once: a second run (the
init container after a restart) finds it there."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.netns]

REPO = Path(__file__).resolve().parents[2]
ADD = ("import sys, ipaddress; from agent.cli.nodesetup import add_to_loopback; "
       "print(add_to_loopback(ipaddress.IPv4Address(sys.argv[1])))")


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"tulle-test-setup{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def _add(netns: str, address: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", ADD, address],
                          capture_output=True, text=True, timeout=60, cwd=REPO, check=False,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


def test_the_waypoint_address_lands_on_lo_once(netns: str) -> None:
    first = _add(netns, "10.199.9.254")
    assert first.returncode == 0 and first.stdout.strip() == "True", first.stderr
    again = _add(netns, "10.199.9.254")
    assert again.returncode == 0 and again.stdout.strip() == "False", again.stderr
    out = subprocess.run(["ip", "-n", netns, "-j", "addr", "show", "dev", "lo"],
                         capture_output=True, text=True, check=True).stdout
    [lo] = json.loads(out)
    found = [(a["local"], a["prefixlen"]) for a in lo["addr_info"] if a["family"] == "inet"]
    assert found.count(("10.199.9.254", 32)) == 1
