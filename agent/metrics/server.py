"""`serve_metrics`: the Prometheus HTTP endpoint (``GET /metrics``) of one registry."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from prometheus_client.exposition import start_http_server
from prometheus_client.registry import CollectorRegistry

from agent.metrics.config import AGENT_METRICS_PORT

_ADDRESS = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]*))(?::(?P<port>\d+))?$")


def parse_address(address: str, default_port: int = AGENT_METRICS_PORT) -> tuple[str, int]:
    """"host:port", ":port", "host", "[::1]:port" -> (host, port); an empty host means every
    IPv4 interface ("0.0.0.0")."""
    m = _ADDRESS.match(address.strip())
    if not m:
        raise ValueError(f"metrics address {address!r}: expected host:port, :port or [v6]:port")
    host = m.group("v6") or m.group("host") or "0.0.0.0"
    port = int(m.group("port")) if m.group("port") else default_port
    if port > 65535:
        raise ValueError(f"metrics address {address!r}: port {port} is out of range")
    return host, port


@dataclass
class MetricsServer:
    """A running endpoint; `port` is the bound port (useful with port 0)."""

    host: str
    port: int
    _server: object
    _thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()  # type: ignore[attr-defined]
        self._server.server_close()  # type: ignore[attr-defined]
        self._thread.join(timeout=5)


def serve_metrics(registry: CollectorRegistry, address: str = f":{AGENT_METRICS_PORT}"
                  ) -> MetricsServer:
    """Serve `registry` on `address` from a daemon thread. Raises OSError naming the address
    when it cannot bind (port taken, address not local)."""
    host, port = parse_address(address)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as e:
        raise OSError(e.errno, f"cannot serve metrics on {host}:{port}: {e.strerror}") from e
    bound = server.server_address[1]
    return MetricsServer(host, int(bound), server, thread)
