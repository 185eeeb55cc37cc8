"""The PeerAuthentication schema (security.tulle.io/v1): Istio's security/v1 shape, every
field Tulle's model reads (``agent/model/convert_peerauth.py``), our descriptions.

Istio's rules that a structural schema cannot state are CEL rules here, as in Istio's CRD, so
that any cluster enforces them; the lab's typed admission enforces the same (its API server
does not run CEL): portLevelMtls needs a selector with labels, and its keys are ports."""

from __future__ import annotations

from schema_parts import Schema, enum, obj

GROUP = "security.tulle.io"
MODES = ["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]


def _cel(rule: str, message: str) -> dict[str, list[dict[str, str]]]:
    return {"x-kubernetes-validations": [{"rule": rule, "message": message}]}


MUTUAL_TLS = obj(
    "Mutual TLS settings.",
    {
        "mode": enum(
            "What the workload accepts: STRICT (mTLS only), PERMISSIVE (mTLS and plaintext), "
            "DISABLE (plaintext only) or UNSET (inherit from the policy a level up: the "
            "namespace's, then the mesh's in tulle-system; PERMISSIVE when none sets one).",
            MODES,
        )
    },
)

SELECTOR = obj(
    "The workloads (pods of this namespace) the policy applies to; the whole namespace when "
    "unset or empty, the whole mesh for a policy in tulle-system without one.",
    {
        "matchLabels": {
            "description": "Labels a pod must all carry, with these values.",
            "type": "object",
            "maxProperties": 4096,
            "additionalProperties": {"type": "string", "maxLength": 63},
            **_cel("self.all(key, key.size() != 0 && !key.contains('*'))", "invalid label key"),
        }
    },
)

PORT_LEVEL = {
    "description": "Modes for single ports of the selected workloads, by the pod's port "
    "number (not a Service's); they win over mtls for that port. Needs a selector.",
    "type": "object",
    "additionalProperties": MUTUAL_TLS,
    **_cel("self.all(key, 0 < int(key) && int(key) <= 65535)", "port must be 1-65535"),
}

PEER_AUTHENTICATION: Schema = obj(
    "Which mutual-TLS mode workloads accept, in the shape of Istio's PeerAuthentication. A "
    "workload policy (with a selector) wins over its namespace's policy, which wins over the "
    "mesh policy (tulle-system); of several, the oldest. Applies only to pods of namespaces "
    "labelled tulle.io/mtls=true: other pods keep the kernel's plaintext path.",
    {
        "spec": obj(
            "The mode wanted.",
            {"selector": SELECTOR, "mtls": MUTUAL_TLS, "portLevelMtls": PORT_LEVEL},
            **_cel(
                "!has(self.portLevelMtls) || (has(self.selector) && "
                "has(self.selector.matchLabels) && self.selector.matchLabels.size() > 0)",
                "portLevelMtls requires spec.selector with matchLabels",
            ),
        ),
    },
)

MODE_COLUMN = {"jsonPath": ".spec.mtls.mode", "name": "Mode", "type": "string"}
