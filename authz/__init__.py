"""AuthorizationPolicy semantics, pure and sans-IO (``authz/README.md``): which policies apply
to a destination (``applies``), the decision for one request (``evaluate``, and
``compiled``: the same, compiled once per policy change for the waypoint), Istio's value
matching (``match``, ``fastmatch``). The waypoint enforces it; the agent reads ``needs_l7``
to steer."""

from authz.applies import ROOT_NAMESPACE, Destination, applicable, selects_pod, targets
from authz.compiled import CompiledPolicies, compile_policies
from authz.evaluate import Verdict, evaluate, key_of, needs_l7, rule_needs_l7
from authz.request import Peer, Request
from authz.steer import kernel_refusal, steered_services

__all__ = [
    "CompiledPolicies",
    "ROOT_NAMESPACE",
    "Destination",
    "Peer",
    "Request",
    "Verdict",
    "applicable",
    "compile_policies",
    "evaluate",
    "kernel_refusal",
    "key_of",
    "needs_l7",
    "rule_needs_l7",
    "selects_pod",
    "steered_services",
    "targets",
]
