"""Prometheus metrics of the agent: flows, drops, TCP flags, policy verdicts, HTTP requests,
lost events and BPF map fill levels, with bounded cardinality.

Ports (Hubble's numbering):

- **9965**: the agent's metrics (`AGENT_METRICS_PORT`), ``GET /metrics`` on every node, as
  Hubble's metrics server; the DaemonSet's metrics Service points here.
- **9966**: the waypoint's own metrics (`WAYPOINT_METRICS_PORT`), served by the waypoint
  process, not by this package.
- The observer API keeps 4244 (agent) and 4245 (relay), see `agent.observer`.

Wiring, in the agent::

    from prometheus_client import CollectorRegistry, ProcessCollector
    from agent.metrics import FlowMetrics, MapFillCollector, MetricsConfig, serve_metrics

    config = MetricsConfig()                      # or MetricsConfig.from_mapping(yaml["metrics"])
    registry = CollectorRegistry()                # dedicated: never the global REGISTRY
    flow_metrics = FlowMetrics(config, registry)
    MapFillCollector(datapath.map_fill, registry)  # () -> {map: (entries, max_entries)}
    ProcessCollector(registry=registry)
    server = serve_metrics(registry, config.address)
    ...
    flow_metrics.observe(flow)                    # per flow, or observe_many(batch)
    flow_metrics.observe_lost(source, n)          # beside FlowRing.record_lost
    server.close()                                # on shutdown

Modules: `config` (`MetricsConfig`, label sets and caps), `series` (one family's cells and
caps), `flowmetrics` (`FlowMetrics`), `maps` (`MapFillCollector`), `server`
(`serve_metrics`), `bench` (``python -m agent.metrics.bench``: flows/s on one core).
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from agent.metrics.config import AGENT_METRICS_PORT, FamilyConfig, MetricsConfig

if TYPE_CHECKING:
    from agent.metrics.flowmetrics import FlowMetrics
    from agent.metrics.maps import MapFillCollector
    from agent.metrics.server import MetricsServer, serve_metrics

WAYPOINT_METRICS_PORT = 9966
# Imported on first use: the waypoint imports `agent.metrics.server` for its address parser,
# and should not carry the agent's flow metrics (their flow and service map modules) for it.
_LAZY = {"FlowMetrics": "flowmetrics", "MapFillCollector": "maps", "MetricsServer": "server",
         "serve_metrics": "server"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)

__all__ = [
    "AGENT_METRICS_PORT", "WAYPOINT_METRICS_PORT", "FamilyConfig", "FlowMetrics",
    "MapFillCollector", "MetricsConfig", "MetricsServer", "serve_metrics",
]
