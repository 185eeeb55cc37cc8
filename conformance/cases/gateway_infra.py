"""GatewayInfrastructurePropagation (GEP-1762; upstream GatewayInfrastructure,
conformance/tests/gateway-infrastructure.go, v1.6.1): a Gateway with
``spec.infrastructure.labels`` and ``annotations`` is Accepted, and the ServiceAccounts, Pods
and Services labelled ``gateway.networking.k8s.io/gateway-name: <Gateway>`` in its namespace
(at least one of them must exist) carry every one of those labels and annotations.

Upstream checks exactly that: it lists the three kinds by that label, waits until one
exists, and compares the first of each kind found. Tulle's Gateways are served by the
per-node waypoints; the one object Tulle makes for each is its Service of type LoadBalancer
(``controlplane/gatewayservice``), which is what this finds."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from conformance.case import Case, CaseFailed
from conformance.cases.common import GATEWAY_API, INFRA, namespace
from conformance.lab import Lab, eventually

PROFILE = "GATEWAY-HTTP"
NAME = "gateway-with-infrastructure-metadata"
NAME_LABEL = "gateway.networking.k8s.io/gateway-name"  # v1.GatewayNameLabelKey
KINDS = ("serviceaccounts", "pods", "services")  # upstream's order
INFRASTRUCTURE = {"annotations": {"key1": "value1"}, "labels": {"key2": "value2"}}
GATEWAY = {
    "apiVersion": GATEWAY_API, "kind": "Gateway",
    "metadata": {"name": NAME, "namespace": INFRA},
    "spec": {"gatewayClassName": "tulle", "infrastructure": INFRASTRUCTURE,
             "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}]},
}


def propagation_problem(infrastructure: Mapping[str, Any],
                        found: Mapping[str, Sequence[Mapping[str, Any]]]) -> str | None:
    """What is wrong with the objects ``found`` (kind -> objects carrying the Gateway's
    name label), upstream's way: none at all, or the first of a kind lacking one of the
    infrastructure labels or annotations (extra ones are the implementation's own)."""
    if not any(found.values()):
        return (f"no ServiceAccount, Pod or Service in {INFRA} is labelled "
                f"{NAME_LABEL}={NAME}")
    for kind, objects in found.items():
        if not objects:
            continue
        meta = objects[0].get("metadata") or {}
        for field in ("labels", "annotations"):
            want = dict(infrastructure.get(field) or {})
            have = dict(meta.get(field) or {})
            missing = {k: v for k, v in want.items() if have.get(k) != v}
            if missing:
                return (f"{kind} {meta.get('name')}: {field} {have} lack the Gateway's "
                        f"infrastructure {field} {missing}")
    return None


def _labelled(lab: Lab, kind: str) -> list[dict[str, Any]]:
    out = lab.tulle("get", kind, "-n", INFRA, "-l", f"{NAME_LABEL}={NAME}", "-o", "json").stdout
    return list(json.loads(out)["items"])


def _accepted(lab: Lab) -> dict[str, Any]:
    named = [g for g in lab.get("gateways", INFRA) if g["metadata"]["name"] == NAME]
    if not named:
        raise CaseFailed(f"no Gateway {INFRA}/{NAME}")
    gateway = named[0]
    generation = gateway["metadata"].get("generation")
    for c in (gateway.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Accepted":
            if c.get("status") == "True" and c.get("observedGeneration") == generation:
                return gateway
            raise CaseFailed(f"Gateway {NAME} Accepted {c.get('status')} {c.get('reason')}")
    raise CaseFailed(f"Gateway {NAME} has no Accepted condition")


def _check(lab: Lab) -> None:
    gateway = eventually(lambda: _accepted(lab), timeout=45)
    infrastructure = gateway["spec"].get("infrastructure") or {}

    def something_found() -> dict[str, list[dict[str, Any]]]:
        found = {kind: _labelled(lab, kind) for kind in KINDS}
        if not any(found.values()):
            raise CaseFailed(str(propagation_problem(infrastructure, found)))
        return found

    problem = propagation_problem(infrastructure, eventually(something_found, timeout=15))
    if problem:
        raise CaseFailed(problem)


CASES = [
    Case("GatewayInfrastructure", PROFILE, ("Gateway", "GatewayInfrastructurePropagation"),
         (namespace(INFRA), GATEWAY), _check),
]
