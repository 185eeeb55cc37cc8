"""Reader for ListenerSet (v1), with the bounds and CEL rules of the Gateway API v1.6 CRD:
a parentRef to a Gateway, 1..64 listener entries with unique names and unique port,
protocol and hostname, each checked as a Gateway listener is."""

from __future__ import annotations

from agent.model.convert_gateway import check_listeners, read_listener, read_listener_status
from agent.model.convert_meta import read_conditions
from agent.model.gateway import GATEWAY_GROUP
from agent.model.listenerset import (
    ListenerSet,
    ListenerSetSpec,
    ListenerSetStatus,
    ParentGatewayReference,
)
from agent.model.meta import ObjectMeta
from agent.model.reader import REQUIRED, Reader
from agent.model.validation import dns1123_label, gateway_group, gateway_kind, object_name


def read_listener_set(r: Reader, metadata: ObjectMeta) -> ListenerSet:
    return ListenerSet(
        metadata=metadata,
        spec=r.obj("spec", _read_spec, REQUIRED),
        status=r.obj("status", _read_status, ListenerSetStatus()),
    )


def _read_spec(r: Reader) -> ListenerSetSpec:
    spec = ListenerSetSpec(
        parent_ref=r.obj("parentRef", _read_parent, REQUIRED),
        listeners=r.objects("listeners", read_listener, min_items=1, max_items=64),
    )
    check_listeners(r, spec.listeners)
    return spec


def _read_parent(r: Reader) -> ParentGatewayReference:
    return ParentGatewayReference(
        name=r.string("name", REQUIRED, check=object_name),
        group=r.string("group", GATEWAY_GROUP, check=gateway_group),
        kind=r.string("kind", "Gateway", check=gateway_kind),
        namespace=r.string("namespace", check=dns1123_label),
    )


def _read_status(r: Reader) -> ListenerSetStatus:
    return ListenerSetStatus(
        conditions=read_conditions(r),
        listeners=r.objects("listeners", read_listener_status, max_items=64),
    )
