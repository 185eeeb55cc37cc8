"""The resource table: every built-in kind the server serves, with the names discovery
publishes.

Kinds the typed model knows (``agent.model.kinds``) are admitted through ``model_admission``;
the others are stored as sent after a metadata check. The model's Gateway API kinds are not
built in: as on a cluster, they are served once their CustomResourceDefinitions are
(``crds.py``), and admitted against the CRD's schema, then by the model.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from agent.model.kinds import KINDS, KindInfo


@functools.lru_cache(maxsize=32)
def _loads(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(text)
    return loaded


VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class Resource:
    group: str  # "" for the core group
    versions: tuple[str, ...]  # the first is the preferred (and stored) version
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    modelled: bool = False  # admitted through the typed model
    verbs: tuple[str, ...] = VERBS  # ("create",) for reviews, which are answered, not stored
    custom: bool = False  # defined by a CustomResourceDefinition
    # CRDs: (name, type, jsonPath, priority) of each additionalPrinterColumn
    printer_columns: tuple[tuple[str, str, str, int], ...] = ()
    schema: str = ""  # CRDs: the storage version's openAPIV3Schema, as JSON

    def schema_dict(self) -> dict[str, Any] | None:
        """The schema (shared and cached: callers must not change it)."""
        return _loads(self.schema) if self.schema else None

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def builtin(self) -> bool:
        """Kubernetes' own types, for which strategic merge patch is defined (not a CRD's)."""
        return not self.custom

    def api_version(self, version: str | None = None) -> str:
        version = version or self.versions[0]
        return f"{self.group}/{version}" if self.group else version


_EXTRA = {
    # kind: (short names, categories, subresources)
    "Pod": (("po",), ("all",), ("status",)),
    "Service": (("svc",), ("all",), ("status",)),
    "Deployment": (("deploy",), ("all",), ("status", "scale")),
    "Namespace": (("ns",), (), ("status",)),
    "Node": (("no",), (), ("status",)),
    "Ingress": (("ing",), (), ("status",)),
}
# Groups whose kinds the model reads but a cluster serves from CustomResourceDefinitions.
CRD_GROUPS = frozenset({"gateway.networking.k8s.io", "security.tulle.io", "policy.tulle.io"})
CRD_MODELLED: dict[str, KindInfo] = {i.kind: i for i in KINDS if i.group in CRD_GROUPS}


def _modelled() -> list[Resource]:
    out = []
    for info in KINDS:
        if info.group in CRD_GROUPS:
            continue
        short, categories, subresources = _EXTRA.get(info.kind, (info.short_names, (), ()))
        versions = tuple(v.rpartition("/")[2] for v in info.api_versions)
        out.append(
            Resource(
                info.group,
                versions,
                info.kind,
                info.plural,
                info.namespaced,
                short or info.short_names,
                categories,
                subresources,
                modelled=True,
            )
        )
    return out


_RBAC = "rbac.authorization.k8s.io"
_AUTHZ = "authorization.k8s.io"
RESOURCES: tuple[Resource, ...] = (
    *_modelled(),  # ConfigMap among them (BackendTLSPolicy CA bundles)
    # Stored only, no controller acts on them: served because kubectl expects them (the
    # default prune allowlist of `apply --prune`, `get all`, `describe deployment`).
    Resource("", ("v1",), "Endpoints", "endpoints", short_names=("ep",)),
    Resource(
        "",
        ("v1",),
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        short_names=("pvc",),
        subresources=("status",),
    ),
    Resource(
        "",
        ("v1",),
        "PersistentVolume",
        "persistentvolumes",
        namespaced=False,
        short_names=("pv",),
        subresources=("status",),
    ),
    Resource(
        "",
        ("v1",),
        "ReplicationController",
        "replicationcontrollers",
        short_names=("rc",),
        categories=("all",),
        subresources=("status",),
    ),
    Resource(
        "apps",
        ("v1",),
        "ReplicaSet",
        "replicasets",
        short_names=("rs",),
        categories=("all",),
        subresources=("status",),
    ),
    Resource(
        "apps",
        ("v1",),
        "StatefulSet",
        "statefulsets",
        short_names=("sts",),
        categories=("all",),
        subresources=("status",),
    ),
    Resource(
        "apps",
        ("v1",),
        "DaemonSet",
        "daemonsets",
        short_names=("ds",),
        categories=("all",),
        subresources=("status",),
    ),
    Resource("batch", ("v1",), "Job", "jobs", categories=("all",), subresources=("status",)),
    Resource(
        "batch",
        ("v1",),
        "CronJob",
        "cronjobs",
        short_names=("cj",),
        categories=("all",),
        subresources=("status",),
    ),
    Resource(
        "",
        ("v1",),
        "ServiceAccount",
        "serviceaccounts",
        short_names=("sa",),
        subresources=("token",),
    ),
    Resource("", ("v1",), "Event", "events", short_names=("ev",)),
    # The same Events in the newer API's shape (events_view.py converts).
    Resource("events.k8s.io", ("v1",), "Event", "events", short_names=("ev",)),
    Resource("coordination.k8s.io", ("v1",), "Lease", "leases"),
    Resource(_RBAC, ("v1",), "ClusterRole", "clusterroles", namespaced=False),
    Resource(_RBAC, ("v1",), "ClusterRoleBinding", "clusterrolebindings", namespaced=False),
    Resource(_RBAC, ("v1",), "Role", "roles"),
    Resource(_RBAC, ("v1",), "RoleBinding", "rolebindings"),
    Resource(
        "apiextensions.k8s.io",
        ("v1",),
        "CustomResourceDefinition",
        "customresourcedefinitions",
        namespaced=False,
        short_names=("crd", "crds"),
        subresources=("status",),
    ),
    Resource(
        _AUTHZ,
        ("v1",),
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        namespaced=False,
        verbs=("create",),
    ),
    Resource(
        _AUTHZ,
        ("v1",),
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        namespaced=False,
        verbs=("create",),
    ),
    Resource(
        "authentication.k8s.io",
        ("v1",),
        "SelfSubjectReview",
        "selfsubjectreviews",
        namespaced=False,
        verbs=("create",),
    ),
    Resource(
        "authentication.k8s.io",
        ("v1",),
        "TokenReview",
        "tokenreviews",
        namespaced=False,
        verbs=("create",),
    ),
)


class Registry:
    """The resources served: the built-in table plus those CustomResourceDefinitions add."""

    def __init__(self, resources: tuple[Resource, ...]) -> None:
        self.resources = resources
        self._by_path = {(r.group, v, r.plural): r for r in resources for v in r.versions}

    def lookup(self, group: str, version: str, plural: str) -> Resource | None:
        return self._by_path.get((group, version, plural))

    def groups(self) -> dict[str, list[str]]:
        """Every group (core is "") with its versions, preferred first."""
        out: dict[str, list[str]] = {}
        for r in self.resources:
            versions = out.setdefault(r.group, [])
            for v in r.versions:
                if v not in versions:
                    versions.append(v)
        return out

    def in_group_version(self, group: str, version: str) -> list[Resource]:
        return [r for r in self.resources if r.group == group and version in r.versions]


BUILTIN = Registry(RESOURCES)


def lookup(group: str, version: str, plural: str) -> Resource | None:
    return BUILTIN.lookup(group, version, plural)
