"""lightkube resource classes for the kinds Tulle watches, decoded as plain dicts.

Every kind, built-in or Gateway API, is a lightkube *generic* (dict-backed) resource made
from agent.model.kinds: lightkube builds the URL and the request, the informer decodes the
JSON into the Kubernetes-shaped dicts the model converter reads. No typed model is decoded
and thrown away (watch decoding cost at 100,000 endpoints), and the waypoint imports none of
lightkube's generated model modules (its memory budget). The classes are not registered in
lightkube's global registry, so they never clash with its typed built-ins in one process.
"""

from __future__ import annotations

from functools import cache

from lightkube.core import resource as res
from lightkube.generic_resource import (
    GenericGlobalResource,
    GenericGlobalStatus,
    GenericNamespacedResource,
)

from agent.model.kinds import kind_info

WATCH_VERBS = ["list", "watch", "global_list", "global_watch"]
_NODE = res.ResourceDef("", "v1", "Node")


class NodeStatus(GenericGlobalStatus):
    """nodes/NAME/status: where a node agent reports its Ready condition (PATCH only)."""

    _api_info = res.ApiInfo(_NODE, "nodes", ["patch"], parent=_NODE, action="status")


@cache
def resource_for(kind: str) -> type[GenericNamespacedResource] | type[GenericGlobalResource]:
    """The list-and-watch resource class for ``kind`` (raises UnknownKindError)."""
    info = kind_info(kind)
    group, _, version = info.api_version.rpartition("/")
    base: type = GenericNamespacedResource if info.namespaced else GenericGlobalResource
    api = res.ApiInfo(res.ResourceDef(group, version, kind), info.plural, WATCH_VERBS)
    return type(kind, (base,), {"_api_info": api, "__qualname__": kind})


def api_version_of(resource: type) -> str:
    return str(res.api_info(resource).resource.api_version)


def kind_of(resource: type) -> str:
    return str(res.api_info(resource).resource.kind)
