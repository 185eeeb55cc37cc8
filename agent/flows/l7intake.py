"""Where the node's waypoint hands its L7 flows to the agent: a unix socket carrying one
Hubble-JSON flow per line. The agent enriches them like datapath flows and ingests them,
so `tulle observe` shows L4 and L7 in one stream. `FlowForwarder` is the waypoint's end."""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from agent.flows.flow import Flow, flow_from_json, flow_to_json
from agent.flows.ingest import FlowIngest

log = logging.getLogger("tulle.l7intake")


class L7Intake:
    def __init__(self, path: Path, ingest: FlowIngest, enrich: Callable[[Flow], Flow]) -> None:
        self.path = path
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
            flow = flow_from_json(json.loads(line))
        except (ValueError, KeyError, TypeError) as err:
            self.rejected += 1
            log.warning("dropping a malformed L7 flow from the waypoint: %s", err)
            return
        self.ingest.put(self.enrich(flow))

    def start(self) -> L7Intake:
        threading.Thread(target=self.server.serve_forever, name="l7-intake", daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.path.unlink(missing_ok=True)


class FlowForwarder:
    """The waypoint's flow sink: JSON lines to the agent's intake. If the agent is down, the
    batch is counted as lost (never buffered without bound) and the next batch reconnects."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock: socket.socket | None = None
        self.lost = 0

    def __call__(self, flows: Sequence[Flow]) -> None:
        payload = b"".join(json.dumps(flow_to_json(f)).encode() + b"\n" for f in flows)
        try:
            if self.sock is None:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(str(self.path))
            self.sock.sendall(payload)
        except OSError as err:
            self.lost += len(flows)
            log.warning("agent flow intake unavailable (%s): %d L7 flows lost", err, len(flows))
            if self.sock is not None:
                self.sock.close()
            self.sock = None

