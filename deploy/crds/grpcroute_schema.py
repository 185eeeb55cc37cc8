"""The GRPCRoute schema: every field Tulle's model reads (``agent/model/
convert_grpcroute.py``), upstream's structure, enums and bounds, our descriptions. Filters,
backend references and status are HTTPRoute's, with GRPCRoute's four filter types."""

from __future__ import annotations

from httproute_schema import (
    FILTER,
    HEADER_MODIFIER,
    ROUTE_PARENT_STATUS,
    SESSION_PERSISTENCE,
    string_match,
)
from schema_parts import (
    ATOMIC,
    PARENT_REF,
    Schema,
    array,
    backend_ref_props,
    enum,
    integer,
    keyed,
    name,
    obj,
    string,
)

FILTER_TYPES = ["ResponseHeaderModifier", "RequestHeaderModifier", "RequestMirror", "ExtensionRef"]

GRPC_FILTER: Schema = obj(
    "One step of request or response processing; type names it and the field of that name "
    "holds its settings.",
    {
        "type": enum("Which filter this is.", FILTER_TYPES),
        "requestHeaderModifier": HEADER_MODIFIER,
        "responseHeaderModifier": HEADER_MODIFIER,
        "requestMirror": FILTER["properties"]["requestMirror"],
        "extensionRef": FILTER["properties"]["extensionRef"],
    },
    ("type",),
)

MATCH = obj(
    "Conditions a gRPC request must all meet to match the rule.",
    {
        "method": obj(
            "Matches the gRPC service and method (the request path /service/method); at least "
            "one of service and method.",
            {
                "type": enum(
                    "Exact (case-sensitive) or RegularExpression (RE2, whole value).",
                    ["Exact", "RegularExpression"],
                    default="Exact",
                ),
                "service": string("The service, such as helloworld.Greeter.", hi=1024),
                "method": string("The method, such as SayHello.", hi=1024),
            },
        ),
        "headers": array(
            "Metadata (headers) the request must carry.",
            string_match("header", 4096),
            hi=16,
            **keyed("name"),
        ),
    },
)

BACKEND_REF = obj(
    "A backend the route forwards to, with its share of the traffic.",
    {
        **backend_ref_props("backend"),
        "weight": integer(
            "The backend's share of requests, relative to the rule's other backends; 0 sends none.",
            0,
            1000000,
            default=1,
        ),
        "filters": array(
            "Filters for requests going to this backend only.", GRPC_FILTER, hi=16, **ATOMIC
        ),
    },
    ("name",),
)

RULE = obj(
    "Which gRPC requests to route (matches), how to change them (filters) and where to send "
    "them (backendRefs).",
    {
        "name": name("The rule's name, unique within the route."),
        "matches": array(
            "Any one of these matches the request to the rule; every gRPC request when empty.",
            MATCH,
            hi=8,
            **ATOMIC,
        ),
        "filters": array(
            "Filters applied to every request of the rule.", GRPC_FILTER, hi=16, **ATOMIC
        ),
        "backendRefs": array(
            "Where matching requests go; with none they get UNAVAILABLE.",
            BACKEND_REF,
            hi=16,
            **ATOMIC,
        ),
        "sessionPersistence": SESSION_PERSISTENCE,
    },
)

GRPC_ROUTE = obj(
    "Routes gRPC requests that reach its parents (Gateways or Services) to backends, by host, "
    "service, method and headers, with filters on the way.",
    {
        "spec": obj(
            "The routing wanted.",
            {
                "parentRefs": array(
                    "The parents the route attaches to.", PARENT_REF, hi=32, **ATOMIC
                ),
                "hostnames": array(
                    "The :authority values the route serves (exact, or '*.' wildcards); every "
                    "host its listeners allow when empty.",
                    string("A hostname.", 1, 253),
                    hi=16,
                    **ATOMIC,
                ),
                "rules": array(
                    "The routing rules; a request goes by the most specific match.",
                    RULE,
                    0,
                    16,
                    **ATOMIC,
                ),
            },
        ),
        "status": obj(
            "What the controllers of its parents report about the route.",
            {
                "parents": array(
                    "One entry per parent and controller.", ROUTE_PARENT_STATUS, hi=32, **ATOMIC
                )
            },
        ),
    },
    ("spec",),
)
