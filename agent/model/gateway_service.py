"""The Service Tulle makes for each of its Gateways (pure): its name, and how to tell it from a
user's Service.

A Gateway of Tulle's class gets one Service of type LoadBalancer in its namespace (made and kept
by tulle-controller, ``controlplane/gatewayservice``), through which LoadBalancer IPAM gives the
Gateway its address. As Cilium does for its Gateways, the Service is named from the Gateway
(``tulle-gateway-<name>``) and labelled ``gateway.networking.k8s.io/gateway-name`` (GEP-1762).

Ownership is never read from a label or a name alone: anyone who may write Services in the
namespace can set both. The Gateway's Service is the one with the derived name whose
*controller* ownerReference is that Gateway (kind Gateway, group gateway.networking.k8s.io,
the Gateway's uid). A Service the controller did not make but that carries that reference
(uid and all) is adopted, as Kubernetes controllers adopt their dependents.
"""

from __future__ import annotations

import hashlib
import re

from agent.model.core import Service
from agent.model.gateway import Gateway
from agent.model.meta import ObjectMeta, OwnerReference

GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"  # v1.GatewayNameLabelKey
GATEWAY_GROUP = "gateway.networking.k8s.io"
SERVICE_PREFIX = "tulle-gateway-"
_MAX_NAME = 63  # a Service name is an RFC 1035 label
_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def service_name(gateway: str) -> str:
    """The Service name of the Gateway named ``gateway``: ``tulle-gateway-<gateway>`` when
    that is an RFC 1035 label; else (a long name, or dots, which a Gateway's DNS-subdomain
    name may hold) a shortened, dot-free form ending in a hash of the whole name, so that
    Gateways ``a.b`` and ``a-b`` never share one."""
    plain = SERVICE_PREFIX + gateway
    if len(plain) <= _MAX_NAME and _LABEL.match(plain):
        return plain
    digest = hashlib.sha256(gateway.encode()).hexdigest()[:10]
    head = re.sub(r"[^-a-z0-9]", "-", plain.lower())[: _MAX_NAME - len(digest) - 1]
    return f"{head.rstrip('-')}-{digest}"


def gateway_owner(meta: ObjectMeta) -> OwnerReference | None:
    """The object's controller ownerReference when it is a Gateway (any API version)."""
    ref = meta.controller
    if ref is None or ref.kind != "Gateway" or ref.api_version.split("/")[0] != GATEWAY_GROUP:
        return None
    return ref


def looks_like_gateway_service(service: Service) -> bool:
    """Judged from the Service alone (the agent plans each Service on its own): its
    controller is a Gateway and its name is that Gateway's Service name. Such a Service has
    no endpoints; its address is the Gateway's, which the waypoint serves, and so are its
    nodePorts at the nodes' addresses (``agent/datapath/gateway_nodeports.py``)."""
    ref = gateway_owner(service.metadata)
    return ref is not None and service.metadata.name == service_name(ref.name)


def is_service_of(service: Service, gateway: Gateway) -> bool:
    """``service`` is ``gateway``'s own: the derived name, in its namespace, controlled by
    that very Gateway (its uid)."""
    ref = gateway_owner(service.metadata)
    return (
        ref is not None
        and service.metadata.namespace == gateway.metadata.namespace
        and service.metadata.name == service_name(gateway.metadata.name)
        and ref.name == gateway.metadata.name
        and bool(gateway.metadata.uid)
        and ref.uid == gateway.metadata.uid
    )
