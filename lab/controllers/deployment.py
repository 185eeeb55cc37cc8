"""Deployment controller (pure): the Pods a Deployment should own, and its status.

Pods are owned through ownerReferences and labelled with `pod-template-hash`, as the
ReplicaSet controller does; a template change replaces old Pods with new ones.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.model.apps import Deployment
from agent.model.convert import to_dict
from agent.model.core import Pod

TEMPLATE_HASH = "pod-template-hash"


@dataclass(frozen=True, slots=True)
class DeploymentPlan:
    create: tuple[dict[str, Any], ...] = ()
    delete: tuple[Pod, ...] = ()
    status: dict[str, Any] = field(default_factory=dict)


# The API server's generateName: the base cut to 58 characters, then the random suffix, so a
# long owner name still gives valid Pod names (a longer one is refused at every round).
MAX_GENERATED_BASE = 58


def generated_name(base: str, suffix: str) -> str:
    return base[:MAX_GENERATED_BASE] + suffix


def template_hash(deploy: Deployment) -> str:
    body = to_dict(deploy).get("spec", {}).get("template", {})
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]


def owned_by(pod: Pod, uid: str) -> bool:
    return any(ref.uid == uid and ref.controller for ref in pod.metadata.owner_references)


def is_ready(pod: Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def pod_for(deploy: Deployment, thash: str, suffix: str) -> dict[str, Any]:
    spec = to_dict(deploy)["spec"]["template"]
    meta = dict(spec.get("metadata") or {})
    labels = dict(meta.get("labels") or {})
    labels[TEMPLATE_HASH] = thash
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": generated_name(f"{deploy.metadata.name}-{thash}-", suffix),
            "namespace": deploy.metadata.namespace,
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": deploy.metadata.name,
                    "uid": deploy.metadata.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec.get("spec", {}),
    }


def _deletion_rank(pod: Pod) -> tuple[int, int, float]:
    # Like the ReplicaSet controller: unscheduled, then not ready, then newest go first.
    created = pod.metadata.creation_timestamp
    return (
        0 if not pod.spec.node_name else 1,
        0 if not is_ready(pod) else 1,
        -created.timestamp() if created else 0.0,
    )


def plan_deployment(
    deploy: Deployment,
    pods: Sequence[Pod],
    suffix: Callable[[], str] = lambda: secrets.token_hex(3)[:5],
) -> DeploymentPlan:
    thash = template_hash(deploy)
    owned = [p for p in pods if owned_by(p, deploy.metadata.uid)]
    current = [p for p in owned if p.metadata.labels.get(TEMPLATE_HASH) == thash]
    old = [p for p in owned if p.metadata.labels.get(TEMPLATE_HASH) != thash]
    want = deploy.spec.replicas
    surplus = sorted(current, key=_deletion_rank)[: max(0, len(current) - want)]
    create = tuple(pod_for(deploy, thash, suffix()) for _ in range(max(0, want - len(current))))
    # Replace old Pods only once the new ones are ready, so a rollout keeps serving.
    ready_new = sum(1 for p in current if is_ready(p))
    delete_old = old if ready_new >= min(want, len(current)) and len(current) >= want else []
    ready = sum(1 for p in owned if is_ready(p))
    status = {
        "observedGeneration": deploy.metadata.generation,
        "replicas": len(owned),
        "updatedReplicas": len(current),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "conditions": [
            {
                "type": "Available",
                "status": "True" if ready >= want else "False",
                "reason": "MinimumReplicasAvailable"
                if ready >= want
                else "MinimumReplicasUnavailable",
            }
        ],
    }
    return DeploymentPlan(create=create, delete=tuple(surplus) + tuple(delete_old), status=status)


def orphans(pods: Sequence[Pod], deployment_uids: set[str]) -> list[Pod]:
    """Pods whose owning Deployment is gone: garbage, as the GC controller would find."""
    return [
        p
        for p in pods
        if any(r.kind == "Deployment" and r.controller for r in p.metadata.owner_references)
        and not any(r.uid in deployment_uids for r in p.metadata.owner_references)
    ]
