"""The BackendTrafficPolicy schema (policy.tulle.io/v1alpha1): GEP-713 targetRefs, Istio's
DestinationRule connectionPool and outlierDetection fields, GEP-3388's retryConstraint
(every field Tulle's model reads, ``agent/model/convert_backendpolicy.py``), GEP-713's
PolicyStatus; our descriptions. Istio fields Tulle does not enforce stay in the schema,
described as refused (a structural schema would prune them, and the policy would be
Accepted doing less than it says); the typed admission refuses them by name with the
reason (``convert_backendpolicy.REFUSED``)."""

from __future__ import annotations

from schema_parts import Schema, array, conditions, integer, obj, string

GROUP = "policy.tulle.io"
INT32 = 2**31 - 1
UINT32 = 2**32 - 1
DURATION = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"


def _duration(desc: str) -> Schema:
    return string(desc + " A Gateway API duration (10s, 500ms, 1m30s), at least 1ms.",
                  pattern=DURATION)


REFUSED = "Not supported by Tulle: a policy that sets it is refused (the reason says why)."


def _refused(kind: str) -> Schema:
    if kind == "object":  # kept whole, so admission sees it and names it
        return {"description": REFUSED, "type": "object",
                "x-kubernetes-preserve-unknown-fields": True}
    if kind == "array":
        return {"description": REFUSED, "type": "array",
                "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    return {"description": REFUSED, "type": kind}


def _limit(desc: str) -> Schema:
    return integer(desc + " 0 or unset: unlimited (Istio's default).", 0, INT32,
                   format="int32")


TARGET_REF = obj(
    "A Service of the policy's namespace.",
    {
        "group": string('The API group: "" (core).', hi=253, enum=["", "core"]),
        "kind": string("Service.", 1, 63, enum=["Service"]),
        "name": string("The Service's name.", 1, 253),
    },
    ("kind", "name"),
)

CONNECTION_POOL = obj(
    "Circuit breaking, as Istio's connectionPool: limits per Service port, counted by each "
    "node's waypoint; a request over them is answered 503 (flow drop reason UPSTREAM_OVERFLOW, "
    "Envoy's UO).",
    {
        "tcp": obj("Connection limits.", {
            "maxConnections": _limit(
                "HTTP/1.1 connections to the Service (so requests in flight); beyond it "
                "requests wait, up to http1MaxPendingRequests."),
            "connectTimeout": _refused("string"),
            "tcpKeepalive": _refused("object"),
            "maxConnectionDuration": _refused("string"),
            "idleTimeout": _refused("string"),
        }),
        "http": obj("Request limits.", {
            "http1MaxPendingRequests": _limit("Requests waiting for a connection."),
            "http2MaxRequests": _limit("Requests in flight to the Service."),
            "maxRequestsPerConnection": _limit(
                "Requests a backend connection carries before it is closed (1: no reuse)."),
            "maxRetries": _limit("Retries in flight to the Service."),
            "idleTimeout": _refused("string"),
            "h2UpgradePolicy": _refused("string"),
            "useClientProtocol": _refused("boolean"),
            "maxConcurrentStreams": _refused("integer"),
        }),
    },
)

OUTLIER_DETECTION = obj(
    "Ejection of failing endpoints from the waypoint's choice, as Istio's outlierDetection.",
    {
        "consecutive5xxErrors": integer(
            "5xx answers (or tries without one) in a row that eject an endpoint; 0 turns "
            "this off. Default 5.", 0, UINT32, format="int64"),
        "consecutiveGatewayErrors": integer(
            "502, 503, 504 answers (or tries without one) in a row that eject an endpoint; "
            "0 (the default) turns this off.", 0, UINT32, format="int64"),
        "interval": _duration("How often ejected endpoints are checked for return. Default "
                              "10s."),
        "baseEjectionTime": _duration(
            "Ejection time, times the number of times the endpoint was ejected. Default 30s."),
        "maxEjectionPercent": integer(
            "Most endpoints, in percent, ejected at once. Default 10.", 0, 100,
            format="int32"),
        "minHealthPercent": integer(
            "Below this percentage of endpoints in, ejection is ignored (all are chosen "
            "from). Default 0.", 0, 100, format="int32"),
        "splitExternalLocalOriginErrors": {
            "description": "Count tries without an answer (connect failure, reset, "
                           "timeout) apart, toward consecutiveLocalOriginFailures only, not "
                           "toward the 5xx and gateway counts. Default false.",
            "type": "boolean"},
        "consecutiveLocalOriginFailures": integer(
            "Tries without an answer in a row that eject an endpoint, with "
            "splitExternalLocalOriginErrors (ignored without); 0 turns this off. Default 5.",
            0, UINT32, format="int64"),
        "consecutiveErrors": _refused("integer"),
    },
)


LOAD_BALANCER = obj(
    "How the waypoint chooses an endpoint, as Istio's loadBalancer (its simple form; after "
    "HTTPRoute weights split, among the endpoints outlier detection leaves in).",
    {
        "simple": string(
            "UNSPECIFIED (the default: power of two choices over peak-EWMA latency), "
            "LEAST_REQUEST (Envoy's: the fewer requests in flight of two at random; "
            "LEAST_CONN is its deprecated name), ROUND_ROBIN or RANDOM. PASSTHROUGH is "
            "refused.",
            enum=["UNSPECIFIED", "LEAST_REQUEST", "LEAST_CONN", "ROUND_ROBIN", "RANDOM",
                  "PASSTHROUGH"]),
        **{k: _refused("object") for k in ("consistentHash", "localityLbSetting", "warmup")},
        "warmupDurationSecs": _refused("string"),
    },
)


def _budget_interval(desc: str) -> Schema:
    return string(desc + " A Gateway API duration between 1s and 1h.", pattern=DURATION)


RETRY_CONSTRAINT = obj(
    "A retry budget (Gateway API GEP-3388): retries to the Service, counted by each node's "
    "waypoint, are capped relative to its requests; a retry over the budget is not sent and "
    "the failed try's answer is returned (flow drop reason UPSTREAM_RETRY_LIMIT_EXCEEDED when "
    "the try got no answer).",
    {
        "budget": obj("The share of requests that may be retries.", {
            "percent": integer("Retries as a percentage of the requests of the interval. "
                               "Default 20.", 0, 100, format="int32"),
            "interval": _budget_interval("The window over which requests and retries are "
                                         "counted. Default 10s."),
        }),
        "minRetryRate": obj(
            "Retries always allowed whatever the percentage, so a quiet Service can retry.",
            {
                "count": integer("Retries per interval. Default 10.", 1, INT32, format="int32"),
                "interval": _budget_interval("The interval of count. Default 1s."),
            },
        ),
    },
)

ANCESTOR_STATUS = obj(
    "The policy's state for one target (GEP-713 PolicyAncestorStatus).",
    {
        "ancestorRef": obj("The target Service.", {
            "group": string("The API group.", hi=253),
            "kind": string("The kind.", 1, 63),
            "name": string("The name.", 1, 253),
            "namespace": string("The namespace.", 1, 63),
        }, ("name",)),
        "controllerName": string("The controller that wrote this entry.", 1, 253),
        "conditions": conditions(
            "Accepted (reasons Accepted, Conflicted: an older policy targets the Service; "
            "TargetNotFound)."),
    },
    ("ancestorRef", "controllerName"),
)

BACKEND_TRAFFIC_POLICY: Schema = obj(
    "Circuit breaking, outlier detection and a retry budget for the Services it targets, "
    "with the fields of Istio's DestinationRule trafficPolicy and GEP-3388's retryConstraint. "
    "When two policies target one Service the older "
    "applies; the other reports Accepted=False, reason Conflicted.",
    {
        "spec": obj(
            "The policy wanted.",
            {
                "targetRefs": array("The Services the policy applies to.", TARGET_REF, 1, 16),
                "connectionPool": CONNECTION_POOL,
                "outlierDetection": OUTLIER_DETECTION,
                "retryConstraint": RETRY_CONSTRAINT,
                "loadBalancer": LOAD_BALANCER,
                **{k: _refused("object") for k in ("tls", "tunnel", "proxyProtocol")},
                "portLevelSettings": _refused("array"),
            },
            ("targetRefs",),
        ),
        "status": obj(
            "What the controller reports about the policy.",
            {"ancestors": array("One entry per target.", ANCESTOR_STATUS, hi=16)},
        ),
    },
    ("spec",),
)

ACCEPTED_COLUMN = {
    "jsonPath": '.status.ancestors[*].conditions[?(@.type=="Accepted")].status',
    "name": "Accepted",
    "type": "string",
}
