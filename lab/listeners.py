"""The waypoints' listening sockets, held by the lab for as long as it is up.

``lab up`` opens each node's waypoint listeners (15001 L7, 15007 and 15008 HBONE) inside the
node's network namespace and passes them to the waypoint it starts and to the controller, whose
supervisor passes them again to every waypoint it restarts (``TULLE_LISTEN_FDS``,
l7proxy/listenfds.py). The sockets never close while the lab runs, so a connection the
datapath redirects while a waypoint restarts waits in the accept queue instead of being reset.

The controller learns which fds are whose from ``TULLE_HELD_LISTENERS`` (JSON: role -> the
``TULLE_LISTEN_FDS`` value for it); the numbers are the same in every process, as
``subprocess``'s ``pass_fds`` keeps them. Its kubelet passes them the same way to every
container of a pod annotated ``lab.tulle.io/held-listeners: waypoint`` on that node
(``pod_listeners``): a waypoint run as a DaemonSet pod.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Mapping

from identity.hbone import HBONE_PORT, TUNNEL_OUTBOUND_PORT
from identity.system import SYSTEM_NAMESPACE
from l7proxy.listenfds import ENV as LISTEN_FDS_ENV
from l7proxy.listenfds import format_fds, parse_fds
from lab.apiserver.netns import in_netns
from lab.components import role
from lab.topology import WAYPOINT_PORT, NodePlan

HELD_ENV = "TULLE_HELD_LISTENERS"
WAYPOINT_PORTS = (WAYPOINT_PORT, TUNNEL_OUTBOUND_PORT, HBONE_PORT)
# The accept queue is what carries a restart: sized for a second of new connections at a
# busy node. The kernel caps it at the netns's net.core.somaxconn (4096 by default).
BACKLOG = 4096


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def open_waypoint_listeners(
    netns: str, host: str, ports: tuple[int, ...] = WAYPOINT_PORTS
) -> list[socket.socket]:
    """Listening sockets on ``host`` at ``ports``, created inside ``netns``."""

    def make() -> list[socket.socket]:
        out: list[socket.socket] = []
        try:
            for port in ports:
                out.append(_listen(host, port))
        except BaseException:
            for sock in out:
                sock.close()
            raise
        return out

    return in_netns(netns, make)


def waypoint_roles(node: str) -> tuple[tuple[str, list[str]], ...]:
    """A node's two waypoint processes (l7proxy/standby.py) and their extra arguments: the
    first serves at lab up; the standby waits until the lock has been held once."""
    return (role("waypoint", node), []), (role("waypoint-standby", node), ["--standby"])


def open_for_waypoints(nodes: Iterable[NodePlan]) -> dict[str, list[socket.socket]]:
    """role -> its listening sockets, for every node (both waypoints of a node share them)."""
    held: dict[str, list[socket.socket]] = {}
    try:
        for node in nodes:
            socks = open_waypoint_listeners(node.netns, str(node.waypoint_ip))
            for role, _ in waypoint_roles(node.name):
                held[role] = socks
    except BaseException:
        close_all(held)
        raise
    return held


def close_all(held: Mapping[str, list[socket.socket]]) -> None:
    for socks in held.values():
        for sock in socks:
            sock.close()  # a second close (shared by two roles) is a no-op


def listen_fds(socks: list[socket.socket]) -> str:
    """The ``TULLE_LISTEN_FDS`` value naming ``socks`` by their bound address."""
    return format_fds({sock.getsockname()[:2]: sock.fileno() for sock in socks})


def held_from_environ(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """role -> its ``TULLE_LISTEN_FDS`` value, as ``lab up`` gave the controller; every value
    is checked here, so a malformed one stops the controller at start, not at a restart."""
    raw = environ.get(HELD_ENV)
    if not raw:
        return {}
    try:
        held = json.loads(raw)
    except ValueError as err:
        raise ValueError(f"{HELD_ENV}: not JSON: {err}") from None
    if not isinstance(held, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in held.items()
    ):
        raise ValueError(f"{HELD_ENV}: expected an object of role -> {LISTEN_FDS_ENV} value")
    for value in held.values():
        parse_fds(value)
    return held


def child_launch(
    held: Mapping[str, str], role: str, environ: Mapping[str, str] = os.environ
) -> tuple[dict[str, str], tuple[int, ...]]:
    """The environment and fds to start ``role`` with: its held sockets, if any, and never
    the whole table (that is the controller's)."""
    env = {k: v for k, v in environ.items() if k not in (HELD_ENV, LISTEN_FDS_ENV)}
    value = held.get(role)
    if not value:
        return env, ()
    env[LISTEN_FDS_ENV] = value
    return env, tuple(sorted(parse_fds(value).values()))


HELD_ANNOTATION = "lab.tulle.io/held-listeners"
HELD_KINDS = ("waypoint",)


def pod_listeners(
    annotations: Mapping[str, str], node: str, held: Mapping[str, str], *,
    namespace: str, host_network: bool,
) -> tuple[str, tuple[int, ...], str]:
    """The ``TULLE_LISTEN_FDS`` value and the fds the kubelet passes to each container of a
    pod annotated ``lab.tulle.io/held-listeners: waypoint`` on ``node`` (the node's held
    waypoint sockets, so a waypoint run as a DaemonSet pod serves the addresses spawn mode's
    does and keeps them across its restarts), and what is wrong with the annotation ("").
    ("", (), "") without the annotation, or in a lab that holds none (no datapath).
    Only a hostNetwork pod of Tulle's own namespace may have them: any other pod holding
    the waypoint's listening sockets would accept the connections the datapath redirects
    to the waypoint."""
    kind = annotations.get(HELD_ANNOTATION)
    if kind is None:
        return "", (), ""
    if namespace != SYSTEM_NAMESPACE or not host_network:
        return "", (), (f"annotation {HELD_ANNOTATION}: only hostNetwork pods of namespace "
                        f"{SYSTEM_NAMESPACE} may hold the node's listeners (this pod: "
                        f"namespace {namespace}, hostNetwork {str(host_network).lower()})")
    if kind not in HELD_KINDS:
        return "", (), (f"annotation {HELD_ANNOTATION}: unsupported value {kind!r} "
                        f"(supported: {', '.join(HELD_KINDS)})")
    value = held.get(role("waypoint", node), "")  # both waypoint roles hold the same
    return value, tuple(sorted(parse_fds(value).values())) if value else (), ""
