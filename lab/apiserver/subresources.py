"""Answers that are not stored objects: a Deployment's ``scale`` and the self-reviews behind
``kubectl auth can-i``.

Reviews are answered by RBAC (``rbac.py``), for the user that asks.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from lab.apiserver import patch as patches
from lab.apiserver.errors import ApiError, bad_request
from lab.apiserver.rbac import (
    MASTERS,
    Attributes,
    User,
    allowed,
    applicable_rules,
)
from lab.apiserver.routing import Target


def scale_of(deployment: dict[str, Any]) -> dict[str, Any]:
    meta = deployment["metadata"]
    labels = deployment.get("spec", {}).get("selector", {}).get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": deployment.get("spec", {}).get("replicas", 1)},
        "status": {
            "replicas": deployment.get("status", {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        },
    }


def scaled(deployment: dict[str, Any], scale: Any) -> dict[str, Any]:
    """The Deployment with the replicas of ``scale``; raises 400/409 on a bad or stale Scale."""
    if not isinstance(scale, dict):
        raise bad_request("the body must be a Scale object")
    replicas = (scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise ApiError(
            422,
            f'Scale.autoscaling "{deployment["metadata"]["name"]}" is invalid: spec.replicas: '
            f"Invalid value: {replicas!r}: must be a non-negative integer",
        )
    out = copy.deepcopy(deployment)
    out["spec"]["replicas"] = replicas
    rv = (scale.get("metadata") or {}).get("resourceVersion")
    out["metadata"]["resourceVersion"] = rv or deployment["metadata"]["resourceVersion"]
    return out


def patched_scale(deployment: dict[str, Any], body: Any, content_type: str) -> dict[str, Any]:
    scale = scale_of(deployment)
    try:
        if content_type == "application/json-patch+json":
            return patches.json_patch(scale, body)
        if not isinstance(body, dict):
            raise patches.PatchError("the patch must be a JSON object")
        return patches.merge_patch(scale, body)
    except patches.PatchError as err:
        raise bad_request(str(err)) from None
    except patches.PatchConflict as err:
        raise ApiError(422, str(err)) from None


def review(
    target: Target, body: Any, user: User, rbac_objects: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """A SelfSubjectAccessReview (may I do this?) or SelfSubjectRulesReview (what may I do in
    this namespace?), answered by the same RBAC rules that authorize requests; a
    SelfSubjectReview (who am I?) by the user itself."""
    spec = body.get("spec") if isinstance(body, dict) else None
    spec = spec if isinstance(spec, dict) else {}
    kind = target.resource.kind
    out: dict[str, Any] = {"kind": kind, "apiVersion": target.api_version, "metadata": {}}
    out["spec"] = spec
    objs = list(rbac_objects)
    if kind == "SelfSubjectReview":  # kubectl auth whoami
        info = {"username": user.name, "groups": list(user.groups)}
        return {**{k: v for k, v in out.items() if k != "spec"}, "status": {"userInfo": info}}
    if kind == "SelfSubjectAccessReview":
        attrs = _review_attributes(spec)
        # A denial carries no reason, as RBAC's does not: kubectl prints a bare "no".
        out["status"] = {"allowed": allowed(user, attrs, objs)}
        return out
    if MASTERS in user.groups:
        rules: list[Mapping[str, Any]] = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
        non_resource: list[Mapping[str, Any]] = [{"verbs": ["*"], "nonResourceURLs": ["*"]}]
    else:
        granted = applicable_rules(user, str(spec.get("namespace") or ""), objs)
        rules = [r for r in granted if r.get("resources")]
        non_resource = [r for r in granted if r.get("nonResourceURLs")]
    out["status"] = {"resourceRules": rules, "nonResourceRules": non_resource, "incomplete": False}
    return out


def _review_attributes(spec: Mapping[str, Any]) -> Attributes:
    res = spec.get("resourceAttributes")
    if isinstance(res, Mapping):
        return Attributes(
            str(res.get("verb") or ""),
            str(res.get("group") or ""),
            str(res.get("resource") or ""),
            str(res.get("subresource") or ""),
            str(res.get("namespace") or ""),
            str(res.get("name") or ""),
        )
    non = spec.get("nonResourceAttributes")
    if isinstance(non, Mapping):
        return Attributes(str(non.get("verb") or ""), path=str(non.get("path") or ""))
    raise bad_request("spec.resourceAttributes or spec.nonResourceAttributes is required")
