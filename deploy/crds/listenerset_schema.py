"""ListenerSet schema: every field Tulle's model reads (``agent/model/convert_listenerset.py``),
upstream's structure and bounds (apis/v1/listenerset_types.go), our descriptions."""

from __future__ import annotations

from gateway_schemas import LISTENER, LISTENER_STATUS
from schema_parts import GROUP, array, conditions, keyed, kind, name, namespace, obj, string

LISTENER_SET = obj(
    "Listeners added to a Gateway from another object, perhaps another namespace's; the "
    "Gateway takes them only when its spec.allowedListeners admits the namespace.",
    {
        "spec": obj(
            "The Gateway and the listeners to add to it.",
            {
                "parentRef": obj(
                    "The Gateway the listeners are added to.",
                    {
                        "group": string("The parent's API group.", hi=253, default=GROUP),
                        "kind": kind("The parent's kind.", "Gateway"),
                        "name": name("The Gateway's name."),
                        "namespace": namespace(
                            "The Gateway's namespace; the ListenerSet's when unset."
                        ),
                    },
                    ("name",),
                ),
                "listeners": array(
                    "The listeners; names are unique within the ListenerSet, and so are port, "
                    "protocol and hostname together.",
                    LISTENER,
                    1,
                    64,
                    **keyed("name"),
                ),
            },
            ("parentRef", "listeners"),
        ),
        "status": obj(
            "What the controller reports about the ListenerSet.",
            {
                "conditions": conditions("The ListenerSet's state: Accepted, Programmed."),
                "listeners": array(
                    "The state of each listener.", LISTENER_STATUS, hi=64, **keyed("name")
                ),
            },
        ),
    },
    ("spec",),
)
