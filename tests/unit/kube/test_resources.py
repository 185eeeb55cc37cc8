"""One generic-resource implementation for every client: the agent's, the waypoint's and
the lab controller's classes are the same, with the verbs each of them uses."""

from __future__ import annotations

import pytest
from lightkube.core import resource as res

from agent.kube.resources import NodeStatus, generic_resource, resource_for
from agent.model.kinds import UnknownKindError, kind_info
from lab import kubeapi

KINDS = ["Namespace", "Node", "Pod", "Service", "EndpointSlice", "Deployment",
         "NetworkPolicy", "Secret", "HTTPRoute", "Gateway", "GatewayClass", "ReferenceGrant"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_lab_uses_the_agents_class(kind: str) -> None:
    cls = resource_for(kind)
    assert kubeapi.resource(kind) is cls
    info = res.api_info(cls)
    assert info.resource.kind == kind
    assert info.plural == kind_info(kind).plural
    assert info.resource.api_version == kind_info(kind).api_version
    # list and watch for the informers, writes for the lab controller, status for both.
    assert {"list", "watch", "global_list", "global_watch", "post", "put", "delete"} <= set(
        info.verbs
    )
    status = res.api_info(cls.Status)
    assert status.action == "status" and "patch" in status.verbs


def test_namespaced_and_cluster_scoped_kinds_differ() -> None:
    assert issubclass(resource_for("Pod"), res.NamespacedResource)
    assert issubclass(resource_for("Node"), res.GlobalResource)


def test_the_node_agent_patches_nodes_status() -> None:
    info = res.api_info(NodeStatus)
    assert (info.plural, info.action, info.parent.kind) == ("nodes", "status", "Node")
    assert "patch" in info.verbs


def test_an_unmodelled_kind_is_the_labs_own_entry() -> None:
    with pytest.raises(UnknownKindError):
        resource_for("Event")
    event = kubeapi.resource("Event")
    assert event is generic_resource("v1", "events", "Event", namespaced=True)
    assert res.api_info(event).plural == "events"
