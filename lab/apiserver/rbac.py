"""RBAC authorization, as Kubernetes' RBAC authorizer decides (a pure function of the request,
the user and the Roles and bindings).

A request is allowed when any rule of any Role or ClusterRole bound to the user (or to one of
its groups) matches it; ``system:masters`` may do everything, and every authenticated user may
read discovery, OpenAPI, version and health and ask what it may do (a cluster's
``system:discovery``, ``system:public-info-viewer`` and ``system:basic-user`` roles). Nothing
else is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MASTERS = "system:masters"
_SELF_REVIEWS = {
    "authorization.k8s.io": ("selfsubjectaccessreviews", "selfsubjectrulesreviews"),
    "authentication.k8s.io": ("selfsubjectreviews",),
}
_PUBLIC_PREFIXES = ("/api", "/apis", "/openapi", "/version", "/healthz", "/livez", "/readyz")


@dataclass(frozen=True, slots=True)
class User:
    name: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a request does: a resource request (``resource`` set) or a non-resource path."""

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)


Obj = Mapping[str, Any]


def _subject_matches(subject: Obj, user: User, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return name == user.name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_namespace
        return user.name == f"system:serviceaccount:{ns}:{name}"
    return False


def _has(values: Iterable[str] | None, wanted: str) -> bool:
    values = list(values or [])
    return "*" in values or wanted in values


def rule_allows(rule: Obj, attrs: Attributes) -> bool:
    if not _has(rule.get("verbs"), attrs.verb):
        return False
    if not attrs.is_resource:
        urls = rule.get("nonResourceURLs") or []
        return any(
            u == attrs.path or (u.endswith("*") and attrs.path.startswith(u[:-1])) for u in urls
        )
    if not _has(rule.get("apiGroups"), attrs.group):
        return False
    wanted = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    resources = rule.get("resources") or []
    if not any(
        r in ("*", wanted) or (attrs.subresource and r == f"*/{attrs.subresource}")
        for r in resources
    ):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


def _rules_of(ref: Obj, namespace: str, roles: Mapping[tuple[str, str, str], Obj]) -> list[Obj]:
    kind, name = ref.get("kind"), ref.get("name", "")
    role = roles.get((str(kind), namespace if kind == "Role" else "", str(name)))
    return list(role.get("rules") or []) if role else []


def applicable_rules(user: User, namespace: str, rbac_objects: Iterable[Obj]) -> list[Obj]:
    """Every rule granted to ``user`` for requests in ``namespace`` ("" for cluster scope)."""
    objs = list(rbac_objects)
    roles = {
        (o["kind"], o["metadata"].get("namespace") or "", o["metadata"]["name"]): o
        for o in objs
        if o["kind"] in ("Role", "ClusterRole")
    }
    rules: list[Obj] = []
    for binding in objs:
        kind, meta = binding["kind"], binding["metadata"]
        if kind == "RoleBinding" and meta.get("namespace") != namespace:
            continue
        if kind not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        bound_ns = meta.get("namespace") or ""
        if any(_subject_matches(s, user, bound_ns) for s in binding.get("subjects") or []):
            rules += _rules_of(binding.get("roleRef") or {}, bound_ns, roles)
    return rules


def allowed(user: User, attrs: Attributes, rbac_objects: Iterable[Obj]) -> bool:
    if MASTERS in user.groups:
        return True
    if not attrs.is_resource and attrs.verb == "get" and attrs.path.startswith(_PUBLIC_PREFIXES):
        return True
    if attrs.resource in _SELF_REVIEWS.get(attrs.group, ()):
        return attrs.verb == "create"  # system:basic-user: anyone may ask what they may do
    return any(rule_allows(r, attrs) for r in applicable_rules(user, attrs.namespace, rbac_objects))


def forbidden_message(user: User, attrs: Attributes) -> str:
    if not attrs.is_resource:
        return f'forbidden: User "{user.name}" cannot {attrs.verb} path "{attrs.path}"'
    full = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    subject = f"{attrs.resource}.{attrs.group}" if attrs.group else attrs.resource
    if attrs.name:
        subject += f' "{attrs.name}"'
    scope = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    return (
        f'{subject} is forbidden: User "{user.name}" cannot {attrs.verb} resource "{full}" '
        f'in API group "{attrs.group}" {scope}'
    )
