"""lightkube resource classes for the kinds Tulle reads and writes, decoded as plain dicts.

Every kind, built-in or Gateway API, is a lightkube *generic* (dict-backed) resource made
from agent.model.kinds: lightkube builds the URL and the request, the informer decodes the
JSON into the Kubernetes-shaped dicts the model converter reads. No typed model is decoded
and thrown away (watch decoding cost at 100,000 endpoints), and the waypoint imports none of
lightkube's generated model modules (its memory budget). The classes are not registered in
lightkube's global registry, so they never clash with its typed built-ins in one process.
The one implementation for every client: the agent, the waypoint, the lab DNS and the lab's
controllers (``lab.kubeapi``).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from lightkube.core import resource as res
from lightkube.generic_resource import (
    GenericGlobalResource,
    GenericGlobalStatus,
    GenericNamespacedResource,
    GenericNamespacedStatus,
    create_api_info,
)

from agent.model.kinds import kind_info


@cache
def generic_resource(api_version: str, plural: str, kind: str, *, namespaced: bool) -> Any:
    """A resource class whose objects are dicts, with lightkube's default verbs (get, list,
    watch, create, replace, patch, delete) and ``.Status``, its status subresource."""
    group, _, version = api_version.rpartition("/")
    api = create_api_info(group, version, kind, plural)
    base, status_base = (
        (GenericNamespacedResource, GenericNamespacedStatus)
        if namespaced
        else (GenericGlobalResource, GenericGlobalStatus)
    )
    status_api = res.ApiInfo(
        resource=api.resource,
        parent=api.resource,
        plural=api.plural,
        verbs=["get", "patch", "put"],
        action="status",
    )
    status = type(f"{kind}Status", (status_base,), {"_api_info": status_api})
    return type(kind, (base,), {"_api_info": api, "Status": status, "__qualname__": kind})


def resource_for(kind: str) -> Any:
    """The resource class for a kind Tulle models (raises UnknownKindError)."""
    info = kind_info(kind)
    return generic_resource(info.api_version, info.plural, kind, namespaced=info.namespaced)


NodeStatus = resource_for("Node").Status
"""nodes/NAME/status: where a node agent reports its Ready condition."""


def api_version_of(resource: type) -> str:
    return str(res.api_info(resource).resource.api_version)


def kind_of(resource: type) -> str:
    return str(res.api_info(resource).resource.kind)
