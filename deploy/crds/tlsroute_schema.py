"""The TLSRoute schema (v1, Gateway API v1.6 standard channel): every field Tulle's model
reads (``agent/model/convert_tlsroute.py``), upstream's structure and bounds (hostnames
1..1024, exactly one rule, 1..16 backendRefs), our descriptions. Status is HTTPRoute's."""

from __future__ import annotations

from httproute_schema import ROUTE_PARENT_STATUS
from schema_parts import (
    ATOMIC,
    PARENT_REF,
    array,
    backend_ref_props,
    integer,
    name,
    obj,
    string,
)

BACKEND_REF = obj(
    "A backend the connections go to, with its share of them.",
    {
        **backend_ref_props("backend"),
        "weight": integer(
            "The backend's share of connections, relative to the rule's other backends; 0 "
            "sends none.",
            0,
            1000000,
            default=1,
        ),
    },
    ("name",),
)

RULE = obj(
    "Where the connections the route matches go.",
    {
        "name": name("The rule's name."),
        "backendRefs": array(
            "The backends, chosen per connection by weight.", BACKEND_REF, 1, 16, **ATOMIC
        ),
    },
    ("backendRefs",),
)

TLS_ROUTE = obj(
    "Routes TLS connections that reach its parent Gateways' TLS listeners to backends by "
    "the server name (SNI) of their ClientHello: passed through still encrypted, or "
    "decrypted by the Gateway (a listener in Terminate mode).",
    {
        "spec": obj(
            "The routing wanted.",
            {
                "parentRefs": array(
                    "The parents the route attaches to.", PARENT_REF, hi=32, **ATOMIC
                ),
                "hostnames": array(
                    "The SNI server names the route serves (exact, or '*.' wildcards); no IPs.",
                    string("A hostname.", 1, 253),
                    1,
                    1024,
                    **ATOMIC,
                ),
                "rules": array("The one routing rule.", RULE, 1, 1, **ATOMIC),
            },
            ("hostnames", "rules"),
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
