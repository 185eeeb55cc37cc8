"""RBAC authorization, as Kubernetes' RBAC authorizer decides (a pure function of the request,
the user and the Roles and bindings).

A request is allowed when any rule of any Role or ClusterRole bound to the user (or to one of
its groups) matches it; ``system:masters`` may do everything, and every authenticated user may
read discovery, OpenAPI, version and health and ask what it may do (a cluster's
``system:discovery``, ``system:public-info-viewer`` and ``system:basic-user`` roles). Nothing
else is allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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


# -- escalation prevention -----------------------------------------------------------------
# Kubernetes lets a user write a Role (ClusterRole) only with rules it already holds in that
# namespace (cluster-wide), unless it may ``escalate`` that role; and a RoleBinding
# (ClusterRoleBinding) only to a role whose rules it holds there, unless it may ``bind`` it.
# Without this, anyone allowed to create Roles and RoleBindings could grant itself anything.

GROUP = "rbac.authorization.k8s.io"
_ROLE_PLURAL = {"Role": "roles", "ClusterRole": "clusterroles"}


def _breakdown(rule: Obj) -> list[dict[str, Any]]:
    """A rule as single-verb, single-resource (single-name, single-URL) rules."""
    verbs = list(rule.get("verbs") or [])
    urls = list(rule.get("nonResourceURLs") or [])
    out: list[dict[str, Any]] = [
        {"verbs": [v], "nonResourceURLs": [u]} for u in urls for v in verbs
    ]
    names = list(rule.get("resourceNames") or []) or [None]
    for group in rule.get("apiGroups") or []:
        for resource in rule.get("resources") or []:
            for verb in verbs:
                for name in names:
                    one = {"verbs": [verb], "apiGroups": [group], "resources": [resource]}
                    out.append(one if name is None else {**one, "resourceNames": [name]})
    return out


def _resource_covers(owned: list[str], wanted: str) -> bool:
    if "*" in owned or wanted in owned:
        return True
    head, _, sub = wanted.partition("/")
    return bool(sub) and (f"*/{sub}" in owned or f"{head}/*" in owned)


def _covers(owner: Obj, one: Obj) -> bool:
    """Whether ``owner`` allows everything the single-valued rule ``one`` does (a wildcard
    is covered only by a wildcard)."""
    if not _has(owner.get("verbs"), one["verbs"][0]):
        return False
    if "nonResourceURLs" in one:
        url = one["nonResourceURLs"][0]
        return any(
            u in ("*", url) or (u.endswith("*") and url.startswith(u[:-1]))
            for u in owner.get("nonResourceURLs") or []
        )
    if not _has(owner.get("apiGroups"), one["apiGroups"][0]):
        return False
    if not _resource_covers(list(owner.get("resources") or []), one["resources"][0]):
        return False
    names = owner.get("resourceNames") or []
    return not names or one.get("resourceNames", [None])[0] in names


MAX_PARTS = 100_000
"""A role's rules are checked verb by resource by name: more combinations than this are
refused (a few kilobytes of lists could otherwise multiply into billions)."""


def _size(rule: Obj) -> int:
    def n(key: str) -> int:
        values = rule.get(key)
        return len(values) if isinstance(values, list) else 0

    verbs = n("verbs")
    resources = n("apiGroups") * n("resources") * max(1, n("resourceNames"))
    return verbs * (resources + n("nonResourceURLs"))


def ungranted(rules: Iterable[Obj], held: list[Obj]) -> list[dict[str, Any]]:
    """The parts of ``rules`` that no rule in ``held`` covers."""
    rules = list(rules)
    if sum(_size(rule) for rule in rules) > MAX_PARTS:
        raise ValueError(f"the rules name more than {MAX_PARTS} verb/resource combinations")
    return [
        one for rule in rules for one in _breakdown(rule) if not any(_covers(h, one) for h in held)
    ]


def _describe(one: Obj) -> str:
    parts = [
        f"{label}:[{' '.join(_quoted(v) for v in one[key])}]"
        for key, label in (
            ("apiGroups", "APIGroups"),
            ("resources", "Resources"),
            ("resourceNames", "ResourceNames"),
            ("nonResourceURLs", "NonResourceURLs"),
            ("verbs", "Verbs"),
        )
        if key in one
    ]
    return "{" + ", ".join(parts) + "}"


def _quoted(value: Any) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def escalation(
    user: User, obj: Obj, rbac_objects: Iterable[Obj], may: Callable[[Attributes], bool]
) -> str | None:
    """Why writing the RBAC object ``obj`` would grant ``user`` more than it holds (the
    Forbidden message), or None when it may; ``may`` answers the escalate/bind checks."""
    kind, meta = obj.get("kind"), obj.get("metadata") or {}
    namespace = (meta.get("namespace") or "") if kind in ("Role", "RoleBinding") else ""
    objs = list(rbac_objects)
    if kind in _ROLE_PLURAL:
        plural = _ROLE_PLURAL[str(kind)]
        if may(
            Attributes("escalate", GROUP, plural, namespace=namespace, name=meta.get("name", ""))
        ):
            return None
        rules = list(obj.get("rules") or [])
    elif kind in ("RoleBinding", "ClusterRoleBinding"):
        ref = obj.get("roleRef") or {}
        plural = _ROLE_PLURAL.get(str(ref.get("kind")), "")
        ref_ns = namespace if ref.get("kind") == "Role" else ""
        if plural and may(
            Attributes("bind", GROUP, plural, namespace=namespace, name=str(ref.get("name", "")))
        ):
            return None
        role = next(
            (
                o
                for o in objs
                if o["kind"] == ref.get("kind")
                and o["metadata"].get("name") == ref.get("name")
                and (o["metadata"].get("namespace") or "") == ref_ns
            ),
            None,
        )
        if role is None:
            missing_role = f"{ref.get('kind')} {ref.get('name')!r}"
            return _forbidden(
                obj, user, f"is attempting to bind to {missing_role}, which does not exist"
            )
        rules = list(role.get("rules") or [])
    else:
        return None
    try:
        missing = ungranted(rules, applicable_rules(user, namespace, objs))
    except ValueError as err:
        return _forbidden(obj, user, f"cannot be checked for escalation: {err}")
    if not missing:
        return None
    listed = "\n".join(_describe(one) for one in missing)
    return _forbidden(
        obj, user, f"is attempting to grant RBAC permissions not currently held:\n{listed}"
    )


def _forbidden(obj: Obj, user: User, what: str) -> str:
    plural = {
        **_ROLE_PLURAL,
        "RoleBinding": "rolebindings",
        "ClusterRoleBinding": "clusterrolebindings",
    }
    name = (obj.get("metadata") or {}).get("name", "")
    groups = " ".join(_quoted(g) for g in user.groups)
    subject = f'{plural.get(str(obj.get("kind")), "")}.{GROUP} "{name}"'
    return f'{subject} is forbidden: user "{user.name}" (groups=[{groups}]) {what}'
