"""GatewayClass, Gateway and ReferenceGrant schemas: every field Tulle's model reads
(``agent/model/convert_gateway.py``), upstream's structure and bounds, our descriptions."""

from __future__ import annotations

from schema_parts import (
    ADDRESS,
    ATOMIC,
    LABEL_SELECTOR,
    PORT,
    ROUTE_GROUP_KIND,
    SECRET_REF,
    SPEC_ADDRESS,
    array,
    conditions,
    enum,
    group,
    integer,
    keyed,
    kind,
    name,
    namespace,
    obj,
    string,
)

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
                    "path (Tulle's: tulle.io/gateway-controller). It cannot change once set.",
                    1,
                    253,
                ),
                "description": string("A short human-readable description of the class.", hi=64),
                "parametersRef": obj(
                    "An object with implementation-specific parameters for the class. Tulle "
                    "reads none: a class naming one is not Accepted (InvalidParameters).",
                    {
                        "group": string("The referent's API group.", hi=253),
                        "kind": kind("The referent's kind."),
                        "name": name("The referent's name."),
                        "namespace": namespace(
                            "The referent's namespace; unset for a cluster-scoped object."
                        ),
                    },
                    ("group", "kind", "name"),
                ),
            },
            ("controllerName",),
        ),
        "status": obj(
            "What the controller reports about the class.",
            {
                "conditions": conditions(
                    "The class's state; Accepted says whether the controller took it."
                ),
                "supportedFeatures": array(
                    "The Gateway API features the class supports, sorted by name (Tulle's: "
                    "those its conformance run passes, gatewayapi/supported_features.py).",
                    obj("One supported feature.",
                        {"name": string("The feature's name, as the Gateway API registry "
                                        "spells it (HTTPRouteQueryParamMatching).", 1, 128)},
                        ("name",)),
                    hi=64,
                    **keyed("name"),
                ),
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

CA_OBJECT_REF = obj(
    "A CA bundle: a ConfigMap with ca.crt (Core); another namespace needs a ReferenceGrant.",
    {
        "group": group("The referent's API group.", ""),
        "kind": kind("The referent's kind (ConfigMap)."),
        "name": name("The referent's name."),
        "namespace": namespace("The referent's namespace; the Gateway's when unset."),
    },
    ("group", "kind", "name"),
)

FRONTEND_TLS_SETTINGS = obj(
    "TLS settings for the HTTPS listeners of a port.",
    {
        "validation": obj(
            "Client certificate validation (mutual TLS with the clients).",
            {
                "caCertificateRefs": array(
                    "The CAs that validate client certificates.", CA_OBJECT_REF, 1, 16, **ATOMIC
                ),
                "mode": enum(
                    "AllowValidOnly: only clients with a valid certificate; "
                    "AllowInsecureFallback: every client.",
                    ["AllowValidOnly", "AllowInsecureFallback"],
                    default="AllowValidOnly",
                ),
            },
            ("caCertificateRefs",),
        ),
    },
)

GATEWAY_TLS = obj(
    "TLS for the whole Gateway; frontend: what its HTTPS listeners ask of clients (GEP-91); "
    "backend: what it presents to backends (GEP-3155).",
    {
        "backend": obj(
            "The Gateway as a TLS client of backends (those a BackendTLSPolicy covers).",
            {"clientCertificateRef": SECRET_REF},
        ),
        "frontend": obj(
            "Client-side TLS: a default for every HTTPS listener, perPort overrides.",
            {
                "default": FRONTEND_TLS_SETTINGS,
                "perPort": array(
                    "Settings for the HTTPS listeners of one port, instead of the default.",
                    obj("One port's settings.", {"port": integer("The port.", *PORT),
                                                 "tls": FRONTEND_TLS_SETTINGS},
                        ("port", "tls")),
                    hi=64,
                    **keyed("port"),
                ),
            },
            ("default",),
        ),
    },
)

GATEWAY_INFRASTRUCTURE = obj(
    "Labels and annotations for the objects created in response to the Gateway, and "
    "implementation-specific parameters (GEP-1762). Keys as Kubernetes label keys (the "
    "lab's admission checks them; upstream's CRD has CEL rules).",
    {
        "labels": {
            "description": "Labels for the objects created for this Gateway.",
            "type": "object",
            "maxProperties": 8,
            "additionalProperties": string(
                "A label value.", 0, 63, pattern=r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
            ),
        },
        "annotations": {
            "description": "Annotations for the objects created for this Gateway.",
            "type": "object",
            "maxProperties": 16,
            "additionalProperties": string("An annotation value.", 0, 4096),
        },
        "parametersRef": obj(
            "An object in the Gateway's namespace with implementation-specific parameters.",
            {
                "group": string("The referent's API group.", hi=253),
                "kind": kind("The referent's kind."),
                "name": name("The referent's name."),
            },
            ("group", "kind", "name"),
        ),
    },
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
                    SPEC_ADDRESS,
                    hi=16,
                    **ATOMIC,
                ),
                "allowedListeners": obj(
                    "Which ListenerSets may add listeners to this Gateway; none by default.",
                    {
                        "namespaces": obj(
                            "From which namespaces ListenerSets may attach.",
                            {
                                "from": enum(
                                    "None, the Gateway's own namespace, all namespaces, or "
                                    "those matching selector.",
                                    ["All", "Selector", "Same", "None"],
                                    default="None",
                                ),
                                "selector": LABEL_SELECTOR,
                            },
                            default={"from": "None"},
                        ),
                    },
                ),
                "tls": GATEWAY_TLS,
                "infrastructure": GATEWAY_INFRASTRUCTURE,
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
                "attachedListenerSets": integer(
                    "How many ListenerSets are attached (Accepted) to the Gateway.", 0
                ),
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
