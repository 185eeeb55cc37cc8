"""Builders of Kubernetes-shaped objects for route engine tests, read through the one
converter (``agent.model.convert.from_dict``) so tests see what the waypoint sees."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from agent.model.convert import from_dict
from agent.model.core import Namespace, Secret, Service
from agent.model.fault import HTTPFault
from agent.model.gateway import Gateway, GatewayClass, ReferenceGrant
from agent.model.grpcroute import GRPCRoute
from agent.model.httproute import HTTPRoute
from agent.model.l4route import TCPRoute, UDPRoute
from agent.model.resource import Resource
from agent.model.tlsroute import TLSRoute
from gatewayapi import (
    CONTROLLER_NAME,
    Forward,
    GatewayParent,
    Headers,
    Request,
    Respond,
    RouteTables,
    RoutingInputs,
    Selection,
    ServiceParent,
    compile_routes,
)
from gatewayapi.types import NoRoute

GW = "gateway.networking.k8s.io/v1"
INFRA = "infra"
T0 = "2024-01-01T00:00:00Z"


def gateway_class(name: str = "tulle", controller: str = CONTROLLER_NAME) -> GatewayClass:
    obj = from_dict(
        {
            "apiVersion": GW,
            "kind": "GatewayClass",
            "metadata": {"name": name, "generation": 1},
            "spec": {"controllerName": controller},
        }
    )
    assert isinstance(obj, GatewayClass)
    return obj


def listener(
    name: str = "http",
    port: int = 80,
    protocol: str = "HTTP",
    hostname: str | None = None,
    allowed: dict[str, Any] | None = None,
    tls: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "port": port, "protocol": protocol}
    if hostname is not None:
        out["hostname"] = hostname
    if allowed is not None:
        out["allowedRoutes"] = allowed
    if tls is not None:
        out["tls"] = tls
    return out


def gateway(
    name: str = "gw",
    namespace: str = INFRA,
    listeners: Sequence[dict[str, Any]] = (),
    class_name: str = "tulle",
    addresses: Sequence[dict[str, Any]] = (),
    generation: int = 1,
) -> Gateway:
    spec: dict[str, Any] = {
        "gatewayClassName": class_name,
        "listeners": list(listeners) or [listener(allowed={"namespaces": {"from": "All"}})],
    }
    if addresses:
        spec["addresses"] = list(addresses)
    obj = from_dict(
        {
            "apiVersion": GW,
            "kind": "Gateway",
            "metadata": {"name": name, "namespace": namespace, "generation": generation},
            "spec": spec,
        }
    )
    assert isinstance(obj, Gateway)
    return obj


def gw_ref(name: str = "gw", namespace: str = INFRA, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, **extra}


def svc_ref(name: str, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"group": "", "kind": "Service", "name": name, **extra}
    if namespace is not None:
        out["namespace"] = namespace
    return out


def backend(name: str, port: int = 8080, **extra: Any) -> dict[str, Any]:
    return {"name": name, "port": port, **extra}


def route(
    name: str = "r",
    namespace: str = "default",
    rules: Sequence[dict[str, Any]] = ({"backendRefs": [{"name": "web", "port": 8080}]},),
    parents: Sequence[dict[str, Any]] | None = None,
    hostnames: Sequence[str] = (),
    created: str = T0,
    generation: int = 1,
    status: dict[str, Any] | None = None,
) -> HTTPRoute:
    spec: dict[str, Any] = {
        "parentRefs": list(parents) if parents is not None else [gw_ref()],
        "rules": list(rules),
    }
    if hostnames:
        spec["hostnames"] = list(hostnames)
    doc: dict[str, Any] = {
        "apiVersion": GW,
        "kind": "HTTPRoute",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": created,
            "generation": generation,
        },
        "spec": spec,
    }
    if status is not None:
        doc["status"] = status
    obj = from_dict(doc)
    assert isinstance(obj, HTTPRoute)
    return obj


def grpc_route(
    name: str = "g",
    namespace: str = "default",
    rules: Sequence[dict[str, Any]] = ({"backendRefs": [{"name": "web", "port": 8080}]},),
    parents: Sequence[dict[str, Any]] | None = None,
    hostnames: Sequence[str] = (),
    created: str = T0,
) -> GRPCRoute:
    spec: dict[str, Any] = {
        "parentRefs": list(parents) if parents is not None else [gw_ref()],
        "rules": list(rules),
    }
    if hostnames:
        spec["hostnames"] = list(hostnames)
    obj = from_dict(
        {
            "apiVersion": GW,
            "kind": "GRPCRoute",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "creationTimestamp": created,
                "generation": 1,
            },
            "spec": spec,
        }
    )
    assert isinstance(obj, GRPCRoute)
    return obj


GRPC = (("content-type", "application/grpc"),)
"""The header that makes a request gRPC."""


def service(
    name: str = "web",
    namespace: str = "default",
    ports: Sequence[int | tuple[int, str]] = (8080,),
    cluster_ip: str | None = "10.96.0.10",
) -> Service:
    port_list = [
        {"port": p, "name": f"p{p}"} if isinstance(p, int) else {"port": p[0], "name": p[1]}
        for p in ports
    ]
    spec: dict[str, Any] = {"ports": port_list, "selector": {"app": name}}
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
    obj = from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )
    assert isinstance(obj, Service)
    return obj


def namespace(name: str, labels: dict[str, str] | None = None) -> Namespace:
    obj = from_dict(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": labels or {}},
        }
    )
    assert isinstance(obj, Namespace)
    return obj


def grant(
    namespace: str,
    from_namespace: str,
    from_kind: str = "HTTPRoute",
    to_kind: str = "Service",
    to_name: str | None = None,
) -> ReferenceGrant:
    to: dict[str, Any] = {"group": "", "kind": to_kind}
    if to_name is not None:
        to["name"] = to_name
    obj = from_dict(
        {
            "apiVersion": "gateway.networking.k8s.io/v1beta1",
            "kind": "ReferenceGrant",
            "metadata": {"name": f"from-{from_namespace}", "namespace": namespace},
            "spec": {
                "from": [
                    {
                        "group": "gateway.networking.k8s.io",
                        "kind": from_kind,
                        "namespace": from_namespace,
                    }
                ],
                "to": [to],
            },
        }
    )
    assert isinstance(obj, ReferenceGrant)
    return obj


def tls_secret(name: str, namespace: str = INFRA, valid: bool = True) -> Secret:
    """A TLS Secret; not ``valid``: an Opaque Secret holding only a certificate."""
    data = {"tls.crt": "Y2VydA==", "tls.key": "a2V5"} if valid else {"tls.crt": "Y2VydA=="}
    obj = from_dict(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "type": "kubernetes.io/tls" if valid else "Opaque",
            "data": data,
        }
    )
    assert isinstance(obj, Secret)
    return obj


def inputs(*objects: Resource, default_world: bool = True) -> RoutingInputs:
    """RoutingInputs from any objects. With ``default_world`` a Tulle GatewayClass, the
    default Gateway (one HTTP listener on port 80 allowing all namespaces) and the
    Services web, v1, v2 and v3 in "default" are added unless given."""
    objs = list(objects)
    if default_world:
        kinds = {type(o) for o in objs}
        if GatewayClass not in kinds:
            objs.append(gateway_class())
        if Gateway not in kinds:
            objs.append(gateway())
        names = {(o.metadata.namespace, o.metadata.name) for o in objs if isinstance(o, Service)}
        for i, name in enumerate(("web", "v1", "v2", "v3")):
            if ("default", name) not in names:
                objs.append(service(name, cluster_ip=f"10.96.0.{20 + i}"))

    def of(kind: type) -> list[Any]:
        return [o for o in objs if isinstance(o, kind)]

    return RoutingInputs.of(
        of(HTTPRoute),
        of(Gateway),
        of(GatewayClass),
        of(Service),
        of(ReferenceGrant),
        of(Namespace),
        of(Secret),
        faults=of(HTTPFault),
        grpc_routes=of(GRPCRoute),
        tls_routes=of(TLSRoute),
        l4_routes=[*of(TCPRoute), *of(UDPRoute)],
    )


def tables(*objects: Resource, default_world: bool = True) -> RouteTables:
    i = inputs(*objects, default_world=default_world)
    return compile_routes(
        i.routes,
        i.gateways,
        i.gateway_classes,
        i.services,
        i.reference_grants,
        i.namespaces,
        secrets=i.secrets,
        faults=i.faults,
        grpc_routes=i.grpc_routes,
    )


PARENT = GatewayParent(INFRA, "gw", 80)


def request(
    target: str = "/",
    method: str = "GET",
    host: str = "example.com",
    headers: Iterable[tuple[str, str]] = (),
    scheme: str = "http",
) -> Request:
    return Request(method, scheme, host, target, Headers((("Host", host), *headers)))


def select(
    t: RouteTables,
    target: str = "/",
    method: str = "GET",
    host: str = "example.com",
    headers: Iterable[tuple[str, str]] = (),
    parent: GatewayParent | ServiceParent = PARENT,
    client_namespace: str | None = None,
) -> Selection | NoRoute:
    req = request(target, method, host, headers)
    return t.select(
        parent,
        req.authority,
        req.method,
        req.path,
        req.query,
        req.headers,
        client_namespace=client_namespace,
    )


def picked(
    t: RouteTables,
    target: str = "/",
    method: str = "GET",
    host: str = "example.com",
    headers: Iterable[tuple[str, str]] = (),
    parent: GatewayParent | ServiceParent = PARENT,
    client_namespace: str | None = None,
) -> str | None:
    """ "namespace/route#rule" of the selected rule, or None when no rule is selected."""
    found = select(t, target, method, host, headers, parent, client_namespace)
    return None if isinstance(found, NoRoute) else str(found.ref)


def draws(*values: float) -> Any:
    """A deterministic rng returning ``values`` in turn."""
    it = iter(values)
    return lambda: next(it)


def forward(result: Forward | Respond) -> Forward:
    assert isinstance(result, Forward), result
    return result


def respond(result: Forward | Respond) -> Respond:
    assert isinstance(result, Respond), result
    return result
