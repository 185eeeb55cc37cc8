"""What the API server serves (pure): resources from discovery documents, and which one a
user's text names. kubectl's rules: a kind, plural, singular or short name, case-insensitive,
optionally qualified by ``.group`` or ``.version.group`` ("deployments.apps",
"httproutes.v1.gateway.networking.k8s.io"); the core group first, then the groups in the
server's order. Custom resources are found the same way: nothing here lists kinds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.model.kinds import UnknownKindError, resolve_kind

# Groups a cluster serves only once their CustomResourceDefinitions are installed.
CRD_HINTS = {
    "gateway.networking.k8s.io": (
        "Gateway API kinds are served from CustomResourceDefinitions, and this cluster has "
        "none for it: install them (kubectl apply -f deploy/crds/gateway-api/; "
        "`tulle lab up` installs them in a lab)"
    ),
}


@dataclass(frozen=True, slots=True)
class ApiResource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified_kind(self) -> str:
        """kubectl's object prefix: "service", "deployment.apps"."""
        return f"{self.kind.lower()}.{self.group}" if self.group else self.kind.lower()

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        """The REST path; ``namespace`` None lists across namespaces."""
        parts = ["/api", self.version] if not self.group else ["/apis", self.group, self.version]
        if self.namespaced and namespace is not None:
            parts += ["namespaces", namespace]
        parts.append(self.plural)
        if name is not None:
            parts.append(name)
        return "/".join(parts)

    def named_by(self, text: str) -> bool:
        name, _, suffix = text.strip().lower().partition(".")
        names = {self.kind.lower(), self.plural, self.singular, *self.short_names} - {""}
        if name not in names:
            return False
        return (
            not suffix
            or suffix in (self.group, f"{self.version}.{self.group}")
            or (not self.group and suffix == self.version)
        )


def group_might_hold(group: str, text: str) -> bool:
    """Whether ``text`` could name a resource of ``group`` (saves fetching the others)."""
    _, _, suffix = text.strip().lower().partition(".")
    return not suffix or suffix == group or suffix.endswith("." + group)


def parse_resource_list(doc: Mapping[str, Any]) -> list[ApiResource]:
    """An ``APIResourceList`` (``/api/v1``, ``/apis/G/V``): its resources, without
    subresources (``pods/status``)."""
    group, _, version = str(doc.get("groupVersion", "")).rpartition("/")
    found = []
    for item in doc.get("resources") or []:
        name = str(item.get("name", ""))
        if not name or "/" in name:
            continue
        found.append(
            ApiResource(
                group=group,
                version=version,
                kind=str(item.get("kind", "")),
                plural=name,
                namespaced=bool(item.get("namespaced")),
                singular=str(item.get("singularName") or ""),
                short_names=tuple(item.get("shortNames") or ()),
                verbs=tuple(item.get("verbs") or ()),
            )
        )
    return found


def preferred_versions(doc: Mapping[str, Any]) -> list[str]:
    """An ``APIGroupList`` (``/apis``): each group's preferred "group/version", in order."""
    found = []
    for group in doc.get("groups") or []:
        preferred = (group.get("preferredVersion") or {}).get("groupVersion")
        versions = group.get("versions") or []
        if not preferred and versions:
            preferred = versions[0].get("groupVersion")
        if preferred:
            found.append(str(preferred))
    return found


def first_named(resources: Iterable[ApiResource], text: str) -> ApiResource | None:
    return next((r for r in resources if r.named_by(text)), None)


def from_crd(crd: Mapping[str, Any]) -> list[ApiResource]:
    """The resources a CustomResourceDefinition will serve once it is established (so an
    apply can hold a CRD and objects of its kinds)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    return [
        ApiResource(
            group=str(spec.get("group", "")),
            version=str(v.get("name", "")),
            kind=str(names.get("kind", "")),
            plural=str(names.get("plural", "")),
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            singular=str(names.get("singular") or ""),
            short_names=tuple(names.get("shortNames") or ()),
        )
        for v in spec.get("versions") or []
        if v.get("served", True)
    ]


def unserved(text: str, server: str) -> str:
    """The error for a resource name the server does not serve, as kubectl words it, with
    what to do when it is a kind Tulle knows that comes from a CRD (Gateway API's)."""
    message = f'the server doesn\'t have a resource type "{text}" ({server})'
    try:
        hint = CRD_HINTS.get(resolve_kind(text).group)
    except UnknownKindError:
        hint = None
    return f"{message}. {hint}" if hint else message
