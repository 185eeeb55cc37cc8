"""L2 announcement on a real Ethernet segment: two "nodes" and a plain client netns on a
bridge (a fabric of their own, inside namespaces this test creates). The elected node's
responder makes the client resolve the LoadBalancer address to that node's MAC and the other
node stays silent; when the elected node stops, the election moves the address and the
survivor's gratuitous ARP moves the client's neighbour entry without the client asking."""

from __future__ import annotations

import re
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from agent.announce.election import elect
from agent.announce.responder import ArpResponder
from lab.apiserver.netns import in_netns

pytestmark = [pytest.mark.root, pytest.mark.netns]
ADDRESS = "10.250.0.241"  # on no interface: only a responder can answer for it
NODE_IPS = {"node1": "10.250.0.11", "node2": "10.250.0.12"}
CLIENT_IP = "10.250.0.2"
LOCKTIME = 1.1  # Linux ignores a neighbour update within locktime (1 s) of the last one


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def fabric() -> Iterator[dict[str, str]]:
    tag = secrets.token_hex(3)
    names = {"fabric": f"tulle-test-l2{tag}f", "client": f"tulle-test-l2{tag}c",
             **{node: f"tulle-test-l2{tag}{node[-1]}" for node in NODE_IPS}}
    try:
        for ns in names.values():
            ip("netns", "add", ns)
        ip("-n", names["fabric"], "link", "add", "br0", "type", "bridge")
        ip("-n", names["fabric"], "link", "set", "br0", "up")
        for role, address in (("client", CLIENT_IP), *NODE_IPS.items()):
            port = f"p{role[-1]}"
            # Created inside the fabric netns and moved straight to the member's: nothing in
            # the machine's root namespace.
            ip("-n", names["fabric"], "link", "add", port, "type", "veth", "peer", "name",
               "eth0", "netns", names[role])
            ip("-n", names["fabric"], "link", "set", port, "master", "br0", "up")
            ip("-n", names[role], "addr", "add", f"{address}/24", "dev", "eth0")
            ip("-n", names[role], "link", "set", "eth0", "up")
        yield names
    finally:
        for ns in names.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def mac_of(ns: str) -> str:
    return re.search(r"link/ether (\S+)", ip("-n", ns, "link", "show", "eth0")).group(1)


def neighbour(ns: str) -> str | None:
    found = re.search(r"lladdr (\S+)", ip("-n", ns, "neigh", "show", ADDRESS, "dev", "eth0"))
    return found.group(1) if found else None


def resolve(ns: str) -> str | None:
    """What the client's kernel resolves the address to: a ping (nobody answers it) makes
    it ask by ARP."""
    ip("-n", ns, "neigh", "flush", "dev", "eth0")
    subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", ADDRESS],
                   capture_output=True)
    return neighbour(ns)


def wait_for(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_the_elected_node_answers_and_another_takes_over(fabric: dict[str, str]) -> None:
    responders = {n: in_netns(fabric[n], lambda: ArpResponder.open("eth0")).start()
                  for n in NODE_IPS}
    try:
        winner = elect(ADDRESS, NODE_IPS)
        assert winner is not None
        survivor = next(n for n in NODE_IPS if n != winner)
        for node, responder in responders.items():
            responder.announce(frozenset({ADDRESS}) if node == winner else frozenset())
        assert resolve(fabric["client"]) == mac_of(fabric[winner])
        assert responders[winner].answered >= 1 and responders[survivor].answered == 0
        # A node's own address is still the kernel's to answer, not the responder's.
        assert responders[winner].mac.hex(":") == mac_of(fabric[winner])

        time.sleep(LOCKTIME)
        responders.pop(winner).close()  # the elected node's agent stops
        assert elect(ADDRESS, [survivor]) == survivor
        responders[survivor].announce(frozenset({ADDRESS}))
        # Gratuitous ARP alone moves the client's entry: it asked nothing since.
        assert wait_for(lambda: neighbour(fabric["client"]) == mac_of(fabric[survivor]))
        assert resolve(fabric["client"]) == mac_of(fabric[survivor])
    finally:
        for responder in responders.values():
            responder.close()


def test_a_missing_interface_is_a_clear_error(fabric: dict[str, str]) -> None:
    with pytest.raises(OSError, match="No such device"):
        in_netns(fabric["node1"], lambda: ArpResponder.open("nosuch0"))


def test_the_agent_refuses_a_missing_announce_interface_at_start(fabric: dict[str, str]) -> None:
    from agent.daemon import _open_responder

    with pytest.raises(SystemExit, match="--announce-interface nosuch0: No such device"):
        in_netns(fabric["node1"], lambda: _open_responder("nosuch0"))
    assert _open_responder(None) is None
