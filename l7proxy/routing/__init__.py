"""The waypoint's route engine: pure, sans-IO Gateway API HTTPRoute routing.

Per request the asyncio server calls one of:

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

from l7proxy.routing.actions import Answer, Forward, MirrorRequest, Respond, Selection
from l7proxy.routing.analysis import RoutingInputs
from l7proxy.routing.compile import RouteCompiler, compile_analysis, compile_routes
from l7proxy.routing.headers import Headers
from l7proxy.routing.paths import PathRefused, normalize_path
from l7proxy.routing.retry import RetryPolicy, UpstreamError
from l7proxy.routing.status import StatusReport, compute_status
from l7proxy.routing.tables import ListenerInfo, RouteTables
from l7proxy.routing.types import (
    CONTROLLER_NAME,
    BackendTarget,
    GatewayParent,
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
