"""Building blocks of the Gateway API CRD schemas (``generate.py``): typed schema nodes and
the types every kind shares (conditions, references, addresses, printer columns)."""

from __future__ import annotations

from typing import Any

GROUP = "gateway.networking.k8s.io"
Schema = dict[str, Any]

# --- building blocks ---------------------------------------------------------------------


def string(desc: str, lo: int | None = None, hi: int | None = None, **kw: Any) -> Schema:
    out: Schema = {"description": desc, "type": "string", **kw}
    if lo is not None:
        out["minLength"] = lo
    if hi is not None:
        out["maxLength"] = hi
    return out


def integer(desc: str, lo: int | None = None, hi: int | None = None, **kw: Any) -> Schema:
    out: Schema = {"description": desc, "type": "integer", "format": "int32", **kw}
    if lo is not None:
        out["minimum"] = lo
    if hi is not None:
        out["maximum"] = hi
    return out


def enum(desc: str, values: list[Any], **kw: Any) -> Schema:
    kind = "integer" if isinstance(values[0], int) else "string"
    return {"description": desc, "type": kind, "enum": values, **kw}


def obj(desc: str, props: dict[str, Schema], required: tuple[str, ...] = (), **kw: Any) -> Schema:
    out: Schema = {"description": desc, "type": "object", "properties": props, **kw}
    if required:
        out["required"] = list(required)
    return out


def array(
    desc: str, items: Schema, lo: int | None = None, hi: int | None = None, **kw: Any
) -> Schema:
    out: Schema = {"description": desc, "type": "array", "items": items, **kw}
    if lo is not None:
        out["minItems"] = lo
    if hi is not None:
        out["maxItems"] = hi
    return out


def keyed(*keys: str) -> dict[str, Any]:
    """A list merged by key under server-side apply (upstream's list-type markers)."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


ATOMIC = {"x-kubernetes-list-type": "atomic"}
PORT = (1, 65535)


def group(desc: str, default: str) -> Schema:
    return string(desc + " Empty means the core API group.", hi=253, default=default)


def kind(desc: str, default: str | None = None) -> Schema:
    return string(desc, 1, 63, **({"default": default} if default is not None else {}))


def name(desc: str) -> Schema:
    return string(desc, 1, 253)


def namespace(desc: str) -> Schema:
    return string(desc, 1, 63)


# --- shared types ------------------------------------------------------------------------

CONDITION = obj(
    "One aspect of the object's state, as reported by its controller.",
    {
        "type": string(
            "What this condition reports on, in CamelCase (Accepted, Programmed).", 1, 316
        ),
        "status": enum("Whether the condition holds.", ["True", "False", "Unknown"]),
        "reason": string("A CamelCase word saying why the condition last changed.", hi=1024),
        "message": string("A human-readable account of the last change.", hi=32768),
        "lastTransitionTime": string("When the status last changed.", format="date-time"),
        "observedGeneration": {
            "description": "The metadata.generation the condition was computed from.",
            "type": "integer",
            "format": "int64",
            "minimum": 0,
        },
    },
    ("type", "status"),
)


def conditions(desc: str) -> Schema:
    return array(desc, CONDITION, hi=8, **keyed("type"))


LABEL_SELECTOR = obj(
    "Selects objects by their labels; an empty selector selects everything.",
    {
        "matchLabels": {
            "description": "Labels that must all be present with these values.",
            "type": "object",
            "additionalProperties": {"type": "string"},
        },
        "matchExpressions": array(
            "Requirements that must all hold.",
            obj(
                "One requirement on a label.",
                {
                    "key": string("The label's key."),
                    "operator": string("In, NotIn, Exists or DoesNotExist."),
                    "values": array(
                        "The values for In and NotIn; empty for Exists and DoesNotExist.",
                        {"type": "string"},
                        **ATOMIC,
                    ),
                },
                ("key", "operator"),
            ),
            **ATOMIC,
        ),
    },
    **{"x-kubernetes-map-type": "atomic"},
)

PARENT_REF = obj(
    "A parent (usually a Gateway) the route wants to attach to.",
    {
        "group": group("The parent's API group.", GROUP),
        "kind": kind("The parent's kind.", "Gateway"),
        "namespace": namespace("The parent's namespace; the route's own when unset."),
        "name": name("The parent's name."),
        "sectionName": name(
            "A part of the parent to attach to; for a Gateway, a listener's name. Unset "
            "means every part that accepts the route."
        ),
        "port": integer(
            "The parent's port to attach to; for a Gateway, every listener on that port.",
            *PORT,
        ),
    },
    ("name",),
)


def backend_ref_props(what: str) -> dict[str, Schema]:
    return {
        "group": group(f"The {what}'s API group.", ""),
        "kind": kind(f"The {what}'s kind; Service unless set.", "Service"),
        "name": name(f"The {what}'s name."),
        "namespace": namespace(
            f"The {what}'s namespace; the route's own when unset. Another namespace needs a "
            "ReferenceGrant there."
        ),
        "port": integer(
            f"The {what}'s port; required when it is a Service (the Service port, not the "
            "target port).",
            *PORT,
        ),
    }


BACKEND_OBJECT_REF = obj("A backend the request goes to.", backend_ref_props("backend"), ("name",))

SECRET_REF = obj(
    "A Secret holding a TLS certificate and key.",
    {
        "group": group("The referent's API group.", ""),
        "kind": kind("The referent's kind; Secret unless set.", "Secret"),
        "name": name("The referent's name."),
        "namespace": namespace(
            "The referent's namespace; the Gateway's own when unset. Another namespace "
            "needs a ReferenceGrant there."
        ),
    },
    ("name",),
)

ROUTE_GROUP_KIND = obj(
    "A kind of route, by API group and kind.",
    {
        "group": group("The route kind's API group.", GROUP),
        "kind": kind("The route kind, such as HTTPRoute."),
    },
    ("kind",),
)

ADDRESS = obj(
    "A network address of a Gateway.",
    {
        "type": string(
            "How to read value: IPAddress, Hostname, NamedAddress or a domain-prefixed "
            "implementation-specific type.",
            1,
            253,
            default="IPAddress",
        ),
        "value": string("The address.", 1, 253),
    },
    ("value",),
)
# A requested address (GatewaySpecAddress): value is optional, left out to ask for any
# address of the type (GatewayAddressEmpty).
SPEC_ADDRESS = obj(
    "A network address asked for; without a value, any address of its type.",
    {
        "type": ADDRESS["properties"]["type"],
        "value": string("The address; absent or empty: the controller picks one.", None, 253),
    },
)

PRINT_AGE = {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"}


def condition_column(column: str) -> dict[str, str]:
    return {
        "jsonPath": f'.status.conditions[?(@.type=="{column}")].status',
        "name": column,
        "type": "string",
    }
