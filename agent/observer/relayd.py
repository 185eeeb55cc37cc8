"""The relay as a cluster process (Deployment tulle-relay, `python3 -m agent.cli.node relay`).

It serves the merged observer API on ``--listen`` (4245) and dials every node's agent on
its InternalIP at the agent port (4244) over mTLS (agent.observer.tls), naming each agent
by its Node's name. The agents come from the Node list, read again every
``resync`` seconds (nodes join and leave; the relay needs only ``list nodes``), or from
static ``--peer NAME=ADDRESS`` entries (no API then). Hubble's relay learns the nodes from
the agents' peer service instead; Tulle's agents have no such service yet.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from agent.observer import AGENT_PORT, RELAY_PORT

log = logging.getLogger("tulle.relay")
Peers = list[tuple[str, str]]


@dataclass(frozen=True)
class RelayConfig:
    listen: str = f"0.0.0.0:{RELAY_PORT}"
    kubeconfig: str | None = None  # None: the in-cluster ServiceAccount
    static_peers: tuple[tuple[str, str], ...] = ()  # given: no API, these peers only
    agent_port: int = AGENT_PORT
    cluster: str = "default"  # the agents' TLS names: <node>.<cluster>.observer.tulle.io
    tls: tuple[str, str, str] | None = None  # client cert, key, the agents' CA
    resync: float = 30.0  # seconds between Node lists


def internal_ip(node: Mapping[str, Any]) -> str | None:
    for address in node.get("status", {}).get("addresses", []) or []:
        if address.get("type") == "InternalIP" and address.get("address"):
            return str(address["address"])
    return None


def peers_from_nodes(nodes: Iterable[Mapping[str, Any]], port: int = AGENT_PORT) -> Peers:
    """(node name, "ip:port") per Node with an InternalIP, sorted by name. Pure."""
    out = []
    for node in nodes:
        name = node.get("metadata", {}).get("name")
        ip = internal_ip(node)
        if not name or not ip:
            if name:
                log.warning("Node %s has no InternalIP: its agent is left out", name)
            continue
        try:
            host = f"[{ip}]" if ipaddress.ip_address(ip).version == 6 else ip
        except ValueError:
            log.warning("Node %s: InternalIP %r is not an IP address: left out", name, ip)
            continue
        out.append((str(name), f"{host}:{port}"))
    return sorted(out)


def parse_peer(text: str) -> tuple[str, str]:
    """NAME=ADDRESS (host:port or unix:/path); ValueError naming what is wrong."""
    name, sep, address = text.partition("=")
    if not sep or not name or not address:
        raise ValueError(f"{text!r}: expected NAME=ADDRESS (host:port or unix:/path)")
    if not address.startswith("unix:"):
        host, colon, port = address.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{text!r}: {address!r} is not HOST:PORT or unix:/PATH")
    return name, address


def needs_tls(peers: Sequence[tuple[str, str]]) -> bool:
    return any(not address.startswith("unix:") for _, address in peers)


def _list_peers(client: Any, port: int) -> Peers:
    from agent.kube.resources import resource_for

    return peers_from_nodes((dict(o) for o in client.list(resource_for("Node"))), port)


def run(config: RelayConfig) -> int:
    from agent.observer.relay import Relay
    from agent.observer.tls import ClientTls, TlsConfigError, TlsFiles

    logging.basicConfig(level=logging.INFO, format="%(asctime)s relay %(levelname)s %(message)s")
    tls = None
    if config.tls is not None:
        try:
            tls = ClientTls(TlsFiles.of(*config.tls), config.cluster)
        except TlsConfigError as err:
            raise SystemExit(f"tulle relay: TLS: {err}") from None
    client = None
    peers: Peers = list(config.static_peers)
    if not config.static_peers:
        from agent.kube.source import KubeconfigError, connect

        try:
            client = connect(config.kubeconfig)
        except KubeconfigError as err:
            raise SystemExit(f"tulle relay: {err}") from None
    relay = Relay(peers, tcp_address=config.listen, tls=tls).start()
    log.info("relay serving on %s (TLS to agents: %s)", config.listen,
             "on" if tls is not None else "off")
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.is_set():
        if client is not None:
            try:
                found = _list_peers(client, config.agent_port)
            except Exception as err:  # the API away: keep the last peers, try again later
                log.warning("cannot list Nodes (%s): keeping %d peers", err, len(peers))
            else:
                if found != peers:
                    log.info("agents: %s", ", ".join(f"{n} ({a})" for n, a in found) or "none")
                    peers = found
                    relay.set_peers(peers)
        stop.wait(config.resync if client is not None else 3600)
    relay.stop()
    return 0
