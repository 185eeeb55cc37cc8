"""The waypoint runs with exactly the capabilities its DaemonSet grants (the rendered
manifest's, nothing else in its bounding set) and does what a node's waypoint does: opens the
agent's pinned original-destination map, binds its listeners on the node's waypoint address
(15001 for redirected L7, 15007 and 15008 for HBONE, 9966 for metrics), dials a backend from
that address with SO_MARK, and serves a Gateway's port-80 listener end to end.

A Gateway listener needs no privileged port: the datapath redirects a connection to the
Gateway's address:80 to the waypoint's 15001 and records the original destination
(ARCHITECTURE.md, "Gateway listeners"), so the waypoint binds only local, unprivileged ports
and needs neither NET_BIND_SERVICE nor IP_FREEBIND/IP_TRANSPARENT. This test serves port 80 that
way, the map entry written by the test as from_pod.c would.

Each granted capability is needed: dropped one at a time, a named step fails. The probe runs
the waypoint's own code (WaypointServer, WaypointConnector, OriginalDestinations) in a child
under `capsh`, inside a network namespace the test creates (addresses on its lo only); the
map is the test's, pinned under /sys/fs/bpf/tulle and removed after. The real process
(`agent.cli.node waypoint`, the DaemonSet's args) is started the same way against a lab API
server served inside that namespace, and binds its four listeners. Run as a module
(`python -m tests.netns.test_waypoint_capabilities`, as root) it prints each outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from tests.unit.deploy.rendered import one, render
from tests.unit.kube.conftest import account_kubeconfig, serve_lab

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.bpf]

REPO = Path(__file__).resolve().parents[2]
BPFFS = Path("/sys/fs/bpf/tulle")
WAYPOINT = "10.244.0.254"  # the node's waypoint address (on the namespace's lo, as node-setup puts it)
CLIENT = "10.244.0.10"  # a pod
BACKEND = "10.244.0.20"  # the Service's endpoint
GATEWAY = "10.96.100.1"  # the Gateway's address: never bound, only recorded in the map
CLIENT_PORT = 40123
PORTS = {"l7": 15001, "hbone-out": 15007, "hbone-in": 15008, "metrics": 9966}
STEPS = ("orig-dst map", "listen", "mark", "request", "unredirected refused")
PROBE_TIMEOUT = 120.0

ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules: [{backendRefs: [{name: web, port: 8080}]}]
"""


def granted() -> list[str]:
    """The waypoint container's capabilities in the production DaemonSet."""
    daemonset = one(render("production"), "DaemonSet", "tulle-waypoint")
    [waypoint] = [c for c in daemonset["spec"]["template"]["spec"]["containers"]
                  if c["name"] == "waypoint"]
    return list(waypoint["securityContext"]["capabilities"]["add"])


def bounding() -> list[str]:
    out = subprocess.run(["capsh", "--print"], capture_output=True, text=True,
                         check=True).stdout
    [line] = [x for x in out.splitlines() if x.startswith("Bounding set =")]
    return line.removeprefix("Bounding set =").split(",")


# --- the probe: runs in the child, with only the capabilities under test -------------------

async def _backend() -> tuple[asyncio.Server, int]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nserved")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, BACKEND, 0)
    return server, server.sockets[0].getsockname()[1]


def effective() -> list[str]:
    """This process's effective capabilities, by name (capsh decodes /proc's mask)."""
    [mask] = [line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
              if line.startswith("CapEff:")]
    out = subprocess.run(["capsh", f"--decode={mask}"], capture_output=True, text=True,
                         check=True).stdout.strip()
    names = out.partition("=")[2]
    return sorted(n.removeprefix("cap_").upper() for n in names.split(",") if n)


async def probe(pin_dir: Path) -> dict[str, str]:
    """Each step's outcome: "ok" or the error (a step whose inputs failed: "skipped"); and
    under "effective", the capabilities the probe held."""
    from agent.datapath.origdst import WAYPOINT_MARK, OriginalDestinations
    from l7proxy.config import ListenerConfig
    from l7proxy.server import WaypointServer, listening_socket
    from l7proxy.testing import gateway_config
    from l7proxy.upstream import WaypointConnector

    result = dict.fromkeys(STEPS, "skipped")
    backend, backend_port = await _backend()
    config = gateway_config(ROUTE, {"default/web:8080": [(BACKEND, backend_port)]},
                            services=("web",))
    parent = config.listeners[0].parent
    origins: OriginalDestinations | None = None
    try:
        origins = OriginalDestinations(pin_dir, wait=0)
        result["orig-dst map"] = "ok"
    except OSError as err:
        result["orig-dst map"] = f"{type(err).__name__}: {err}"
    held = origins

    def original_destination(client: tuple[str, int]) -> object:
        found = held.lookup(*client) if held is not None else None
        if found is None:
            return None
        return parent if (found.address, found.port) == (GATEWAY, 80) else None

    config.listeners = [ListenerConfig(WAYPOINT, PORTS["l7"])]
    config.original_destination = original_destination  # type: ignore[assignment]
    connector = WaypointConnector(WAYPOINT, WAYPOINT_MARK, connect_timeout=5.0)
    server = WaypointServer(config, connector=connector)
    others: list[socket.socket] = []
    try:
        await server.start(reuse_port=False)
        others = [listening_socket(WAYPOINT, PORTS[name]) for name in PORTS if name != "l7"]
        result["listen"] = "ok"
    except OSError as err:
        result["listen"] = f"{type(err).__name__}: {err}"
    try:
        transport, _ = await connector.open((BACKEND, backend_port), asyncio.Protocol)
        mark = transport.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_MARK)
        transport.close()
        result["mark"] = "ok" if mark == WAYPOINT_MARK else f"mark {mark:#x}"
    except OSError as err:
        result["mark"] = f"{type(err).__name__}: {err}"
    if result["listen"] == "ok" and result["orig-dst map"] == "ok":
        result["request"] = await _request(CLIENT_PORT)
        # the map decides: a connection the datapath did not record gets nothing
        unrecorded = await _request(CLIENT_PORT + 1)
        result["unredirected refused"] = "ok" if unrecorded == "answered ''" else unrecorded
    for sock in others:
        sock.close()
    await server.close()
    backend.close()
    if origins is not None:
        origins.close()
    return {**result, "effective": ",".join(effective())}


async def _request(client_port: int) -> str:
    """A pod's request to the Gateway's address:80, as the datapath delivers it: from the
    pod's address to the waypoint's 15001."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((CLIENT, client_port))
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (WAYPOINT, PORTS["l7"]))
    except OSError as err:
        sock.close()
        return f"{type(err).__name__}: {err}"
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(b"GET / HTTP/1.1\r\nhost: gw.example\r\nconnection: close\r\n\r\n")
    try:
        answer = await reader.read()
    except ConnectionResetError:
        answer = b""  # aborted: not a connection the datapath redirected
    writer.close()
    status, _, rest = answer.partition(b"\r\n")
    if status.startswith(b"HTTP/1.1 200") and rest.endswith(b"served"):
        return "ok"
    return f"answered {status.decode('latin-1')!r}"


# --- the test's side: namespace, pinned map, the child under capsh -------------------------

def _pin_map(pin_dir: Path) -> None:
    """The agent's l7_orig_dst_v1 (same layout), with one redirected connection recorded."""
    from agent.datapath.byteorder import be16, be32
    from agent.datapath.identity import WORLD
    from agent.datapath.native import check, libbpf, obj_pin
    from agent.datapath.origdst import MAP_NAME, TCP, OrigDst, OrigDstKey

    libbpf.bpf_map_create.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32,
                                      ctypes.c_uint32, ctypes.c_uint32, ctypes.c_void_p]
    libbpf.bpf_map_create.restype = ctypes.c_int
    libbpf.bpf_map_update_elem.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                           ctypes.c_uint64]
    libbpf.bpf_map_update_elem.restype = ctypes.c_int
    lru_hash = 9  # BPF_MAP_TYPE_LRU_HASH, as redirect.h pins it
    fd = check(libbpf.bpf_map_create(lru_hash, MAP_NAME.encode()[:15], ctypes.sizeof(OrigDstKey),
                                     ctypes.sizeof(OrigDst), 64, None), "bpf_map_create")
    try:
        key = OrigDstKey(client=be32(CLIENT), client_port=be16(CLIENT_PORT), proto=TCP)
        value = OrigDst(vip=be32(GATEWAY), vport=be16(80), client_identity=WORLD)
        check(libbpf.bpf_map_update_elem(fd, ctypes.byref(key), ctypes.byref(value), 0),
              "bpf_map_update_elem")
        pin_dir.mkdir(parents=True)
        obj_pin(fd, pin_dir / MAP_NAME)
    finally:
        os.close(fd)


@dataclass
class Node:
    netns: str
    pin_dir: Path

    def run_waypoint(self, caps: list[str]) -> dict[str, str]:
        """The probe with only ``caps`` (CAP_ names without the prefix) in its bounding set,
        inside the namespace (nsenter --net: `ip netns exec` would hide /sys/fs/bpf)."""
        keep = {f"cap_{c.lower()}" for c in caps}
        drop = ",".join(c for c in bounding() if c not in keep)
        argv = [sys.executable, "-m", "tests.netns.test_waypoint_capabilities", "--probe",
                str(self.pin_dir)]
        command = " ".join(f"'{a}'" for a in argv)
        done = subprocess.run(
            ["nsenter", f"--net=/run/netns/{self.netns}", "capsh", f"--drop={drop}", "--",
             "-c", f"exec {command}"],
            capture_output=True, text=True, cwd=REPO, timeout=PROBE_TIMEOUT,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        lines = done.stdout.strip().splitlines()
        assert done.returncode == 0 and lines, f"probe failed: {done.stderr[-2000:]}"
        outcome: dict[str, str] = json.loads(lines[-1])
        held = outcome.pop("effective")
        assert held == ",".join(sorted(caps)), f"the probe held {held!r}, not {caps}"
        return outcome


    def spawn(self, caps: list[str], argv: list[str], out: IO[str]) -> subprocess.Popen[str]:
        keep = {f"cap_{c.lower()}" for c in caps}
        drop = ",".join(c for c in bounding() if c not in keep)
        command = " ".join(f"'{a}'" for a in argv)
        return subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.netns}", "capsh", f"--drop={drop}", "--",
             "-c", f"exec {command}"],
            stdout=out, stderr=subprocess.STDOUT, text=True, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )

    def wait_listening(self, proc: subprocess.Popen[str], log: Path) -> list[int]:
        """The namespace's listening TCP ports once the waypoint logs it serves (or as they
        are when it exits or PROBE_TIMEOUT passes)."""
        deadline = time.monotonic() + PROBE_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            if "listening on" in log.read_text(errors="replace"):
                break
            time.sleep(0.2)
        out = subprocess.run(["nsenter", f"--net=/run/netns/{self.netns}", "ss", "-ltnH"],
                             capture_output=True, text=True, check=True).stdout
        ports = {int(line.split()[3].rpartition(":")[2]) for line in out.splitlines()}
        return sorted(ports & set(PORTS.values()))


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def node() -> Iterator[Node]:
    with namespace() as made:
        yield made


@contextlib.contextmanager
def namespace() -> Iterator[Node]:
    """A network namespace with the node's addresses on its lo, and the pinned map."""
    assert shutil.which("capsh"), "capsh (libcap2-bin) is needed"
    name = f"wpcap{secrets.token_hex(3)}"
    pin_dir = BPFFS / name
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        for address in (WAYPOINT, CLIENT, BACKEND):
            _ip("-n", name, "addr", "add", f"{address}/32", "dev", "lo")
        _pin_map(pin_dir)
        yield Node(name, pin_dir)
    finally:
        shutil.rmtree(pin_dir, ignore_errors=True)
        _ip("netns", "del", name)


ALL_OK = dict.fromkeys(STEPS, "ok")


def test_the_daemonsets_capabilities_are_enough(node: Node) -> None:
    caps = granted()
    assert caps == ["NET_ADMIN"]
    assert node.run_waypoint(caps) == ALL_OK


def test_without_net_admin_the_upstream_mark_fails(node: Node) -> None:
    """SO_MARK needs CAP_NET_ADMIN: without it the backend dial fails, and so the request;
    the map, the listeners and the redirected connection itself still work."""
    outcome = node.run_waypoint([c for c in granted() if c != "NET_ADMIN"])
    assert outcome["orig-dst map"] == "ok"
    assert outcome["listen"] == "ok"
    assert outcome["mark"].startswith("PermissionError"), outcome
    assert outcome["request"] == "answered 'HTTP/1.1 503 Service Unavailable'", outcome
    assert outcome["unredirected refused"] == "ok"


def test_nothing_else_is_needed(node: Node) -> None:
    """With no capability at all only the mark (and so the request) fails: not BPF, granted
    once for BPF_OBJ_GET, since from kernel 5.19 (commit c8644cd0efe7) opening and reading a
    pinned map needs only read access to the pin, even with kernel.unprivileged_bpf_disabled
    set (before 5.19 the map fails here too); not NET_BIND_SERVICE, as no port below 1024 is
    bound (a Gateway's port arrives redirected)."""
    outcome = node.run_waypoint([])
    old_kernel = tuple(int(x) for x in os.uname().release.split(".")[:2]) < (5, 19)
    assert outcome["orig-dst map"].startswith("PermissionError") == old_kernel, outcome
    assert outcome["listen"] == "ok"
    assert outcome["mark"].startswith("PermissionError"), outcome
    if not old_kernel:  # (before 5.19 no request is tried without the map)
        assert outcome["request"] == "answered 'HTTP/1.1 503 Service Unavailable'", outcome
        assert outcome["unredirected refused"] == "ok"


CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def inside(netns: str) -> Iterator[None]:
    """This thread in ``netns`` (sockets it opens, and threads it starts, stay there)."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{netns}") as there:
        if libc.setns(there.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({netns})")
        try:
            yield
        finally:
            if libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")


def test_the_waypoint_process_starts_with_the_grant(node: Node, tmp_path: Path) -> None:
    """The real `agent.cli.node waypoint`, with the DaemonSet's args (node, pins, intake,
    SVID directory, metrics) and only its capabilities, inside the test's namespace with a lab
    API server there: it syncs, opens the map and binds all four listeners."""
    with inside(node.netns):
        fixture = serve_lab(tmp_path, gateway_api=True)
        lab = next(fixture)
    try:
        kubeconfig = account_kubeconfig(lab, "tulle-waypoint")
        (tmp_path / "svid").mkdir()
        argv = [sys.executable, "-m", "agent.cli.node", "waypoint", "--node=node1",
                f"--kubeconfig={kubeconfig}", f"--pin-dir={node.pin_dir}",
                f"--flow-intake={tmp_path / 'l7intake.sock'}", f"--svid-dir={tmp_path / 'svid'}",
                f"--metrics-address={WAYPOINT}:{PORTS['metrics']}",
                f"--listen={WAYPOINT}:{PORTS['l7']}"]
        log = tmp_path / "waypoint.log"
        with log.open("w") as out:
            proc = node.spawn(granted(), argv, out)
        try:
            listening = node.wait_listening(proc, log)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        assert listening == sorted(PORTS.values()), log.read_text()[-2000:]
    finally:
        next(fixture, None)


def main() -> None:
    """Drop each granted capability in turn and print what the waypoint did."""
    with namespace() as current:
        caps = granted()
        print(f"all of {caps}: {current.run_waypoint(caps)}", flush=True)
        for cap in caps:
            outcome = current.run_waypoint([c for c in caps if c != cap])
            print(f"without {cap}: {outcome}", flush=True)
        print(f"with none: {current.run_waypoint([])}", flush=True)
        print(f"with BPF added: {current.run_waypoint([*caps, 'BPF'])}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--probe"]:
        print(json.dumps(asyncio.run(probe(Path(sys.argv[2])))), flush=True)
    else:
        main()
