"""Which health-check node ports this node answers, and what it answers (pure).

kube-proxy's service health server (pkg/proxy/healthcheck/service_health.go) is the
reference: one listener per ``spec.healthCheckNodePort`` of a LoadBalancer Service with
``externalTrafficPolicy: Local``; any path; ``200`` when the node has a local endpoint for the
Service (and its proxy is healthy), ``503`` otherwise, so a cloud load balancer sends only to
nodes that can serve without a hop. The body is JSON
``{"service": {"namespace", "name"}, "localEndpoints": N, "serviceProxyHealthy": bool}`` with
``Content-Type: application/json``, ``X-Content-Type-Options: nosniff`` and
``X-Load-Balancing-Endpoint-Weight: N``.

Local endpoints are the ready endpoints of the Service's EndpointSlices whose ``nodeName`` is
this node, counted once per address (one pod listed by several slices or ports is one).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from agent.model.core import EndpointSlice, Service, ServiceType, TrafficPolicy


@dataclass(frozen=True, slots=True)
class HealthCheck:
    namespace: str
    name: str
    local_endpoints: int


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def plan_health_checks(
    services: Iterable[Service], slices: Iterable[EndpointSlice], node: str
) -> dict[int, HealthCheck]:
    """healthCheckNodePort -> what that port reports on ``node``."""
    wanted: dict[tuple[str, str], int] = {}
    for svc in services:
        spec = svc.spec
        if (spec.type is ServiceType.LOAD_BALANCER
                and spec.external_traffic_policy is TrafficPolicy.LOCAL
                and spec.health_check_node_port is not None):
            wanted[(svc.metadata.namespace or "", svc.metadata.name)] = (
                spec.health_check_node_port
            )
    local: dict[tuple[str, str], set[str]] = {key: set() for key in wanted}
    for slc in slices:
        key = (slc.metadata.namespace or "", slc.service_name or "")
        addresses = local.get(key)
        if addresses is None:
            continue
        for endpoint in slc.endpoints:
            if endpoint.node_name == node and endpoint.conditions.is_ready and endpoint.addresses:
                addresses.add(endpoint.addresses[0])
    return {
        port: HealthCheck(key[0], key[1], len(local[key])) for key, port in wanted.items()
    }


def answer(check: HealthCheck | None, proxy_healthy: bool = True) -> Answer:
    """The response for one request to a health-check port (``None``: the port's Service is
    gone while its listener closes; kube-proxy answers nothing then, we answer 503)."""
    count = check.local_endpoints if check else 0
    status = 200 if count > 0 and proxy_healthy else 503
    body = {
        "service": {
            "namespace": check.namespace if check else "",
            "name": check.name if check else "",
        },
        "localEndpoints": count,
        "serviceProxyHealthy": proxy_healthy,
    }
    headers = (
        ("Content-Type", "application/json"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Load-Balancing-Endpoint-Weight", str(count)),
    )
    return Answer(status, headers, json.dumps(body, indent=1).encode() + b"\n")
