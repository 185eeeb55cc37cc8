"""The one route-table definition both peers get, and its two renderings.

Fifty HTTPRoute rules over 25 HTTPRoutes on one Gateway listener, all to the same
backend: each route ``bench-NN`` has

- rule 0: ``PathPrefix /svcNN`` and a header match (``x-tenant``, ``x-version`` or
  ``x-canary`` equal to ``vNN``);
- rule 1: ``PathPrefix /svcNN`` alone.

``tulle_config`` renders it as the waypoint's config file (Gateway API YAML plus a
WaypointConfig document). ``envoy_config`` renders the same rules as one Envoy
``route_config``, in Gateway API precedence order (the longest prefix, then the most
header matches, then the oldest route, then the rule index), because Envoy takes the first
route that matches: this is how conformant translators (Istio, Envoy Gateway) order them.
PathPrefix becomes ``path_separated_prefix`` (element-wise, like the spec: ``/svc1`` does
not match ``/svc12``) and a header match an exact ``string_match``. Each Envoy route is
named like Tulle's rule reference (``default/bench-NN#I``), so the probe can check that
both peers pick the same rule for the same request.

The measured request hits the rule in the middle of the precedence order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

NAMESPACE = "default"
GATEWAY = ("infra", "bench")
GATEWAY_PORT = 80
SERVICE = "backend"
SERVICE_PORT = 8080
HEADER_NAMES = ("x-tenant", "x-version", "x-canary")
ROUTES = 25


@dataclass(frozen=True, slots=True)
class Rule:
    route: str
    index: int
    order: int
    """The route's age rank (creationTimestamp): 0 is the oldest."""
    prefix: str
    header: tuple[str, str] | None

    @property
    def name(self) -> str:
        """Tulle's rule reference (``RuleRef.__str__``), also the Envoy route name."""
        return f"{NAMESPACE}/{self.route}#{self.index}"

    def precedence(self) -> tuple[int, int, int, str, int]:
        """Gateway API precedence among PathPrefix rules of one listener (no hostnames,
        methods or query matches here): smaller sorts first."""
        return (
            -len(self.prefix.rstrip("/")),
            -(1 if self.header else 0),
            self.order,
            f"{NAMESPACE}/{self.route}",
            self.index,
        )


@dataclass(frozen=True, slots=True)
class Probe:
    """A request and the rule that must answer it (None: no rule, 404)."""

    path: str
    headers: tuple[tuple[str, str], ...]
    rule: str | None


@dataclass(frozen=True, slots=True)
class RouteTable:
    rules: tuple[Rule, ...]
    """In Gateway API precedence order (the order Envoy evaluates)."""

    @property
    def target(self) -> Rule:
        """The rule the load hits: in the middle of the table."""
        return self.rules[len(self.rules) // 2 - 1]

    @property
    def target_position(self) -> int:
        """1-based position of the target in evaluation order."""
        return self.rules.index(self.target) + 1

    def request(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """(path, headers) of the measured request."""
        target = self.target
        return _path_for(target), ((target.header,) if target.header else ())

    def probes(self) -> list[Probe]:
        """Requests whose rule both peers must agree on: the target, its neighbours, the
        element-wise prefix boundary, a header mismatch, and no match at all."""
        path, headers = self.request()
        by_name = {r.name: r for r in self.rules}
        out = [Probe(path, headers, self.target.name)]
        for rule in (self.rules[0], self.rules[-1], by_name[f"{NAMESPACE}/bench-01#0"]):
            out.append(
                Probe(_path_for(rule), (rule.header,) if rule.header else (), rule.name)
            )
        out.append(Probe("/svc01", (("x-version", "nope"),), f"{NAMESPACE}/bench-01#1"))
        out.append(Probe("/svc012/x", (), None))  # /svc01 must not match /svc012
        out.append(Probe("/other", (), None))
        return out


def _path_for(rule: Rule) -> str:
    return f"{rule.prefix}/item"


def build(routes: int = ROUTES) -> RouteTable:
    rules: list[Rule] = []
    for i in range(routes):
        prefix = f"/svc{i:02d}"
        header = (HEADER_NAMES[i % len(HEADER_NAMES)], f"v{i:02d}")
        rules.append(Rule(f"bench-{i:02d}", 0, i, prefix, header))
        rules.append(Rule(f"bench-{i:02d}", 1, i, prefix, None))
    rules.sort(key=Rule.precedence)
    return RouteTable(tuple(rules))


# --- Tulle ---------------------------------------------------------------------------


def tulle_config(table: RouteTable, *, listen: str, backend: str) -> str:
    """The waypoint's config file: GatewayClass, Gateway, Service, the HTTPRoutes and a
    WaypointConfig with the listener and the backend's endpoint."""
    gw_ns, gw_name = GATEWAY
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "tulle"},
            "spec": {"controllerName": "tulle.io/gateway-controller"},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": gw_name, "namespace": gw_ns},
            "spec": {
                "gatewayClassName": "tulle",
                "listeners": [
                    {
                        "name": "http",
                        "port": GATEWAY_PORT,
                        "protocol": "HTTP",
                        "allowedRoutes": {"namespaces": {"from": "All"}},
                    }
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": NAMESPACE},
            "spec": {"clusterIP": "10.96.0.100", "ports": [{"port": SERVICE_PORT}]},
        },
        {
            "apiVersion": "tulle.io/v1alpha1",
            "kind": "WaypointConfig",
            "listeners": [
                {
                    "address": listen,
                    "parent": {
                        "kind": "Gateway",
                        "namespace": gw_ns,
                        "name": gw_name,
                        "port": GATEWAY_PORT,
                    },
                }
            ],
            "endpoints": {f"{NAMESPACE}/{SERVICE}:{SERVICE_PORT}": [backend]},
        },
    ]
    by_route: dict[str, list[Rule]] = {}
    for rule in table.rules:
        by_route.setdefault(rule.route, []).append(rule)
    for name in sorted(by_route):
        rules = sorted(by_route[name], key=lambda r: r.index)
        order = rules[0].order
        docs.append(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {
                    "name": name,
                    "namespace": NAMESPACE,
                    "creationTimestamp": f"2024-01-01T00:{order // 60:02d}:{order % 60:02d}Z",
                },
                "spec": {
                    "parentRefs": [{"name": gw_name, "namespace": gw_ns}],
                    "rules": [_tulle_rule(r) for r in rules],
                },
            }
        )
    return yaml.safe_dump_all(docs, sort_keys=False)


def _tulle_rule(rule: Rule) -> dict[str, Any]:
    match: dict[str, Any] = {"path": {"type": "PathPrefix", "value": rule.prefix}}
    if rule.header:
        match["headers"] = [{"name": rule.header[0], "value": rule.header[1]}]
    return {"matches": [match], "backendRefs": [{"name": SERVICE, "port": SERVICE_PORT}]}


# --- Envoy ---------------------------------------------------------------------------

_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
_FILE_LOG = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"

ACCESS_LOG_FORMAT: dict[str, str] = {
    # The fields of a Tulle L7 flow record: time, latency, code, method, url, protocol,
    # route and rule, backend, drop reason (response flags), client and local addresses.
    "time": "%START_TIME%",
    "duration_ms": "%DURATION%",
    "code": "%RESPONSE_CODE%",
    "method": "%REQ(:METHOD)%",
    "authority": "%REQ(:AUTHORITY)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "route": "%ROUTE_NAME%",
    "upstream": "%UPSTREAM_HOST%",
    "cluster": "%UPSTREAM_CLUSTER%",
    "flags": "%RESPONSE_FLAGS%",
    "client": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "local": "%DOWNSTREAM_LOCAL_ADDRESS%",
    "request_id": "%REQ(X-REQUEST-ID)%",
}


def envoy_config(
    table: RouteTable,
    *,
    listen: tuple[str, int],
    backend: tuple[str, int],
    admin: tuple[str, int],
    access_log: str,
) -> dict[str, Any]:
    """A static bootstrap: one listener with an HTTP connection manager whose route_config
    has the table's rules in precedence order, a JSON access log to ``access_log``, the
    default stats (served on ``admin``) and one STATIC cluster for the backend."""
    routes = [_envoy_route(rule) for rule in table.rules]
    hcm = {
        "@type": _HCM + "HttpConnectionManager",
        "stat_prefix": "bench",
        "codec_type": "AUTO",
        # Like the waypoint: the peer address goes into X-Forwarded-For, paths are
        # normalized (dot segments) before matching.
        "use_remote_address": True,
        "normalize_path": True,
        "access_log": [
            {
                "name": "envoy.access_loggers.file",
                "typed_config": {
                    "@type": _FILE_LOG,
                    "path": access_log,
                    "log_format": {"json_format": ACCESS_LOG_FORMAT},
                },
            }
        ],
        "route_config": {
            "name": "bench",
            "virtual_hosts": [{"name": "bench", "domains": ["*"], "routes": routes}],
        },
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER}}],
    }
    return {
        "admin": {"address": _socket(admin)},
        "static_resources": {
            "listeners": [
                {
                    "name": "bench",
                    "address": _socket(listen),
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": hcm,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": f"{NAMESPACE}/{SERVICE}:{SERVICE_PORT}",
                    "type": "STATIC",
                    "connect_timeout": "5s",
                    "load_assignment": {
                        "cluster_name": f"{NAMESPACE}/{SERVICE}:{SERVICE_PORT}",
                        "endpoints": [
                            {"lb_endpoints": [{"endpoint": {"address": _socket(backend)}}]}
                        ],
                    },
                }
            ],
        },
    }


def _envoy_route(rule: Rule) -> dict[str, Any]:
    match: dict[str, Any] = {"path_separated_prefix": rule.prefix.rstrip("/")}
    if rule.header:
        match["headers"] = [{"name": rule.header[0], "string_match": {"exact": rule.header[1]}}]
    return {
        "name": rule.name,
        "match": match,
        "route": {"cluster": f"{NAMESPACE}/{SERVICE}:{SERVICE_PORT}"},
    }


def _socket(address: tuple[str, int]) -> dict[str, Any]:
    return {"socket_address": {"address": address[0], "port_value": address[1]}}
