"""Writes the Gateway API CustomResourceDefinitions the lab serves, one file per kind, into
``deploy/crds/gateway-api/``: ``python deploy/crds/generate.py`` (``--check`` compares).

The schemas cover every field Tulle's model (``agent/model/convert_gateway.py``,
``convert_httproute.py``) reads, with upstream's structure, names, enums, list bounds and
lengths; the descriptions are ours. Format rules (hostnames, paths, names) and upstream's CEL
rules are left to the lab's typed admission, which runs after the schema. Each version
shares one schema (``conversion: None``), as upstream's do.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

GROUP = "gateway.networking.k8s.io"
OUT = Path(__file__).resolve().parent / "gateway-api"
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

PRINT_AGE = {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"}


def condition_column(column: str) -> dict[str, str]:
    return {
        "jsonPath": f'.status.conditions[?(@.type=="{column}")].status',
        "name": column,
        "type": "string",
    }


# --- GatewayClass ------------------------------------------------------------------------

GATEWAY_CLASS = obj(
    "A class of Gateways that one controller implements, as a StorageClass is a class of "
    "volumes. Cluster-scoped; Gateways name it in spec.gatewayClassName.",
    {
        "spec": obj(
            "What the class is and who implements it.",
            {
                "controllerName": string(
                    "The controller that manages Gateways of this class, as a domain-prefixed "
                    "path (Tulle's: tulle.dev/gateway-controller). It cannot change once set.",
                    1,
                    253,
                ),
                "description": string("A short human-readable description of the class.", hi=64),
            },
            ("controllerName",),
        ),
        "status": obj(
            "What the controller reports about the class.",
            {
                "conditions": conditions(
                    "The class's state; Accepted says whether the controller took it."
                )
            },
        ),
    },
    ("spec",),
)

# --- Gateway -----------------------------------------------------------------------------

LISTENER = obj(
    "One logical endpoint of a Gateway: a port, a protocol and, optionally, a hostname.",
    {
        "name": name(
            "The listener's name, unique within the Gateway; routes attach to it by sectionName."
        ),
        "hostname": string(
            "The host the listener serves (an exact name or a '*.' wildcard); every host "
            "when unset. Ignored for TCP and UDP.",
            1,
            253,
        ),
        "port": integer("The network port.", *PORT),
        "protocol": string(
            "The protocol the listener speaks: HTTP, HTTPS, TLS, TCP, UDP, or a "
            "domain-prefixed implementation-specific one.",
            1,
            255,
        ),
        "tls": obj(
            "TLS settings; required for HTTPS and TLS, not allowed for HTTP, TCP and UDP.",
            {
                "mode": enum(
                    "Terminate TLS at the Gateway, or pass the stream through untouched.",
                    ["Terminate", "Passthrough"],
                    default="Terminate",
                ),
                "certificateRefs": array(
                    "The certificates (Secrets) to serve; at least one when terminating.",
                    SECRET_REF,
                    hi=64,
                    **ATOMIC,
                ),
            },
        ),
        "allowedRoutes": obj(
            "Which routes may attach to this listener.",
            {
                "namespaces": obj(
                    "From which namespaces routes may attach.",
                    {
                        "from": enum(
                            "All namespaces, only the Gateway's own, or those matching selector.",
                            ["All", "Selector", "Same"],
                            default="Same",
                        ),
                        "selector": LABEL_SELECTOR,
                    },
                    default={"from": "Same"},
                ),
                "kinds": array(
                    "The route kinds allowed; by default those the listener's protocol carries.",
                    ROUTE_GROUP_KIND,
                    hi=8,
                    **ATOMIC,
                ),
            },
            default={"namespaces": {"from": "Same"}},
        ),
    },
    ("name", "port", "protocol"),
)

LISTENER_STATUS = obj(
    "The state of one listener.",
    {
        "name": name("The listener this entry describes."),
        "attachedRoutes": integer("How many routes are attached to the listener."),
        "supportedKinds": array(
            "The route kinds the listener accepts.", ROUTE_GROUP_KIND, hi=8, **ATOMIC
        ),
        "conditions": conditions("The listener's state."),
    },
    ("name", "attachedRoutes"),
)

GATEWAY = obj(
    "A load balancer or proxy that takes traffic in for routes: its listeners say on which "
    "ports, protocols and hosts, its class says which controller implements it.",
    {
        "spec": obj(
            "The Gateway wanted.",
            {
                "gatewayClassName": name("The GatewayClass this Gateway belongs to."),
                "listeners": array(
                    "The Gateway's listeners; names are unique, and so are port, protocol and "
                    "hostname together.",
                    LISTENER,
                    1,
                    64,
                    **keyed("name"),
                ),
                "addresses": array(
                    "Addresses asked for; the controller assigns them when unset.",
                    ADDRESS,
                    hi=16,
                    **ATOMIC,
                ),
            },
            ("gatewayClassName", "listeners"),
        ),
        "status": obj(
            "What the controller reports about the Gateway.",
            {
                "addresses": array(
                    "The addresses the Gateway is reachable at.", ADDRESS, hi=16, **ATOMIC
                ),
                "conditions": conditions("The Gateway's state: Accepted, Programmed."),
                "listeners": array(
                    "The state of each listener.", LISTENER_STATUS, hi=64, **keyed("name")
                ),
            },
        ),
    },
    ("spec",),
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

# --- ReferenceGrant ----------------------------------------------------------------------

REFERENCE_GRANT = obj(
    "Lets objects of the listed kinds in other namespaces refer to objects of this "
    "namespace. A reference across namespaces (a route to another namespace's Service, a "
    "Gateway to another namespace's Secret) is honoured only while a grant allows it.",
    {
        "spec": obj(
            "Who may refer, and to what.",
            {
                "from": array(
                    "The referring kinds and namespaces; any one suffices.",
                    obj(
                        "A kind of object in one namespace that may refer here.",
                        {
                            "group": string("The referrer's API group; empty for core.", hi=253),
                            "kind": kind("The referrer's kind, such as HTTPRoute."),
                            "namespace": namespace("The referrer's namespace."),
                        },
                        ("group", "kind", "namespace"),
                    ),
                    1,
                    16,
                    **ATOMIC,
                ),
                "to": array(
                    "The kinds (optionally one object) of this namespace that may be referred to.",
                    obj(
                        "A kind of object here that may be referred to.",
                        {
                            "group": string("The referent's API group; empty for core.", hi=253),
                            "kind": kind("The referent's kind, such as Service or Secret."),
                            "name": name("One object's name; every object of the kind when unset."),
                        },
                        ("group", "kind"),
                    ),
                    1,
                    16,
                    **ATOMIC,
                ),
            },
            ("from", "to"),
        ),
    },
    ("spec",),
)

# --- the CRDs ----------------------------------------------------------------------------

TOP = {
    "apiVersion": {"description": "The versioned schema of this object.", "type": "string"},
    "kind": {"description": "The REST resource this object is.", "type": "string"},
    "metadata": {"type": "object"},
}


def crd(
    kind_name: str,
    plural: str,
    schema: Schema,
    *,
    scope: str = "Namespaced",
    short: tuple[str, ...] = (),
    columns: tuple[dict[str, Any], ...] = (),
    wide: tuple[dict[str, Any], ...] = (),
    versions: tuple[str, ...] = ("v1", "v1beta1"),
    storage: str = "v1",
    status: bool = True,
) -> dict[str, Any]:
    root = {**schema, "properties": {**TOP, **schema["properties"]}}
    names: dict[str, Any] = {"categories": ["gateway-api"], "kind": kind_name}
    names["listKind"] = f"{kind_name}List"
    names["plural"] = plural
    if short:
        names["shortNames"] = list(short)
    names["singular"] = kind_name.lower()
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "annotations": {"gateway.networking.k8s.io/channel": "standard"},
            "labels": {"app.kubernetes.io/part-of": "tulle"},
        },
        "spec": {
            "group": GROUP,
            "names": names,
            "scope": scope,
            "conversion": {"strategy": "None"},
            "versions": [
                {
                    "name": v,
                    "served": True,
                    "storage": v == storage,
                    "additionalPrinterColumns": [*columns, PRINT_AGE, *wide],
                    "schema": {"openAPIV3Schema": root},
                    "subresources": {"status": {}} if status else {},
                }
                for v in versions
            ],
        },
    }


def crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD."""
    return {
        "gatewayclasses.yaml": crd(
            "GatewayClass",
            "gatewayclasses",
            GATEWAY_CLASS,
            scope="Cluster",
            short=("gc",),
            columns=(
                {"jsonPath": ".spec.controllerName", "name": "Controller", "type": "string"},
                condition_column("Accepted"),
            ),
            wide=(
                {
                    "jsonPath": ".spec.description",
                    "name": "Description",
                    "type": "string",
                    "priority": 1,
                },
            ),
        ),
        "gateways.yaml": crd(
            "Gateway",
            "gateways",
            GATEWAY,
            short=("gtw",),
            columns=(
                {"jsonPath": ".spec.gatewayClassName", "name": "Class", "type": "string"},
                {"jsonPath": ".status.addresses[*].value", "name": "Address", "type": "string"},
                condition_column("Programmed"),
            ),
        ),
        "httproutes.yaml": crd(
            "HTTPRoute",
            "httproutes",
            HTTP_ROUTE,
            columns=({"jsonPath": ".spec.hostnames", "name": "Hostnames", "type": "string"},),
        ),
        "referencegrants.yaml": crd(
            "ReferenceGrant",
            "referencegrants",
            REFERENCE_GRANT,
            short=("refgrant",),
            storage="v1beta1",
            status=False,
        ),
    }


HEADER_TEXT = "# Generated by deploy/crds/generate.py; edit that, then run it.\n"


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # shared sub-schemas written out in full
        return True


def render(doc: dict[str, Any]) -> str:
    return HEADER_TEXT + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100)


def main(argv: list[str]) -> int:
    stale = []
    for file, doc in crds().items():
        path, text = OUT / file, render(doc)
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
            continue
        OUT.mkdir(exist_ok=True)
        path.write_text(text)
    if stale:
        print("stale (run python deploy/crds/generate.py):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
