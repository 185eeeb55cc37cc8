"""The service dependency graph behind `tulle map`.

`graph.build_graph(flows, window)` aggregates flows into a `ServiceGraph` (pure): workloads
and services as nodes, edges with request rate, error rate and p99. `text.render_text`
draws it for terminals; `dot.to_dot` writes Graphviz DOT and `dot.render` turns that into
SVG or PNG with Graphviz's ``dot``. `peers` names the nodes (shared with the HTTP metrics'
workload labels).
"""

from agent.servicemap.dot import RenderError, render, to_dot
from agent.servicemap.graph import Edge, ServiceGraph, build_graph
from agent.servicemap.peers import Peer
from agent.servicemap.text import render_text

__all__ = ["Edge", "Peer", "RenderError", "ServiceGraph", "build_graph", "render",
           "render_text", "to_dot"]
