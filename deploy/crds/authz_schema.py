"""The AuthorizationPolicy schema (security.tulle.io/v1): Istio's security/v1 shape, every
field Tulle's model reads (``agent/model/convert_authz.py``), our descriptions.

Istio fields Tulle does not enforce (action CUSTOM, provider, requestPrincipals, targetRef)
stay in the schema, described as refused: a structural schema would prune them, and a policy
without them would match more or less than written. The typed admission refuses them by
field. Istio's CEL rule "only one of selector or targetRefs" is a CEL rule here, as in
Istio's CRD; the lab's typed admission (which does not run CEL) enforces the same."""

from __future__ import annotations

from peerauth_schema import SELECTOR
from schema_parts import Schema, array, conditions, enum, obj, string

ACTIONS = ["ALLOW", "DENY", "AUDIT", "CUSTOM"]
REFUSED = "Not supported by Tulle: a policy that sets it is refused."


def _strings(desc: str) -> Schema:
    return array(desc, string("One value.", 1, 1024), hi=1024)


def _pair(field: str, what: str) -> dict[str, Schema]:
    """The field and its not-form."""
    not_field = "not" + field[0].upper() + field[1:]
    return {
        field: _strings(f"{what}; any one matches. Unset: any."),
        not_field: _strings(f"{what} that must not match (a negative match)."),
    }


MATCH = ('Exact ("a"), prefix ("a*"), suffix ("*a"), or "*" for any non-empty value.')

SOURCE = obj(
    "Where a request comes from. Fields AND together; at least one must be set.",
    {
        **_pair("principals", "Peer SPIFFE IDs without spiffe:// "
                "(cluster.local/ns/NAMESPACE/sa/ACCOUNT). " + MATCH),
        **_pair("namespaces", "The peer's namespace. " + MATCH),
        **_pair("serviceAccounts", "The peer's ServiceAccount, as NAMESPACE/NAME; not with "
                "principals or namespaces"),
        **_pair("ipBlocks", "The peer address: IPs or CIDRs"),
        **{k: _strings(REFUSED) for k in ("requestPrincipals", "notRequestPrincipals")},
        **_pair("remoteIpBlocks", "The original client address; Tulle trusts no proxy "
                "header, so this is the peer address: IPs or CIDRs"),
    },
)

OPERATION = obj(
    "What a request asks for. Fields AND together; at least one must be set.",
    {
        **_pair("hosts", "The request's host (case-insensitive). " + MATCH),
        **_pair("ports", "The destination workload port, as a string (\"8080\")"),
        **_pair("methods", "The HTTP method. " + MATCH),
        **_pair("paths", "The request path without query. " + MATCH),
    },
)

CONDITION = obj(
    "A further condition: request.headers[NAME], source.ip, remote.ip, source.namespace, "
    "source.principal, destination.ip, destination.port or connection.sni.",
    {
        "key": string("The attribute.", 1, 1024),
        "values": _strings("Values any one of which matches. " + MATCH),
        "notValues": _strings("Values none of which may match."),
    },
    ("key",),
)

RULE = obj(
    "A request matches when it matches one from, one to and every when; unset matches any.",
    {
        "from": array("Sources.", obj("One source.", {"source": SOURCE}), hi=512),
        "to": array("Operations.", obj("One operation.", {"operation": OPERATION}), hi=512),
        "when": array("Conditions.", CONDITION, hi=512),
    },
)

TARGET_REF = obj(
    "A Service (group \"\") or Gateway (gateway.networking.k8s.io) of this namespace.",
    {
        "group": string("The target's API group.", hi=253),
        "kind": string("Service or Gateway.", 1, 63),
        "name": string("The target's name.", 1, 253),
    },
    ("kind", "name"),
)

AUTHORIZATION_POLICY: Schema = obj(
    "Who may call a workload and how, in the shape of Istio's AuthorizationPolicy. DENY "
    "policies win; then, where any ALLOW policy applies, a request must match one; AUDIT "
    "only records. A policy in tulle-system without selector applies to the whole mesh.",
    {
        "spec": obj(
            "The policy.",
            {
                "selector": SELECTOR,
                "targetRefs": array("Services or Gateways the policy applies to, instead of "
                                    "a selector.", TARGET_REF, hi=16),
                "targetRef": obj(REFUSED + " (deprecated in Istio: use targetRefs)",
                                 TARGET_REF["properties"]),
                "action": enum("ALLOW (default), DENY or AUDIT (CUSTOM is refused).", ACTIONS),
                "provider": obj(REFUSED, {"name": string("An extension provider.")}),
                "rules": array("Rules; none: an ALLOW policy allows nothing, a DENY or "
                               "AUDIT policy matches nothing.", RULE, hi=512),
            },
            **{
                "x-kubernetes-validations": [
                    {
                        "rule": "(has(self.selector) ? 1 : 0) + "
                        "(has(self.targetRefs) ? 1 : 0) <= 1",
                        "message": "only one of selector or targetRefs can be set",
                    }
                ]
            },
        ),
        "status": obj(
            "What Tulle made of the policy (GEP-713's policy status).",
            {"conditions": conditions("Accepted, or why not.")},
        ),
    },
)

ACTION_COLUMN = {"jsonPath": ".spec.action", "name": "Action", "type": "string"}
