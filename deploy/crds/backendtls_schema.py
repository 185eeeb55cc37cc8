"""The BackendTLSPolicy schema (gateway.networking.k8s.io/v1, Gateway API v1.4 standard
channel): every field Tulle's model reads (``agent/model/convert_backendtls.py``) with
upstream's structure, enums and bounds, and GEP-713's PolicyStatus; our descriptions. The
CEL rules (refs XOR wellKnownCACertificates, SAN members by type, sectionName on all or
none of one target's refs) are left to the lab's typed admission."""

from __future__ import annotations

from schema_parts import ATOMIC, Schema, array, conditions, obj, string

TARGET_REF = obj(
    "A Service of the policy's namespace; sectionName names one of its ports.",
    {
        "group": string('The API group: "" (core).', hi=253),
        "kind": string("Service.", 1, 63),
        "name": string("The Service's name.", 1, 253),
        "sectionName": string("The name of the Service port; unset: every port.", 1, 253),
    },
    ("group", "kind", "name"),
)

CA_REF = obj(
    "A ConfigMap of the policy's namespace holding a PEM CA bundle under the key ca.crt.",
    {
        "group": string('The API group: "" (core).', hi=253),
        "kind": string("ConfigMap.", 1, 63),
        "name": string("The ConfigMap's name.", 1, 253),
    },
    ("group", "kind", "name"),
)

SUBJECT_ALT_NAME = obj(
    "A name one of which the backend's certificate must carry.",
    {
        "type": string("Hostname or URI.", enum=["Hostname", "URI"]),
        "hostname": string("A DNS name (with type Hostname).", 1, 253),
        "uri": string("An absolute URI such as a SPIFFE ID (with type URI).", 1, 253),
    },
    ("type",),
)

VALIDATION = obj(
    "How the backend's certificate is checked: caCertificateRefs or wellKnownCACertificates, "
    "one of them.",
    {
        "caCertificateRefs": array("The CA bundles trusted.", CA_REF, hi=8, **ATOMIC),
        "wellKnownCACertificates": string("System: the system's trust store.", enum=["System"]),
        "hostname": string(
            "The SNI; also the name the certificate must match unless subjectAltNames is set.",
            1, 253,
        ),
        "subjectAltNames": array(
            "The certificate must carry one of them (hostname then only the SNI).",
            SUBJECT_ALT_NAME, hi=5, **ATOMIC,
        ),
    },
    ("hostname",),
)

ANCESTOR_STATUS = obj(
    "The policy's state for one ancestor (GEP-713 PolicyAncestorStatus): a Gateway whose "
    "routes reach a targeted Service, or the Service itself for mesh traffic.",
    {
        "ancestorRef": obj("The ancestor.", {
            "group": string("The API group.", hi=253),
            "kind": string("The kind.", 1, 63),
            "name": string("The name.", 1, 253),
            "namespace": string("The namespace.", 1, 63),
            "sectionName": string("The section.", 1, 253),
        }, ("name",)),
        "controllerName": string("The controller that wrote this entry.", 1, 253),
        "conditions": conditions(
            "Accepted (Accepted; Conflicted; NoValidCACertificate; Invalid) and ResolvedRefs "
            "(ResolvedRefs; InvalidCACertificateRef; InvalidKind)."),
    },
    ("ancestorRef", "controllerName"),
)

BACKEND_TLS_POLICY: Schema = obj(
    "How a Gateway (here: each node's waypoint) connects over TLS to the Services it targets.",
    {
        "spec": obj(
            "The policy wanted.",
            {
                "targetRefs": array("The Services (ports) the policy applies to.", TARGET_REF,
                                    1, 16, **ATOMIC),
                "validation": VALIDATION,
                "options": {
                    "description": "Implementation-specific TLS options (none are read).",
                    "type": "object",
                    "maxProperties": 16,
                    "additionalProperties": {"type": "string", "maxLength": 4096},
                },
            },
            ("targetRefs", "validation"),
        ),
        "status": obj(
            "What the controllers report about the policy.",
            {"ancestors": array("One entry per ancestor.", ANCESTOR_STATUS, hi=16, **ATOMIC)},
        ),
    },
    ("spec",),
)
