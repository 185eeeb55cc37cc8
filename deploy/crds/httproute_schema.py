"""The HTTPRoute schema: every field Tulle's model reads (``agent/model/
convert_httproute.py`` and ``convert_httpfilter.py``), upstream's structure, enums and
bounds, our descriptions."""

from __future__ import annotations

from schema_parts import (
    ATOMIC,
    BACKEND_OBJECT_REF,
    PARENT_REF,
    PORT,
    Schema,
    array,
    backend_ref_props,
    conditions,
    enum,
    integer,
    keyed,
    kind,
    name,
    obj,
    string,
)

# --- HTTPRoute ---------------------------------------------------------------------------

METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]


def string_match(what: str, value_max: int) -> Schema:
    return obj(
        f"Matches a request {what} by name and value.",
        {
            "name": string(f"The {what}'s name (case-insensitive for headers).", 1, 256),
            "type": enum("How value is compared.", ["Exact", "RegularExpression"], default="Exact"),
            "value": string(f"The {what} value to match.", 1, value_max),
        },
        ("name", "value"),
    )


HEADER = obj(
    "An HTTP header name and value.",
    {"name": string("The header's name.", 1, 256), "value": string("The header's value.", 1, 4096)},
    ("name", "value"),
)

HEADER_MODIFIER = obj(
    "Changes to headers: set overwrites, add appends, remove deletes.",
    {
        "set": array("Headers to overwrite (or add when absent).", HEADER, hi=16, **keyed("name")),
        "add": array("Headers to add, after any present.", HEADER, hi=16, **keyed("name")),
        "remove": array(
            "Header names to remove.",
            {"type": "string"},
            hi=16,
            **{"x-kubernetes-list-type": "set"},
        ),
    },
)

PATH_MODIFIER = obj(
    "How to rewrite the request path.",
    {
        "type": enum(
            "Replace the whole path, or the prefix that matched.",
            ["ReplaceFullPath", "ReplacePrefixMatch"],
        ),
        "replaceFullPath": string("The new path, for ReplaceFullPath.", hi=1024),
        "replacePrefixMatch": string(
            "What replaces the matched prefix, for ReplacePrefixMatch (needs a PathPrefix match).",
            hi=1024,
        ),
    },
    ("type",),
)

HOSTNAME_EXACT = string("A hostname without wildcards.", 1, 253)

CORS = obj(
    "Answers CORS preflight requests and adds CORS headers to responses.",
    {
        "allowOrigins": array(
            'Origins allowed to make requests: "*", or scheme://host[:port] (the host may '
            'start with "*.").',
            string("An origin.", 1, 253),
            hi=64,
            **{"x-kubernetes-list-type": "set"},
        ),
        "allowCredentials": {
            "description": "Whether the browser may send credentials.",
            "type": "boolean",
        },
        "allowMethods": array(
            'HTTP methods allowed, or "*".',
            enum("A method.", [*METHODS, "*"]),
            hi=9,
            **{"x-kubernetes-list-type": "set"},
        ),
        "allowHeaders": array(
            "Request headers allowed.",
            string("A header name.", 1, 256),
            hi=64,
            **{"x-kubernetes-list-type": "set"},
        ),
        "exposeHeaders": array(
            "Response headers scripts may read.",
            string("A header name.", 1, 256),
            hi=64,
            **{"x-kubernetes-list-type": "set"},
        ),
        "maxAge": integer("Seconds a preflight answer may be cached.", 1, default=5),
    },
)

FILTER_TYPES = [
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestMirror",
    "RequestRedirect",
    "URLRewrite",
    "ExtensionRef",
    "CORS",
]

FILTER = obj(
    "One step of request or response processing; type names it and the field of that name "
    "holds its settings.",
    {
        "type": enum("Which filter this is.", FILTER_TYPES),
        "requestHeaderModifier": HEADER_MODIFIER,
        "responseHeaderModifier": HEADER_MODIFIER,
        "requestMirror": obj(
            "Sends a copy of the request to another backend; its responses are dropped.",
            {
                "backendRef": BACKEND_OBJECT_REF,
                "percent": integer("The share of requests mirrored, in percent.", 0, 100),
                "fraction": obj(
                    "The share of requests mirrored, as numerator/denominator.",
                    {
                        "numerator": integer("Requests mirrored per denominator.", 0),
                        "denominator": integer("The whole.", 1, default=100),
                    },
                    ("numerator",),
                ),
            },
            ("backendRef",),
        ),
        "requestRedirect": obj(
            "Answers with a redirect instead of forwarding the request.",
            {
                "scheme": enum(
                    "The scheme of the Location; the request's when unset.", ["http", "https"]
                ),
                "hostname": HOSTNAME_EXACT,
                "path": PATH_MODIFIER,
                "port": integer("The port of the Location.", *PORT),
                "statusCode": enum(
                    "The redirect's status code.", [301, 302, 303, 307, 308], default=302
                ),
            },
        ),
        "urlRewrite": obj(
            "Rewrites the host and path before the request goes to the backend.",
            {"hostname": HOSTNAME_EXACT, "path": PATH_MODIFIER},
        ),
        "cors": CORS,
        "extensionRef": obj(
            "An implementation-specific filter, by reference.",
            {
                "group": string("The filter object's API group.", hi=253),
                "kind": kind("The filter object's kind."),
                "name": name("The filter object's name."),
            },
            ("group", "kind", "name"),
        ),
    },
    ("type",),
)

MATCH = obj(
    "Conditions a request must all meet to match the rule.",
    {
        "path": obj(
            "Matches the request path.",
            {
                "type": enum(
                    "Exact, PathPrefix (by whole segments) or RegularExpression.",
                    ["Exact", "PathPrefix", "RegularExpression"],
                    default="PathPrefix",
                ),
                "value": string("The path, prefix or expression to match.", hi=1024, default="/"),
            },
            default={"type": "PathPrefix", "value": "/"},
        ),
        "headers": array(
            "Headers the request must carry.", string_match("header", 4096), hi=16, **keyed("name")
        ),
        "queryParams": array(
            "Query parameters the request must carry.",
            string_match("query parameter", 1024),
            hi=16,
            **keyed("name"),
        ),
        "method": enum("The HTTP method to match.", METHODS),
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
            "Filters for requests going to this backend only.", FILTER, hi=16, **ATOMIC
        ),
    },
    ("name",),
)

DURATION = (
    "A duration such as 10s, 1m or 500ms (Gateway API's Duration: hours, minutes, seconds, "
    "milliseconds)."
)

SESSION_PERSISTENCE = obj(
    "Keeps a client's requests on one backend endpoint (GEP-1619): the waypoint issues a "
    "token in a cookie or header and honours it while that endpoint is ready.",
    {
        "sessionName": string("The cookie or header name; a name unique to the rule if unset.",
                              hi=128),
        "absoluteTimeout": string("How long a session lasts from its start. " + DURATION),
        "type": enum("Where the token travels.", ["Cookie", "Header"], default="Cookie"),
        "cookieConfig": obj(
            "Cookie settings (type Cookie only).",
            {
                "lifetimeType": enum(
                    "Permanent: the cookie carries Max-Age (absoluteTimeout); Session: it "
                    "does not.",
                    ["Permanent", "Session"],
                    default="Session",
                ),
            },
        ),
        # kept so that it is refused by name rather than pruned: Gateway API v1.6 removed it
        "idleTimeout": string("Removed in Gateway API v1.6: refused. " + DURATION),
    },
)

RULE = obj(
    "Which requests to route (matches), how to change them (filters) and where to send them "
    "(backendRefs).",
    {
        "name": name("The rule's name, unique within the route."),
        "matches": array(
            "Any one of these matches the request to the rule; every request when empty.",
            MATCH,
            hi=64,
            default=[{"path": {"type": "PathPrefix", "value": "/"}}],
            **ATOMIC,
        ),
        "filters": array("Filters applied to every request of the rule.", FILTER, hi=16, **ATOMIC),
        "backendRefs": array(
            "Where matching requests go; with none (and no redirect) they get a 500.",
            BACKEND_REF,
            hi=16,
            **ATOMIC,
        ),
        "timeouts": obj(
            "Time limits for the rule's requests.",
            {
                "request": string("The whole request, client to response. " + DURATION),
                "backendRequest": string(
                    "One attempt at a backend; no longer than request. " + DURATION
                ),
            },
        ),
        "retry": obj(
            "Retrying failed requests to backends.",
            {
                "codes": array(
                    "Response codes that are retried.",
                    integer("An HTTP status code.", 400, 599),
                    **ATOMIC,
                ),
                "attempts": integer("The most retries per request.", 0),
                "backoff": string("The least time between attempts. " + DURATION),
            },
        ),
        "sessionPersistence": SESSION_PERSISTENCE,
    },
)

ROUTE_PARENT_STATUS = obj(
    "The state of the route at one parent.",
    {
        "parentRef": PARENT_REF,
        "controllerName": string("The controller that wrote this entry.", 1, 253),
        "conditions": conditions("The route's state at this parent: Accepted, ResolvedRefs."),
    },
    ("parentRef", "controllerName"),
)

HTTP_ROUTE = obj(
    "Routes HTTP requests that reach its parents (Gateways) to backends, by host, path, "
    "headers, query parameters and method, with filters on the way.",
    {
        "spec": obj(
            "The routing wanted.",
            {
                "parentRefs": array(
                    "The parents the route attaches to.", PARENT_REF, hi=32, **ATOMIC
                ),
                "hostnames": array(
                    "The Host header values the route serves (exact, or '*.' wildcards); every "
                    "host its listeners allow when empty.",
                    string("A hostname.", 1, 253),
                    hi=16,
                    **ATOMIC,
                ),
                "rules": array(
                    "The routing rules; a request goes by the most specific match.",
                    RULE,
                    1,
                    16,
                    default=[{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}],
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
