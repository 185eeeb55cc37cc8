"""The wire types of the fast list decode (agent.model.convert_fast): Services and
EndpointSlices as the API server sends them, only the fields the model reads, decoded by
msgspec in C. Unknown fields (managedFields, status, clusterIPs) are skipped unread; a
field of the wrong JSON type fails the page's decode, and the general path reads it."""

from __future__ import annotations

from typing import Any

from msgspec import Struct, field


class WireOwnerReference(Struct, rename="camel"):
    api_version: str | None = None
    kind: str | None = None
    name: str | None = None
    uid: str | None = None
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class WireMeta(Struct, rename="camel"):
    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    owner_references: list[WireOwnerReference] | None = None


class WireServicePort(Struct, rename="camel"):
    port: int | None = None
    target_port: int | str | None = None
    name: str | None = None
    protocol: str | None = None
    app_protocol: str | None = None
    node_port: int | None = None


class WireServiceSpec(Struct, rename={"cluster_ip": "clusterIP"}):
    type: str | None = None
    cluster_ip: str | None = None
    ports: list[WireServicePort] | None = None
    selector: dict[str, str] | None = None
    sessionAffinity: str | None = None  # noqa: N815 - the JSON name
    sessionAffinityConfig: Any = None  # noqa: N815 - any shape: the general path reads it
    # Fields of externally reachable Services: any value sends the object to the general path.
    externalTrafficPolicy: Any = None  # noqa: N815 - the JSON name
    healthCheckNodePort: Any = None  # noqa: N815 - the JSON name
    loadBalancerClass: Any = None  # noqa: N815 - the JSON name
    loadBalancerIP: Any = None  # noqa: N815 - the JSON name


class WireService(Struct):
    metadata: WireMeta | None = None
    spec: WireServiceSpec | None = None
    status: Any = None  # read by the general path when it holds load-balancer addresses


class WireConditions(Struct):
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


class WireObjectReference(Struct):
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    uid: str | None = None


class WireEndpoint(Struct, rename="camel"):
    addresses: list[str] | None = None
    # convert_fast puts the shared model value here before converting to the model.
    conditions: WireConditions | None = None
    hostname: str | None = None
    node_name: str | None = None
    zone: str | None = None
    target_ref: WireObjectReference | None = None


class WireEndpointPort(Struct, rename="camel"):
    name: str | None = None
    port: int | None = None
    protocol: str | None = None
    app_protocol: str | None = None


class WireEndpointSlice(Struct, rename="camel"):
    metadata: WireMeta | None = None
    address_type: str | None = None
    endpoints: list[WireEndpoint] | None = None
    ports: list[WireEndpointPort] | None = None


class WireListMeta(Struct):
    resourceVersion: Any = None  # noqa: N815 - read as the general path reads it
    continue_: Any = field(name="continue", default=None)


class ServiceList(Struct):
    items: list[WireService] | None = None
    metadata: WireListMeta | None = None


class EndpointSliceList(Struct):
    items: list[WireEndpointSlice] | None = None
    metadata: WireListMeta | None = None
