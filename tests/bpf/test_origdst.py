"""The waypoint's BCC-free reader of l7_orig_dst_v1 returns what from_pod.c wrote.

from_pod redirects a SYN for an L7 Service (BPF_PROG_TEST_RUN) and records the client's
original destination; `OriginalDestinations` then reads the pinned map through libbpf alone,
with the key and value layouts parsed from bpf/lib/redirect.h.
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from collections.abc import Iterator

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from agent.datapath import maps
from agent.datapath.maglev import maglev_table
from agent.datapath.origdst import OriginalDestination, OriginalDestinations
from agent.datapath.programs import Datapath
from agent.datapath.testrun import SkBuff, test_run

from .conftest import loaded_datapath

pytestmark = pytest.mark.bpf

IFINDEX = 1
CLIENT, BACKEND, VIP = "10.244.1.2", "10.244.2.3", "10.96.0.77"
CLIENT_ID, BACKEND_ID = 301, 401
WAYPOINT = (ipaddress.IPv4Address("10.244.1.254"), 15001)


@pytest.fixture(scope="module")
def datapath() -> Iterator[Datapath]:
    with loaded_datapath() as dp:
        yield dp


def redirect(dp: Datapath, client_port: int, vport: int) -> None:
    """Run one SYN from CLIENT to VIP:vport (an L7 Service) through from_pod."""
    maps.write_endpoint(dp, IFINDEX, ipaddress.IPv4Address(CLIENT), CLIENT_ID, 0)
    maps.write_ipcache(dp, {ipaddress.IPv4Address(CLIENT): CLIENT_ID,
                            ipaddress.IPv4Address(BACKEND): BACKEND_ID})
    table = maglev_table([f"{BACKEND}:8080"])
    maps.write_service(dp, ipaddress.IPv4Address(VIP), vport, 6,
                       [(ipaddress.IPv4Address(BACKEND), 8080)], table, 0, None, maps.LB_F_L7)
    maps.write_waypoint(dp, WAYPOINT)
    packet = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
              / IP(src=CLIENT, dst=VIP) / TCP(sport=client_port, dport=vport, flags="S"))
    ctx = SkBuff()
    ctx.ifindex = IFINDEX
    out = Ether(test_run(dp.from_pod_fd, bytes(packet), ctx=ctx).data_out)
    assert (out[IP].dst, out[TCP].dport) == (str(WAYPOINT[0]), WAYPOINT[1])


def test_reader_returns_what_the_kernel_program_wrote(datapath: Datapath) -> None:
    redirect(datapath, 46100, 80)
    redirect(datapath, 46101, 8443)
    reader = OriginalDestinations(datapath.pin_dir, wait=0)
    try:
        assert reader.lookup(CLIENT, 46100) == OriginalDestination(VIP, 80, CLIENT_ID)
        assert reader.lookup(CLIENT, 46101) == OriginalDestination(VIP, 8443, CLIENT_ID)
        assert reader.lookup(CLIENT, 46102) is None  # never redirected
        assert reader.lookup("10.244.9.9", 46100) is None
    finally:
        reader.close()
        maps.write_waypoint(datapath, None)


def test_reader_needs_no_bcc(datapath: Datapath) -> None:
    """The waypoint's process never imports BCC for this (it used to compile C to open it)."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from agent.datapath.origdst import OriginalDestinations\n"
        f"r = OriginalDestinations(Path({str(datapath.pin_dir)!r}), wait=0)\n"
        f"print(r.lookup({CLIENT!r}, 46100))\n"
        "assert not [m for m in sys.modules if m == 'bcc' or m.startswith('bcc.')]\n"
    )
    redirect(datapath, 46100, 80)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert f"address='{VIP}'" in done.stdout and f"client_identity={CLIENT_ID}" in done.stdout
