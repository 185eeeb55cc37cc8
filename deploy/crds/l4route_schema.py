"""The TCPRoute and UDPRoute schema (one shape for both): every field Tulle's model reads
(``agent/model/convert_l4route.py``), upstream's structure and bounds, our descriptions."""

from __future__ import annotations

from httproute_schema import ROUTE_PARENT_STATUS
from schema_parts import ATOMIC, PARENT_REF, Schema, array, backend_ref_props, integer, name, obj

BACKEND_REF = obj(
    "A backend the route forwards connections to, with its share of them.",
    {
        **backend_ref_props("backend"),
        "weight": integer(
            "The backend's share of connections, relative to the route's other backends; "
            "0 sends none.",
            0,
            1000000,
            default=1,
        ),
    },
    ("name",),
)

RULE = obj(
    "Where the listener's connections go: every rule's backends share them by weight.",
    {
        "name": name("The rule's name, unique within the route."),
        "backendRefs": array("The backends.", BACKEND_REF, 1, 16, **ATOMIC),
    },
    ("backendRefs",),
)


def l4_route(what: str) -> Schema:
    return obj(
        f"Forwards the {what} traffic reaching a Gateway listener's port to weighted backends.",
        {
            "spec": obj(
                "The routing wanted.",
                {
                    "parentRefs": array(
                        "The parents the route attaches to.", PARENT_REF, hi=32, **ATOMIC
                    ),
                    "rules": array("The routing rules.", RULE, 1, 16, **ATOMIC),
                },
                ("rules",),
            ),
            "status": obj(
                "What the controllers of its parents report about the route.",
                {
                    "parents": array(
                        "One entry per parent and controller.",
                        ROUTE_PARENT_STATUS,
                        hi=32,
                        **ATOMIC,
                    )
                },
            ),
        },
        ("spec",),
    )


TCP_ROUTE = l4_route("TCP")
UDP_ROUTE = l4_route("UDP")
