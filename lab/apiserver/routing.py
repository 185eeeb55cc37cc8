"""From a URL path to what it names: a discovery document or a resource target."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lab.apiserver.errors import NOT_FOUND, ApiError, not_found
from lab.apiserver.resources import BUILTIN, Registry, Resource

# Boolean query parameters parse as Go's strconv.ParseBool does in kube-apiserver (clients
# send "true", "1" or, like kubernetes-asyncio, "True").
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})


def query_flag(query: Mapping[str, str], name: str) -> bool:
    return query.get(name) in _TRUE


@dataclass(frozen=True, slots=True)
class Target:
    """A resource collection, an object, or an object's subresource."""

    resource: Resource
    version: str
    namespace: str | None  # None: all namespaces (or a cluster-scoped kind)
    name: str | None = None
    subresource: str | None = None

    @property
    def api_version(self) -> str:
        return self.resource.api_version(self.version)


@dataclass(frozen=True, slots=True)
class Discovery:
    """A discovery path: "/api", "/apis", "/apis/GROUP", "/api/v1", "/apis/GROUP/VERSION"."""

    kind: str  # "versions", "groups", "group", "resources"
    group: str = ""
    version: str = ""


def route(path: str, registry: Registry = BUILTIN) -> Target | Discovery:
    parts = [p for p in path.split("/") if p]
    if parts == ["api"]:
        return Discovery("versions")
    if parts == ["apis"]:
        return Discovery("groups")
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 2:
        group = parts[1]
        if group not in registry.groups():
            raise ApiError(404, NOT_FOUND)
        if len(parts) == 2:
            return Discovery("group", group)
        version, rest = parts[2], parts[3:]
    else:
        raise ApiError(404, NOT_FOUND)
    if version not in registry.groups().get(group, []):
        raise ApiError(404, NOT_FOUND)
    if not rest:
        return Discovery("resources", group, version)
    return _target(registry, group, version, rest, path)


def _target(registry: Registry, group: str, version: str, rest: list[str], path: str) -> Target:
    namespace: str | None = None
    # /namespaces/NS/RESOURCE/... but not /namespaces/NAME[/status] (the Namespace itself).
    if (
        rest[0] == "namespaces"
        and group == ""
        and len(rest) >= 3
        and rest[2]
        not in (
            "status",
            "finalize",
        )
    ):
        namespace, rest = rest[1], rest[2:]
    elif rest[0] == "namespaces" and group != "" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource = registry.lookup(group, version, rest[0])
    if resource is None or len(rest) > 3:
        raise ApiError(404, NOT_FOUND)
    if namespace is not None and not resource.namespaced:
        raise ApiError(404, NOT_FOUND)
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and sub not in resource.subresources:
        raise not_found(f"{resource.plural}/{sub}", name or "", group)
    if resource.namespaced and name is not None and namespace is None:
        raise ApiError(404, NOT_FOUND)
    return Target(resource, version, namespace, name, sub)
