"""HBONE between two network namespaces over a real veth link: each namespace runs one
waypoint's ends (in its own process), a client pod's connection in one is tunnelled to an
echo pod in the other, and an AF_PACKET capture of the link shows the bytes crossed inside
TLS: the tunnel's payload is on the link, the plaintext is not."""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from agent.svid.store import write_svid
from identity.hbone import HBONE_PORT, TUNNEL_OUTBOUND_PORT
from tests.unit.hbone.harness import mint, root, spiffe, svid_dir

pytestmark = [pytest.mark.root, pytest.mark.netns]
REPO = Path(__file__).resolve().parents[2]
A_IP, B_IP = "10.250.0.1", "10.250.0.2"  # the waypoints, on the link
WEB, DB = "10.250.1.5", "10.250.2.5"  # pods: on A's and B's loopback
DB_PORT = 7000
CANARY = b"tulle-plaintext-canary:" * 4096  # ~94 KB
CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
T = TypeVar("T")

NODE = r"""
import asyncio, json, signal, sys
from pathlib import Path
from dataclasses import asdict
from l7proxy.hbone.ends import dialer
from l7proxy.hbone.identities import SvidDirectory
from l7proxy.hbone.inbound import HboneServer
from l7proxy.hbone.outbound import OutboundServer
from l7proxy.hbone.pool import TunnelPool

cfg = json.loads(Path(sys.argv[1]).read_text())
pods = {ip: tuple(v) for ip, v in cfg["pods"].items()}
waypoints = {n: tuple(v) for n, v in cfg["waypoints"].items()}
dests = {ip: tuple(v) for ip, v in cfg["dests"].items()}
events = open(cfg["events"], "a", buffering=1)

def identity_of(ip):
    return pods[ip][0] if ip in pods else None

def on_event(ev):
    events.write(json.dumps(asdict(ev)) + "\n")

async def echo(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.write_eof()
    writer.close()

async def main():
    svids = SvidDirectory(Path(cfg["svid_dir"]))
    dial = dialer(cfg["host"])
    server = HboneServer(svids, identity_of=identity_of,
                         is_local=lambda ip: ip in pods and pods[ip][1] == cfg["name"],
                         admit=lambda s, d, p: True, on_event=on_event, dial=dial)
    await server.start(cfg["host"], cfg["ports"][0])
    out = OutboundServer(TunnelPool(svids, dial=dial), original_destination=lambda c: dests.get(c[0]),
                         identity_of=identity_of,
                         waypoint_of=lambda ip: waypoints.get(pods[ip][1]) if ip in pods else None,
                         on_event=on_event)
    await out.start(cfg["host"], cfg["ports"][1])
    if cfg["echo"]:
        await asyncio.start_server(echo, *cfg["echo"])
    Path(cfg["ready"]).write_text("ready")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    while not stop.is_set():  # as the waypoint's runner does, faster
        svids.refresh()
        try:
            await asyncio.wait_for(stop.wait(), 0.1)
        except asyncio.TimeoutError:
            pass

asyncio.run(main())
"""

libc = ctypes.CDLL(None, use_errno=True)


def in_netns(name: str, fn: Callable[[], T]) -> T:
    """``fn()`` in a thread that entered netns ``name`` (only that thread moves)."""
    box: dict[str, Any] = {}

    def body() -> None:
        fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(30)
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


SO_RCVBUFFORCE = 33  # <asm-generic/socket.h>; not exported by Python's socket module


FRAME_MAX = 1 << 18


class Capture:
    """Every frame on one interface of a namespace, until `stop`."""

    def __init__(self, netns: str, ifname: str) -> None:
        self.sock: socket.socket = in_netns(netns, lambda: self._open(ifname))
        self.frames: list[bytes] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    @staticmethod
    def _open(ifname: str) -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        # 16 MiB (SO_RCVBUFFORCE, as root) so a busy machine that delays this thread drops no
        # frame: the default ~200 KiB overflowed and the byte count below came up short.
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
        sock.bind((ifname, ETH_P_ALL))
        sock.settimeout(0.2)
        return sock

    def _run(self) -> None:
        while not self.done.is_set():
            try:
                # Past 64 KiB: a veth hands over GSO frames of up to 64 KiB of IP plus the
                # Ethernet header, which a 65535-byte read would cut short.
                self.frames.append(self.sock.recv(FRAME_MAX))
            except TimeoutError:
                continue

    def stop(self) -> None:
        self.done.set()
        self.thread.join(5)
        # What the kernel queued before the stop but the thread had not read yet (a busy
        # machine delays it): without this the byte count below came up short in CI.
        self.sock.setblocking(False)
        while True:
            try:
                self.frames.append(self.sock.recv(FRAME_MAX))
            except BlockingIOError:
                break
        self.sock.close()

    def tcp_payloads(self, port: int) -> bytes:
        """TCP payload bytes of IPv4 frames from or to ``port``, in capture order."""
        out = bytearray()
        for frame in self.frames:
            if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
                continue
            ihl = (frame[14] & 0x0F) * 4
            total = struct.unpack("!H", frame[16:18])[0]
            tcp = 14 + ihl
            sport, dport = struct.unpack("!HH", frame[tcp : tcp + 4])
            offset = (frame[tcp + 12] >> 4) * 4
            if port in (sport, dport):
                out += frame[tcp + offset : 14 + total]
        return bytes(out)


def client_round_trip() -> bytes:
    sock = socket.create_connection(
        (A_IP, TUNNEL_OUTBOUND_PORT), timeout=10, source_address=(WEB, 0)
    )
    with sock:
        sock.sendall(CANARY)
        sock.shutdown(socket.SHUT_WR)
        got = bytearray()
        while chunk := sock.recv(65536):
            got += chunk
    return bytes(got)


@pytest.fixture
def link() -> Iterator[tuple[str, str, str]]:
    tag = secrets.token_hex(3)
    ns_a, ns_b, veth_a = f"tulle-test-hb{tag}a", f"tulle-test-hb{tag}b", f"hba{tag}"
    ip("netns", "add", ns_a)
    try:
        ip("netns", "add", ns_b)
        ip(
            "-n",
            ns_a,
            "link",
            "add",
            veth_a,
            "type",
            "veth",
            "peer",
            "name",
            f"hbb{tag}",
            "netns",
            ns_b,
        )
        for ns, dev, addr, pod in ((ns_a, veth_a, A_IP, WEB), (ns_b, f"hbb{tag}", B_IP, DB)):
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "addr", "add", f"{pod}/32", "dev", "lo")
        yield ns_a, ns_b, veth_a
    finally:
        for ns in (ns_a, ns_b):  # the veth pair goes with its namespaces
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def start_node(tmp: Path, netns: str, cfg: dict[str, Any]) -> subprocess.Popen[bytes]:
    path = tmp / f"{cfg['name']}.json"
    path.write_text(json.dumps(cfg))
    env = {**os.environ, "PYTHONPATH": str(REPO), "TULLE_LAB": f"test-{netns}"}
    return subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-c", NODE, str(path)],
        env=env,
        stderr=open(tmp / f"{cfg['name']}.log", "wb"),
    )


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_tunnel_crosses_the_link_encrypted(tmp_path: Path, link: tuple[str, str, str]) -> None:
    ns_a, ns_b, veth_a = link
    ca = root()
    web_id, db_id = spiffe("shop", "web"), spiffe("shop", "db")
    common = {
        "pods": {WEB: [web_id, "a"], DB: [db_id, "b"]},
        "waypoints": {"a": [A_IP, HBONE_PORT], "b": [B_IP, HBONE_PORT]},
        "dests": {WEB: [DB, DB_PORT]},
        "ports": [HBONE_PORT, TUNNEL_OUTBOUND_PORT],
    }
    nodes = {
        "a": (ns_a, A_IP, svid_dir(tmp_path / "svid-a", [ca], [mint(ca, "shop", "web")]), None),
        "b": (
            ns_b,
            B_IP,
            svid_dir(tmp_path / "svid-b", [ca], [mint(ca, "shop", "db")]),
            [DB, DB_PORT],
        ),
    }
    procs = []
    try:
        for name, (ns, host, directory, echo) in nodes.items():
            procs.append(
                start_node(
                    tmp_path,
                    ns,
                    {
                        **common,
                        "name": name,
                        "host": host,
                        "svid_dir": str(directory),
                        "echo": echo,
                        "events": str(tmp_path / f"{name}.events"),
                        "ready": str(tmp_path / f"{name}.ready"),
                    },
                )
            )
        deadline = time.monotonic() + 20
        while not all((tmp_path / f"{n}.ready").exists() for n in nodes):
            assert all(p.poll() is None for p in procs), [
                (tmp_path / f"{n}.log").read_text() for n in nodes
            ]
            assert time.monotonic() < deadline, "the waypoint processes did not start"
            time.sleep(0.05)

        capture = Capture(ns_a, veth_a)
        try:
            first = in_netns(ns_a, client_round_trip)
            second = in_netns(ns_a, client_round_trip)
        finally:
            capture.stop()
        assert first == second == CANARY

        tunnel = capture.tcp_payloads(HBONE_PORT)
        # both directions' bytes crossed this link, inside the tunnel ...
        assert len(tunnel) > 2 * 2 * len(CANARY)
        # ... as TLS records (content type 23, version 0x0303), never in the clear
        assert b"\x17\x03\x03" in tunnel
        raw = b"".join(capture.frames)
        assert b"tulle-plaintext-canary" not in raw
        assert b"CONNECT" not in raw and DB.encode() not in tunnel

        def forwarded(name: str) -> list[dict[str, Any]]:
            return [e for e in events(tmp_path / f"{name}.events") if e["verdict"] == "FORWARDED"]

        deadline = time.monotonic() + 5
        while len(forwarded("b")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        for ev in forwarded("a") + forwarded("b"):
            assert ev["source_spiffe_id"] == web_id and ev["destination_spiffe_id"] == db_id
            assert ev["destination"] == [DB, DB_PORT] and ev["source"][0] == WEB
        assert [e["side"] for e in forwarded("a")] == ["client", "client"]
        assert [e["peer"][0] for e in forwarded("b")] == [A_IP, A_IP]

        # Node a now presents an SVID from a CA node b does not trust: refused over the link.
        write_svid(nodes["a"][2], mint(root("rogue"), "shop", "web"))
        time.sleep(0.5)  # node a's process reloads its directory every 0.1 s
        with pytest.raises(ConnectionResetError):
            in_netns(ns_a, client_round_trip)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            refused = [e for e in events(tmp_path / "b.events") if e["verdict"] == "DROPPED"]
            if refused:
                break
            time.sleep(0.05)
        assert [(e["side"], e["drop_reason"], e["peer"][0]) for e in refused] == [
            ("server", "MTLS_UNKNOWN_CA", A_IP)
        ]
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
