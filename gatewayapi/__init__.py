"""Gateway API semantics, pure and sans-IO (no sockets, no asyncio, no BCC): which routes
attach to which parents, their status, and the HTTPRoute route tables. One package for its
three readers, so they never disagree: the datapath (which Service ports and Gateway
listeners need L7: ``RouteTables.l7_services``), the lab's Gateway API status controller
(``compute_status``) and the waypoint (the tables it serves requests from).

Per request the waypoint's asyncio server calls one of:

- ``RouteTables.route(parent, request, rng=..., client_namespace=...)`` -> ``Forward``
  (send ``forward.request`` to ``forward.backend``, copy to ``forward.mirrors``, honour
  ``forward.timeouts`` and ``forward.retry``, pass the answer through ``forward.finish``)
  or ``Respond`` (answer ``respond.response`` directly: 404, redirect, CORS preflight,
  500 for an invalid backend, 400 for a request target the path policy refuses);
- or the two halves, ``RouteTables.select(...)`` -> ``Selection | NoRoute`` and
  ``Selection.apply(request, rng)``.

Tables come from ``compile_routes(...)`` or, memoised on the inputs, from
``RouteCompiler().compile(RoutingInputs.of(...))``; status dicts for the store come from
``compute_status(inputs, now)``.
"""

from gatewayapi.actions import Answer, Forward, MirrorRequest, Respond, Selection
from gatewayapi.analysis import RoutingInputs
from gatewayapi.compile import RouteCompiler, compile_analysis, compile_routes
from gatewayapi.headers import Headers
from gatewayapi.paths import PathRefused, normalize_path
from gatewayapi.retry import RetryPolicy, UpstreamError
from gatewayapi.status import StatusReport, compute_status
from gatewayapi.tables import ListenerInfo, RouteTables
from gatewayapi.types import (
    CONTROLLER_NAME,
    BackendTarget,
    GatewayParent,
    IngressParent,
    NoRoute,
    NoRouteReason,
    Parent,
    Request,
    Response,
    RuleRef,
    ServiceParent,
    Timeouts,
)

__all__ = [
    "CONTROLLER_NAME",
    "Answer",
    "BackendTarget",
    "Forward",
    "GatewayParent",
    "Headers",
    "IngressParent",
    "ListenerInfo",
    "MirrorRequest",
    "NoRoute",
    "NoRouteReason",
    "Parent",
    "PathRefused",
    "Request",
    "Respond",
    "Response",
    "RetryPolicy",
    "RouteCompiler",
    "RouteTables",
    "RoutingInputs",
    "RuleRef",
    "Selection",
    "ServiceParent",
    "StatusReport",
    "Timeouts",
    "UpstreamError",
    "compile_analysis",
    "compile_routes",
    "compute_status",
    "normalize_path",
]
