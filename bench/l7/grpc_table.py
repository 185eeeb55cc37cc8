"""The gRPC benchmark's one route table and its two renderings (as ``table.py`` is for HTTP).

Fifty GRPCRoute rules over 25 GRPCRoutes on one Gateway listener, all to the same h2c
backend: route ``grpc-NN`` has

- rule 0: method match ``bench.v1.SvcNN`` / ``Call`` (Exact);
- rule 1: method match ``bench.v1.SvcNN`` alone (every method of the service).

``tulle_config`` renders it as the waypoint's config file (GRPCRoutes on a Gateway, the
backend Service marked ``h2c``). ``envoy_config`` renders the same rules as one Envoy
``route_config`` in GRPCRoute precedence order (the longest service, then the longest
method: an exact method before its service), the way Envoy Gateway translates GRPCRoute:
a method match becomes an exact ``path`` ``/Service/Method``, a service match the
``prefix`` ``/Service/``, each with ``grpc: {}`` (only requests with a gRPC content type
match, as GRPCRoute). Upstream, both speak HTTP/2 with prior knowledge to the backend.
Each Envoy route is named like Tulle's rule reference (``default/grpc-NN#I``), so the probe
can check that both pick the same rule for the same call.

The measured call hits the exact rule of the route in the middle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from bench.l7 import table

NAMESPACE = "default"
GATEWAY = ("infra", "bench")
GATEWAY_PORT = 80
SERVICE = "grpc-backend"
SERVICE_PORT = 50051
PACKAGE = "bench.v1"
METHOD = "Call"
ROUTES = 25
CLUSTER = f"{NAMESPACE}/{SERVICE}:{SERVICE_PORT}"


@dataclass(frozen=True, slots=True)
class GrpcRule:
    route: str
    index: int
    service: str
    method: str | None

    @property
    def name(self) -> str:
        """Tulle's rule reference, also the Envoy route name."""
        return f"{NAMESPACE}/{self.route}#{self.index}"

    @property
    def path(self) -> str:
        """Envoy's match: the exact path of a method, or the service's prefix."""
        return f"/{self.service}/{self.method}" if self.method else f"/{self.service}/"

    def precedence(self) -> tuple[int, int, str, int]:
        """GRPCRoute precedence without hostnames or headers: the longest service, then
        the longest method (so an exact method before its service's every method)."""
        return (-len(self.service), -len(self.method or ""), self.route, self.index)


@dataclass(frozen=True, slots=True)
class GrpcProbe:
    """A call and the rule that must answer it (None: no rule, UNIMPLEMENTED)."""

    path: str
    rule: str | None


@dataclass(frozen=True, slots=True)
class GrpcTable:
    rules: tuple[GrpcRule, ...]
    """In precedence order (the order Envoy evaluates)."""

    @property
    def target(self) -> GrpcRule:
        exact = [r for r in self.rules if r.method]
        return exact[len(exact) // 2]

    @property
    def path(self) -> str:
        """The measured call's ``:path``."""
        return self.target.path

    def backend_paths(self) -> list[str]:
        """Every path the probes and the load call that a rule routes (the backend answers
        only these, and 404 for the rest)."""
        return sorted({p.path for p in self.probes() if p.rule})

    def probes(self) -> list[GrpcProbe]:
        """Calls whose rule both peers must agree on: the target, a service's other
        method (its service rule), the first and last exact rules, a method of a service
        no rule names and a service whose name only prefixes one in the table."""
        exact = [r for r in self.rules if r.method]
        by_name = {r.name: r for r in self.rules}
        target = self.target
        return [
            GrpcProbe(target.path, target.name),
            GrpcProbe(f"/{target.service}/Other", by_name[f"{NAMESPACE}/{target.route}#1"].name),
            GrpcProbe(exact[0].path, exact[0].name),
            GrpcProbe(exact[-1].path, exact[-1].name),
            GrpcProbe(f"/{PACKAGE}.Missing/{METHOD}", None),
            GrpcProbe(f"/{target.service}0/{METHOD}", None),
        ]


def build(routes: int = ROUTES) -> GrpcTable:
    rules: list[GrpcRule] = []
    for i in range(routes):
        service = f"{PACKAGE}.Svc{i:02d}"
        rules.append(GrpcRule(f"grpc-{i:02d}", 0, service, METHOD))
        rules.append(GrpcRule(f"grpc-{i:02d}", 1, service, None))
    rules.sort(key=GrpcRule.precedence)
    return GrpcTable(tuple(rules))


# --- Tulle ---------------------------------------------------------------------------


def tulle_config(grpc: GrpcTable, *, listen: str, backend: str) -> str:
    """GatewayClass, Gateway, the h2c backend Service, the GRPCRoutes and a
    WaypointConfig with the listener and the backend's endpoint."""
    gw_ns, gw_name = GATEWAY
    docs: list[dict[str, Any]] = [
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
         "metadata": {"name": "tulle"},
         "spec": {"controllerName": "tulle.io/gateway-controller"}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
         "metadata": {"name": gw_name, "namespace": gw_ns},
         "spec": {"gatewayClassName": "tulle",
                  "listeners": [{"name": "grpc", "port": GATEWAY_PORT, "protocol": "HTTP",
                                 "allowedRoutes": {"namespaces": {"from": "All"}}}]}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": SERVICE, "namespace": NAMESPACE},
         "spec": {"clusterIP": "10.96.0.101",
                  "ports": [{"name": "grpc", "port": SERVICE_PORT,
                             "appProtocol": "kubernetes.io/h2c"}]}},
        {"apiVersion": "tulle.io/v1alpha1", "kind": "WaypointConfig",
         "listeners": [{"address": listen,
                        "parent": {"kind": "Gateway", "namespace": gw_ns, "name": gw_name,
                                   "port": GATEWAY_PORT}}],
         "endpoints": {f"{NAMESPACE}/{SERVICE}:{SERVICE_PORT}": [backend]},
         "protocols": {f"{NAMESPACE}/{SERVICE}:{SERVICE_PORT}": "h2c"}},
    ]
    by_route: dict[str, list[GrpcRule]] = {}
    for rule in grpc.rules:
        by_route.setdefault(rule.route, []).append(rule)
    for order, name in enumerate(sorted(by_route)):
        rules = sorted(by_route[name], key=lambda r: r.index)
        docs.append({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GRPCRoute",
            "metadata": {"name": name, "namespace": NAMESPACE,
                         "creationTimestamp": f"2024-01-01T00:{order // 60:02d}:{order % 60:02d}Z"},
            "spec": {"parentRefs": [{"name": gw_name, "namespace": gw_ns}],
                     "rules": [_tulle_rule(r) for r in rules]},
        })
    return yaml.safe_dump_all(docs, sort_keys=False)


def _tulle_rule(rule: GrpcRule) -> dict[str, Any]:
    method: dict[str, Any] = {"type": "Exact", "service": rule.service}
    if rule.method:
        method["method"] = rule.method
    return {"matches": [{"method": method}],
            "backendRefs": [{"name": SERVICE, "port": SERVICE_PORT}]}


# --- Envoy ---------------------------------------------------------------------------

_HTTP_OPTIONS = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

ACCESS_LOG_FORMAT = {**table.ACCESS_LOG_FORMAT, "grpc_status": "%GRPC_STATUS_NUMBER%"}


def envoy_config(grpc: GrpcTable, *, listen: tuple[str, int], backend: tuple[str, int],
                 admin: tuple[str, int], access_log: str) -> dict[str, Any]:
    """``table.envoy_config``'s bootstrap (one HTTP connection manager, codec AUTO: h2c
    prior knowledge is detected, a JSON access log, default stats) with the gRPC routes
    and an HTTP/2 upstream cluster."""
    bootstrap = table.envoy_config(table.RouteTable(()), listen=listen, backend=backend,
                                   admin=admin, access_log=access_log)
    listener = bootstrap["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["access_log"][0]["typed_config"]["log_format"]["json_format"] = ACCESS_LOG_FORMAT
    hcm["route_config"]["virtual_hosts"][0]["routes"] = [_envoy_route(r) for r in grpc.rules]
    cluster = bootstrap["static_resources"]["clusters"][0]
    cluster["name"] = cluster["load_assignment"]["cluster_name"] = CLUSTER
    cluster["typed_extension_protocol_options"] = {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": _HTTP_OPTIONS,
            "explicit_http_config": {"http2_protocol_options": {}},
        }
    }
    return bootstrap


def _envoy_route(rule: GrpcRule) -> dict[str, Any]:
    key = "path" if rule.method else "prefix"
    return {"name": rule.name, "match": {key: rule.path, "grpc": {}},
            "route": {"cluster": CLUSTER}}
