"""Hubble's policy attribution fields: ``ingress_allowed_by``, ``egress_allowed_by``,
``ingress_denied_by`` and ``egress_denied_by``, lists of ``flow.Policy``
(``{name, namespace, labels, revision, kind}``), and the compact printer's
``--print-policy-names`` suffix (" BY name (Kind), …", as Hubble writes it)."""

from __future__ import annotations

from typing import Any

from agent.flows.flow import Flow, Policy

FIELDS = ("egress_allowed_by", "ingress_allowed_by", "egress_denied_by", "ingress_denied_by")
"""The Flow attributes and JSON keys (Hubble's names), in Hubble's order."""

KIND = "NetworkPolicy"


def network_policy(key: str) -> Policy:
    """The Policy of a Kubernetes NetworkPolicy "namespace/name", with Cilium's labels."""
    namespace, _, name = key.rpartition("/")
    labels = (
        f"k8s:io.cilium.k8s.policy.derived-from={KIND}",
        f"k8s:io.cilium.k8s.policy.name={name}",
        f"k8s:io.cilium.k8s.policy.namespace={namespace}",
    )
    return Policy(name=name, namespace=namespace, labels=labels, kind=KIND)


def authorization_policy(key: str) -> Policy:
    """The Policy of a Tulle AuthorizationPolicy "namespace/name" (the waypoint's denials)."""
    namespace, _, name = key.rpartition("/")
    return Policy(name=name, namespace=namespace, kind="AuthorizationPolicy")


def policy_to_json(p: Policy) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("name", "namespace"):
        if getattr(p, name):
            out[name] = getattr(p, name)
    if p.labels:
        out["labels"] = list(p.labels)
    if p.revision:
        out["revision"] = str(p.revision)  # uint64: a string in protobuf JSON
    if p.kind:
        out["kind"] = p.kind
    return out


def policies_to_json(flow: Flow) -> dict[str, Any]:
    return {
        field: [policy_to_json(p) for p in getattr(flow, field)]
        for field in FIELDS
        if getattr(flow, field)
    }


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def policies_from_json(data: dict[str, Any]) -> dict[str, tuple[Policy, ...]]:
    """The four fields of a flow's JSON (Hubble's or ours); malformed entries are skipped."""
    out: dict[str, tuple[Policy, ...]] = {}
    for field in FIELDS:
        items = data.get(field)
        if not isinstance(items, list):
            continue
        out[field] = tuple(
            Policy(
                name=str(item.get("name", "")),
                namespace=str(item.get("namespace", "")),
                labels=tuple(str(label) for label in item.get("labels") or ()),
                revision=_int(item.get("revision")),
                kind=str(item.get("kind", "")),
            )
            for item in items
            if isinstance(item, dict)
        )
    return out


def policy_names_suffix(flow: Flow) -> str:
    """" BY name (Kind), …" for the policies behind the flow's verdict in its direction
    (allowed ones for a forwarded flow, denying ones for a dropped one, auditing ones for an
    audited one: Cilium puts those in ``*_denied_by`` too); "" when none.
    A flow without a direction (the waypoint's L7 flows, judged on both sides) names the
    egress side's policies, then the ingress side's not named already."""
    direction = str(flow.traffic_direction)
    verdict = "denied" if str(flow.verdict) in ("DROPPED", "ERROR", "AUDIT") else "allowed"
    sides = {"INGRESS": ("ingress",), "EGRESS": ("egress",)}.get(direction,
                                                                   ("egress", "ingress"))
    policies = dict.fromkeys(p for side in sides for p in getattr(flow, f"{side}_{verdict}_by"))
    named = [f"{p.name} ({p.kind})" for p in policies if p.name and p.kind]
    return " BY " + ", ".join(named) if named else ""
