"""Where the node's waypoint hands its L7 flows to the agent: a unix socket carrying lines
of JSON. A line is either a batch of compact L7 records (a JSON array, what the waypoint's
`FlowForwarder` sends; see `agent.flows.l7record`) or one Hubble-JSON flow (an object, for
other producers). The agent builds, enriches and ingests them like datapath flows, so
`tulle observe` shows L4 and L7 in one stream. A malformed line or record is counted and
logged; the rest of the batch still counts."""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from agent.flows.flow import Flow, flow_from_json
from agent.flows.ingest import FlowIngest
from agent.flows.l7record import L7FlowBuilder, L7Record, encode_batch, record_from_json

log = logging.getLogger("tulle.l7intake")


class L7Intake:
    def __init__(self, path: Path, ingest: FlowIngest, enrich: Callable[[Flow], Flow],
                 node_name: str = "") -> None:
        self.path = path
        self.builder = L7FlowBuilder(node_name)
        self.lock = threading.RLock()  # one handler thread per waypoint connection
        intake = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for line in self.rfile:
                    intake.accept(line)

        path.unlink(missing_ok=True)
        self.server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
        self.server.daemon_threads = True
        self.ingest = ingest
        self.enrich = enrich
        self.rejected = 0

    def accept(self, line: bytes) -> None:
        try:
            value = json.loads(line)
        except ValueError as err:
            self._reject(f"not JSON: {err}")
            return
        if isinstance(value, dict):
            try:
                flow = flow_from_json(value)
            except (ValueError, KeyError, TypeError) as err:
                self._reject(str(err))
                return
            self.ingest.put(self.enrich(flow))
            return
        if not isinstance(value, list):
            self._reject(f"a line must be a JSON array of records or a flow object, "
                         f"not {type(value).__name__}")
            return
        flows = []
        with self.lock:
            for item in value:
                try:
                    flows.append(self.enrich(self.builder.flow(record_from_json(item))))
                except ValueError as err:
                    self._reject(str(err))
        for flow in flows:
            self.ingest.put(flow)

    def _reject(self, why: str) -> None:
        with self.lock:
            self.rejected += 1
        log.warning("dropping a malformed L7 flow from the waypoint: %s", why)

    def start(self) -> L7Intake:
        threading.Thread(target=self.server.serve_forever, name="l7-intake", daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.path.unlink(missing_ok=True)


class FlowForwarder:
    """The waypoint's record sink: a batch of compact records per line to the agent's intake.
    If the agent is down, the batch is counted as lost (never buffered without bound) and the
    next batch reconnects."""

    raw_records = True  # FlowRecorder hands us records, not flows

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock: socket.socket | None = None
        self.lost = 0

    def __call__(self, records: Sequence[L7Record]) -> None:
        payload = encode_batch(records)
        try:
            if self.sock is None:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(str(self.path))
            self.sock.sendall(payload)
        except OSError as err:
            self.lost += len(records)
            log.warning("agent flow intake unavailable (%s): %d L7 flows lost", err, len(records))
            if self.sock is not None:
                self.sock.close()
            self.sock = None

