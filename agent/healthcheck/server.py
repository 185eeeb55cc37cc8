"""The health-check listeners: one HTTP server per healthCheckNodePort, on every address of
the node (as kube-proxy listens), opened and closed as the table changes.

The only module of the package that touches sockets; what each port answers comes from
``table.answer``. A port that cannot be bound (another process holds it) is logged and
retried on the next update, and the others keep serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agent.healthcheck.table import HealthCheck, answer

log = logging.getLogger("tulle.healthcheck")


class _Handler(BaseHTTPRequestHandler):
    server: _PortServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        reply = answer(self.server.owner.check(self.server.port), self.server.owner.healthy())
        self.send_response(reply.status)
        for key, value in reply.headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        return  # load balancers probe every few seconds: no line per probe


class _PortServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: HealthCheckServer, address: str, port: int) -> None:
        self.owner = owner
        self.port = port
        super().__init__((address, port), _Handler)


class HealthCheckServer:
    """``update(table)`` after each sync; ``close()`` at exit. ``healthy`` says whether the
    node's datapath is programmed (kube-proxy's serviceProxyHealthy)."""

    def __init__(self, address: str = "0.0.0.0",
                 healthy: Callable[[], bool] = lambda: True) -> None:
        self.address = address
        self.healthy = healthy
        self._lock = threading.Lock()
        self._table: dict[int, HealthCheck] = {}
        self._servers: dict[int, _PortServer] = {}

    def check(self, port: int) -> HealthCheck | None:
        with self._lock:
            return self._table.get(port)

    @property
    def ports(self) -> frozenset[int]:
        with self._lock:
            return frozenset(self._servers)

    def update(self, table: Mapping[int, HealthCheck]) -> None:
        with self._lock:
            self._table = dict(table)
            gone = [p for p in self._servers if p not in table]
            new = [p for p in table if p not in self._servers]
        for port in gone:
            self._close(port)
        for port in new:
            try:
                server = _PortServer(self, self.address, port)
            except OSError as err:
                log.warning("health-check node port %d not served: %s", port, err)
                continue
            threading.Thread(target=server.serve_forever, name=f"healthcheck-{port}",
                             daemon=True).start()
            with self._lock:
                self._servers[port] = server

    def _close(self, port: int) -> None:
        with self._lock:
            server = self._servers.pop(port, None)
        if server is not None:
            server.shutdown()
            server.server_close()

    def close(self) -> None:
        for port in list(self._servers):
            self._close(port)
