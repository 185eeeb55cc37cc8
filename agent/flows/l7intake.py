"""Where the node's waypoint hands its L7 flows to the agent: a unix socket carrying lines
of JSON. A line is either a batch of compact L7 records (what the waypoint's
`FlowForwarder` sends: an object with the records, followed by their timing marks' binary
column, or a plain JSON array from older waypoints; see `agent.flows.l7record`) or one
Hubble-JSON flow (an object without ``records``, for other producers), or a batch of the
waypoint's mTLS tunnel events (``{"kind":"tunnel","records":[...]}``,
`agent.flows.tunnelrecord`; each becomes a flow, `agent.flows.tunnelflow`). The agent builds,
enriches and ingests them like datapath flows, so `tulle observe` shows L4 and L7 in one
stream. A malformed line or record is counted (``rejected``) and logged; the rest of the
batch still counts."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import socketserver
import stat
import threading
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from agent.flows.flow import Flow, flow_from_json
from agent.flows.ingest import FlowIngest
from agent.flows.l7flow import L7FlowBuilder
from agent.flows.l7record import (
    L7Record,
    column_size,
    encode_batch,
    read_batch,
)
from agent.flows.tunnelrecord import (
    TUNNEL_KIND,
    TunnelEvent,
    encode_tunnel_batch,
    read_tunnel_batch,
)

log = logging.getLogger("tulle.l7intake")
SOCKET_MODE = 0o600  # the waypoint runs as the agent's user; nobody else may inject flows
DIRECTORY_MODE = 0o700


def private_directory(path: Path) -> None:
    """Create ``path`` (mode 0700) or check that an existing one is private. The directory
    keeps other users out whatever the socket's own mode (some systems ignore it)."""
    path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PermissionError(
            f"{path} has mode {mode:04o}: the L7 flow intake socket needs a directory only "
            f"its owner can enter ({DIRECTORY_MODE:04o}), or any local user could inject flows"
        )


class L7Intake:
    def __init__(self, path: Path, ingest: FlowIngest, enrich: Callable[[Flow], Flow],
                 node_name: str = "") -> None:
        from agent.flows import tunnelflow  # the agent's only: it reads drop.h

        self.path = path
        self.node_name = node_name
        self.tunnels = tunnelflow
        self.builder = L7FlowBuilder(node_name)
        self.lock = threading.RLock()  # one handler thread per waypoint connection
        intake = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for line in self.rfile:
                    size = column_size(line)  # a batch's marks column follows its line
                    intake.accept(line, self.rfile.read(size) if size else b"")

        private_directory(path.parent)
        path.unlink(missing_ok=True)
        self.server = socketserver.ThreadingUnixStreamServer(str(path), Handler,
                                                             bind_and_activate=False)
        self.server.daemon_threads = True
        try:  # 0600 before listen(): no moment where another user could connect
            self.server.server_bind()
            os.chmod(path, SOCKET_MODE)
            self.server.server_activate()
        except BaseException:
            self.server.server_close()
            raise
        self.ingest = ingest
        self.enrich = enrich
        self.rejected = 0
        self._serving = False

    def accept(self, line: bytes, column: bytes = b"") -> None:
        try:
            value = json.loads(line)
        except ValueError as err:
            self._reject(f"not JSON: {err}")
            return
        if isinstance(value, dict) and value.get("kind") == TUNNEL_KIND:
            self._accept_tunnels(value)
            return
        if isinstance(value, dict) and "records" not in value:
            try:
                flow = flow_from_json(value)
            except (ValueError, KeyError, TypeError) as err:
                self._reject(str(err))
                return
            self.ingest.put(self.enrich(flow))
            return
        if not isinstance(value, list | dict):
            self._reject(f"a line must be a JSON array of records or a flow object, "
                         f"not {type(value).__name__}")
            return
        flows = []
        with self.lock:
            for record in read_batch(value, column):
                if isinstance(record, ValueError):
                    self._reject(str(record))
                    continue
                try:
                    flows.append(self.enrich(self.builder.flow(record)))
                except ValueError as err:
                    self._reject(str(err))
        for flow in flows:
            self.ingest.put(flow)

    def _accept_tunnels(self, value: dict[str, object]) -> None:
        build, name = self.tunnels.tunnel_flow, self.tunnels.with_identities
        flows = []
        with self.lock:
            for event in read_tunnel_batch(value):
                if isinstance(event, ValueError):
                    self._reject(str(event))
                    continue
                try:
                    flows.append(name(self.enrich(build(event, self.node_name)), event))
                except ValueError as err:
                    self._reject(str(err))
        for flow in flows:
            self.ingest.put(flow)

    def _reject(self, why: str) -> None:
        with self.lock:
            self.rejected += 1
        log.warning("dropping a malformed L7 flow from the waypoint: %s", why)

    def start(self) -> L7Intake:
        self._serving = True
        threading.Thread(target=self.server.serve_forever, name="l7-intake", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._serving:  # shutdown() waits for serve_forever, forever if it never ran
            self.server.shutdown()
        self.server.server_close()
        self.path.unlink(missing_ok=True)


class FlowForwarder:
    """The waypoint's record sink: a batch of compact records per line to the agent's intake.

    It runs on the waypoint's event loop, so it never blocks: the socket is non-blocking,
    and what the kernel will not take yet waits in a queue of at most ``max_queued_bytes``
    that drains when the socket turns writable (``loop.add_writer``). When the agent is slow
    and the queue is full, the oldest unsent batches are dropped (``lost_backlog``); when it
    is gone (connect refused, connection reset), the batch in hand and the queue are dropped
    (``lost_unavailable``) and the next batch reconnects. A partly sent line is never cut
    short on a live connection, so the agent always reads whole lines.
    """

    raw_records = True  # FlowRecorder hands us records, not flows

    def __init__(self, path: Path, *, max_queued_bytes: int = 4 << 20) -> None:
        self.path = path
        self.max_queued_bytes = max_queued_bytes
        self.sock: socket.socket | None = None
        self.lost_backlog = 0  # records dropped because the agent did not read fast enough
        self.lost_unavailable = 0  # records dropped because the agent was not there
        self._queue: deque[tuple[memoryview, int]] = deque()  # (unsent bytes, records)
        self._queued_bytes = 0
        self._head_started = False  # the first queued line is partly on the wire
        self._writer: asyncio.AbstractEventLoop | None = None
        self._down_logged = False

    @property
    def lost(self) -> int:
        return self.lost_backlog + self.lost_unavailable

    def losses(self) -> dict[str, int]:
        """Dropped records by reason, for the waypoint's metrics."""
        return {"agent_backlog": self.lost_backlog, "agent_unavailable": self.lost_unavailable}

    def __call__(self, records: Sequence[L7Record], column: bytes | None = None) -> None:
        if records:
            self._send(len(records), lambda: encode_batch(records, column))

    def send_tunnel(self, events: Sequence[TunnelEvent]) -> None:
        """A batch of the waypoint's tunnel events, one line (lost ones count as records)."""
        if events:
            self._send(len(events), lambda: encode_tunnel_batch(events))

    def _send(self, count: int, encode: Callable[[], bytes]) -> None:
        if self.sock is None and not self._connect():
            self._lose_unavailable(count)
            return
        payload = encode()
        self._make_room(len(payload))
        if self._queued_bytes + len(payload) > self.max_queued_bytes:
            self.lost_backlog += count
            return
        self._queue.append((memoryview(payload), count))
        self._queued_bytes += len(payload)
        self._flush()

    def close(self) -> None:
        """Send what the socket takes now without waiting, then close."""
        if self.sock is not None:
            self._flush()
            self._disconnect(None)

    def _connect(self) -> bool:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(str(self.path))
        except OSError as err:  # absent, refused, or its backlog full (EAGAIN): agent unready
            sock.close()
            if not self._down_logged:
                log.warning("agent flow intake %s unavailable (%s): dropping L7 flows until "
                            "it is back", self.path, err)
                self._down_logged = True
            return False
        if self._down_logged:
            log.info("agent flow intake %s is back", self.path)
            self._down_logged = False
        self.sock = sock
        return True

    def _make_room(self, size: int) -> None:
        """Drop the oldest whole batches not yet on the wire until ``size`` more bytes fit."""
        keep_head = 1 if self._head_started else 0
        while (self._queued_bytes + size > self.max_queued_bytes
               and len(self._queue) > keep_head):
            view, count = self._queue[keep_head]
            del self._queue[keep_head]
            self._queued_bytes -= len(view)
            self.lost_backlog += count

    def _flush(self) -> None:
        sock = self.sock
        if sock is None:
            return
        queue = self._queue
        while queue:
            view, count = queue[0]
            try:
                sent = sock.send(view)
            except BlockingIOError:
                break
            except OSError as err:
                self._disconnect(err)
                return
            self._queued_bytes -= sent
            if sent < len(view):
                queue[0] = (view[sent:], count)
                self._head_started = True
                break
            queue.popleft()
            self._head_started = False
        self._watch_writable(bool(queue))

    def _watch_writable(self, wanted: bool) -> None:
        """Drain the queue from the event loop when the socket turns writable. Without a
        running loop (tests, tools), the next call drains it."""
        if wanted and self._writer is None and self.sock is not None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            loop.add_writer(self.sock.fileno(), self._flush)
            self._writer = loop
        elif not wanted and self._writer is not None and self.sock is not None:
            self._writer.remove_writer(self.sock.fileno())
            self._writer = None

    def _disconnect(self, err: OSError | None) -> None:
        self._watch_writable(False)
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        queued = sum(count for _, count in self._queue)
        self._queue.clear()
        self._queued_bytes = 0
        self._head_started = False
        self._lose_unavailable(queued)
        if err is not None:
            log.warning("agent flow intake %s lost (%s): %d L7 flows dropped", self.path, err,
                        queued)

    def _lose_unavailable(self, count: int) -> None:
        self.lost_unavailable += count
