"""The LoadBalancerIPPool schema (networking.tulle.io/v1alpha1, cluster-scoped): the fields
Tulle's model reads (``agent/model/convert_lbpool.py``) in the shape of Cilium's
CiliumLoadBalancerIPPool; our descriptions. Address syntax, IPv4-only and overlap rules are
the model's."""

from __future__ import annotations

from schema_parts import LABEL_SELECTOR, Schema, array, obj, string

GROUP = "networking.tulle.io"

BLOCK = obj(
    "A range of addresses: a cidr, or a start address with an optional stop (inclusive). "
    "A CIDR's first and last addresses are not given out (except for a /31 or /32).",
    {
        "cidr": string("An IPv4 CIDR, e.g. 10.240.0.240/28.", 1, 43),
        "start": string("The first address of the range.", 1, 39),
        "stop": string("The last address of the range; unset: start alone.", 1, 39),
    },
)

LOAD_BALANCER_IP_POOL: Schema = obj(
    "Addresses for LoadBalancer Services (no loadBalancerClass, or tulle.io/lb) and for "
    "Gateways of Tulle's GatewayClass. Each address is announced on the nodes' network by "
    "exactly one ready node (ARP, as MetalLB's L2 mode). IPv4 only.",
    {
        "spec": obj(
            "The addresses and who may have them.",
            {
                "blocks": array("The address ranges; no two may overlap.", BLOCK, 1, 1024),
                "serviceSelector": {
                    **LABEL_SELECTOR,
                    "description": "The Services and Gateways (by their labels) this pool "
                    "serves; unset: every one.",
                },
                "disabled": {
                    "description": "Give out no new addresses; those given stay.",
                    "type": "boolean",
                },
            },
            ("blocks",),
        ),
    },
    ("spec",),
)
