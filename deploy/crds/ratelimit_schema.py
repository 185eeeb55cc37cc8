"""The HTTPLocalRateLimitPolicy schema (policy.tulle.io/v1alpha1): GEP-713 targetRefs and
Linkerd's HTTPLocalRateLimitPolicy fields (total, identity, overrides; every field Tulle's
model reads, ``agent/model/convert_ratelimit.py``), GEP-713's PolicyStatus; our
descriptions. The cross-field rules (a rate at most total's) are the model's."""

from __future__ import annotations

from backendpolicy_schema import ANCESTOR_STATUS, TARGET_REF
from schema_parts import Schema, array, integer, obj, string

UINT32 = 2**32 - 1


def _limit(desc: str) -> Schema:
    return obj(desc, {
        "requestsPerSecond": integer(
            "Requests per second, at least 1; bursts of up to one second's worth pass.",
            1, UINT32, format="int64"),
    }, ("requestsPerSecond",))


CLIENT_REF = obj(
    "A ServiceAccount whose pods the override covers.",
    {
        "group": string('The API group: "" (core).', hi=253, enum=["", "core"]),
        "kind": string("ServiceAccount.", 1, 63, enum=["ServiceAccount"]),
        "name": string("The ServiceAccount's name.", 1, 253),
        "namespace": string("Its namespace; unset: the policy's.", 1, 63),
    },
    ("kind", "name"),
)

OVERRIDE = obj(
    "A rate for the callers of some ServiceAccounts, instead of identity's.",
    {
        "requestsPerSecond": integer(
            "Requests per second for each of these callers, at least 1 and at most "
            "total.requestsPerSecond when that is set.", 1, UINT32, format="int64"),
        "clientRefs": array("The ServiceAccounts.", CLIENT_REF, 1, 64),
    },
    ("requestsPerSecond", "clientRefs"),
)

HTTP_LOCAL_RATE_LIMIT_POLICY: Schema = obj(
    "Local rate limits for the Services it targets, in the shape of Linkerd's "
    "HTTPLocalRateLimitPolicy, counted by each node's waypoint for the requests it serves "
    "(a limit holds per waypoint, not across the cluster). A request over a limit is "
    "answered 429 with Retry-After (flow drop reason RATE_LIMITED). When two policies "
    "target one Service the older applies; the other reports Accepted=False, reason "
    "Conflicted.",
    {
        "spec": obj(
            "The limits wanted.",
            {
                "targetRefs": array("The Services the policy applies to; each has its own "
                                    "budget.", TARGET_REF, 1, 16),
                "total": _limit("The limit on all requests to a target."),
                "identity": _limit(
                    "The limit per caller identity (its ServiceAccount's SPIFFE ID); at most "
                    "total.requestsPerSecond when that is set."),
                "overrides": array("Rates for given ServiceAccounts.", OVERRIDE, hi=64),
                # Linkerd's: kept so that admission names it and says why it is refused
                # (targetRefs is required by the model, after that check).
                "targetRef": {
                    "description": "Linkerd's target (a Server). Not supported by Tulle: a "
                                   "policy that sets it is refused; use targetRefs naming "
                                   "Services.",
                    "type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        ),
        "status": obj(
            "What the controller reports about the policy.",
            {"ancestors": array("One entry per target.", ANCESTOR_STATUS, hi=16)},
        ),
    },
    ("spec",),
)
