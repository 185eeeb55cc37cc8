"""GATEWAY-HTTP cases for features Tulle served without a case: percentage mirrors, listener
isolation, and the WebSocket and h2c backend protocols (GEP-1911 appProtocol). Each follows
the upstream test of the same name (conformance/tests/<name>.go); the backends for the two
protocols are small pod programs (``backends.py``), since the echo server speaks HTTP/1.1
without upgrades."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from typing import Any
from uuid import uuid4

from conformance.case import Case, CaseFailed
from conformance.cases.backends import H2C_CLIENT, H2C_SERVER, WS_CLIENT, WS_SERVER, program
from conformance.cases.common import (
    GATEWAY_API,
    GATEWAY_BASE,
    INFRA,
    Expect,
    backend,
    deployment_of,
    expect_all,
    gateway_address,
    gateway_parent,
    http_route,
    prefix,
)
from conformance.cases.gateway_more import MIRRORS, _recorded
from conformance.lab import GRPC_PYTHON, POD_PYTHON, Lab, eventually

PROFILE = "GATEWAY-HTTP"
CORE = ("Gateway", "HTTPRoute")
V1 = "infra-backend-v1"

# --- HTTPRouteRequestPercentageMirror ---------------------------------------------------

MIRROR_HOST = "httproutepercentagemirror.example.com"
SENT = 100  # requests per rule
# (path prefix, the mirror filter's share field, the share as a fraction)
SHARES: tuple[tuple[str, dict[str, Any], float], ...] = (
    ("/percent-mirror", {"percent": 20}, 0.20),
    ("/percent-mirror-fraction", {"fraction": {"numerator": 25, "denominator": 50}}, 0.50),
    ("/percent-mirror-and-modify-headers", {"percent": 35}, 0.35),
)


def _share_rule(path: str, share: dict[str, Any]) -> dict[str, Any]:
    filters: list[dict[str, Any]] = [
        {"type": "RequestMirror", "requestMirror": {"backendRef": backend("mirror-a"), **share}}]
    if path.endswith("headers"):  # upstream's third rule also modifies the request
        filters.insert(0, {"type": "RequestHeaderModifier", "requestHeaderModifier": {
            "set": [{"name": "X-Header-Set", "value": "set-overwrites-values"}],
            "add": [{"name": "X-Header-Add", "value": "header-val-1"}],
            "remove": ["X-Header-Remove"]}})
    return {"matches": [prefix(path)], "filters": filters, "backendRefs": [backend(V1)]}


def band(sent: int, share: float) -> tuple[int, int]:
    """The mirrored count accepted: within four standard deviations of the binomial mean
    (a false failure about once in 16,000 runs; 0 and ``sent`` are always outside it)."""
    mean, sigma = sent * share, math.sqrt(sent * share * (1 - share))
    return max(1, math.floor(mean - 4 * sigma)), min(sent - 1, math.ceil(mean + 4 * sigma))


def _settled(lab: Lab, app: str) -> list[str]:
    """The recorder's paths once two reads a second apart agree (mirrors are sent after the
    answer, so the last ones may still be on their way)."""
    last = _recorded(lab, app)
    for _ in range(20):
        time.sleep(1)
        now = _recorded(lab, app)
        if now == last:
            return now
        last = now
    raise CaseFailed(f"{app}'s recorded requests kept changing")


def _check_percentage(lab: Lab) -> None:
    """Every request is answered by the route's backend; each rule's mirror gets a share of
    them near its percent or fraction (upstream HTTPRouteRequestPercentageMirror)."""
    run = uuid4().hex[:12]
    base = f"http://{gateway_address(lab)}"
    expect_all(lab, INFRA, "client", base,  # routed at all
               [Expect(path=f"{path}/warm", host=MIRROR_HOST, backend=V1)
                for path, _, _ in SHARES])
    client = lab.pod(INFRA, "client")
    for path, _, _ in SHARES:
        answers = lab.http(INFRA, client, [{"url": f"{base}{path}/{run}/{i}", "host": MIRROR_HOST}
                                           for i in range(SENT)])
        wrong = [a for a in answers if a.get("status") != 200 or not isinstance(a.get("body"), dict)
                 or deployment_of(str(a["body"].get("pod", ""))) != V1]
        if wrong:
            raise CaseFailed(f"{len(wrong)} of {SENT} to {path} not answered by {V1}: {wrong[0]}")
    seen = _settled(lab, "mirror-a")
    problems = []
    for path, _, share in SHARES:
        got = sum(1 for p in seen if p.startswith(f"{path}/{run}/"))
        low, high = band(SENT, share)
        if not low <= got <= high:
            problems.append(f"{path}: {got} of {SENT} mirrored, want {low}..{high}")
    if problems:
        raise CaseFailed("; ".join(problems))


# --- GatewayHTTPListenerIsolation -------------------------------------------------------

ISOLATION = "http-listener-isolation"
LISTENERS = (("empty-hostname", None), ("wildcard-example-com", "*.example.com"),
             ("wildcard-foo-example-com", "*.foo.example.com"),
             ("abc-foo-example-com", "abc.foo.example.com"))
# request host -> the listener whose routes alone serve it (the most specific that matches)
ISOLATED = {"bar.com": "empty-hostname", "bar.example.com": "wildcard-example-com",
            "bar.foo.example.com": "wildcard-foo-example-com",
            "abc.foo.example.com": "abc-foo-example-com"}


INTERSECTING = "http-listener-isolation-with-hostname-intersection"
ROUTE_HOSTNAMES = ["bar.com", "*.example.com", "*.foo.example.com", "abc.foo.example.com"]


def _isolation_objects(gateway_name: str, suffix: str, hostnames: list[str]
                       ) -> tuple[dict[str, Any], ...]:
    listeners = [{"name": name, "port": 80, "protocol": "HTTP",
                  **({"hostname": host} if host else {}),
                  "allowedRoutes": {"namespaces": {"from": "All"}}} for name, host in LISTENERS]
    gateway = {"apiVersion": GATEWAY_API, "kind": "Gateway",
               "metadata": {"name": gateway_name, "namespace": INFRA},
               "spec": {"gatewayClassName": "tulle", "listeners": listeners}}
    routes = [http_route(INFRA, f"attaches-to-{name}{suffix}",
                         {"name": gateway_name, "namespace": INFRA, "sectionName": name},
                         [{"matches": [prefix(f"/{name}")], "backendRefs": [backend(V1)]}],
                         hostnames=hostnames)
              for name, _ in LISTENERS]
    return (gateway, *routes)


def _check_isolation(lab: Lab) -> None:
    """A request is matched only against the routes of the most specific listener whose
    hostname matches it: every other listener's paths give 404, with hostnames on the
    listeners only and with routes whose hostnames intersect all of them (upstream
    GatewayHTTPListenerIsolation, both halves)."""
    expects = [Expect(path=f"/{name}", host=host,
                      **({"backend": V1} if name == ISOLATED[host] else {"status": 404}))
               for host in ISOLATED for name, _ in LISTENERS]
    for gateway_name in (ISOLATION, INTERSECTING):
        expect_all(lab, INFRA, "client",
                   f"http://{gateway_address(lab, INFRA, gateway_name)}", expects)


# --- HTTPRouteBackendProtocolWebSocket and HTTPRouteBackendProtocolH2C ------------------

WS_HOST = "httproutebackendprotocolwebsocket.example.com"
H2C_HOST = "httproutebackendprotocolh2c.example.com"


def _app_service(name: str, app: str, port: int, app_protocol: str) -> dict[str, Any]:
    """A Service port with a GEP-1911 appProtocol, as upstream gives infra-backend-v1."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": INFRA},
            "spec": {"selector": {"app": app},
                     "ports": [{"name": "p", "port": port, "targetPort": "http",
                                "appProtocol": app_protocol}]}}


WS_OBJECTS = (program(INFRA, "ws-backend", POD_PYTHON, WS_SERVER),
              _app_service("ws-backend", "ws-backend", 8082, "kubernetes.io/ws"),
              http_route(INFRA, "backend-protocol-ws", gateway_parent(),
                         [{"backendRefs": [backend("ws-backend", 8082)]}], hostnames=[WS_HOST]))
H2C_OBJECTS = (program(INFRA, "h2c-backend", GRPC_PYTHON, H2C_SERVER),
               _app_service("h2c-backend", "h2c-backend", 8081, "kubernetes.io/h2c"),
               http_route(INFRA, "backend-protocol-h2c", gateway_parent(),
                          [{"backendRefs": [backend("h2c-backend", 8081)]}],
                          hostnames=[H2C_HOST]))


def _run_client(lab: Lab, python: str, script: str, *args: str) -> dict[str, Any]:
    got: dict[str, Any] = lab.run_py(INFRA, lab.pod(INFRA, "client"), python, script, *args)
    return got


def _check_websocket(lab: Lab) -> None:
    """A WebSocket opened through the Gateway reaches the backend: a text and a binary
    message each come back as sent (upstream HTTPRouteBackendProtocolWebSocket)."""
    def once() -> None:
        got = _run_client(lab, POD_PYTHON, WS_CLIENT, gateway_address(lab), WS_HOST)
        want = {"status": 101, "accept": True, "text": "Websocket Support!",
                "binary": [1, 2, 3, 4, 5, 6, 7]}
        if got != want:
            raise CaseFailed(f"websocket: {json.dumps(got)[:300]}, want {want}")

    eventually(once, timeout=30)


def _check_h2c(lab: Lab) -> None:
    """A request with HTTP/2 prior knowledge reaches a backend that speaks only h2c
    (appProtocol kubernetes.io/h2c): 200 from its pod (upstream
    HTTPRouteBackendProtocolH2C)."""
    def once() -> None:
        got = _run_client(lab, GRPC_PYTHON, H2C_CLIENT, gateway_address(lab), H2C_HOST, "/h2c")
        body = got.get("body")
        if got.get("status") != 200 or not isinstance(body, dict) \
                or deployment_of(str(body.get("pod", ""))) != "h2c-backend":
            raise CaseFailed(f"h2c: {json.dumps(got)[:300]}")

    eventually(once, timeout=30)


def _case(name: str, feature: str, objects: Sequence[dict[str, Any]], check: Any) -> Case:
    return Case(name, PROFILE, (*CORE, feature), (*GATEWAY_BASE, *objects), check)


CASES = [
    _case("HTTPRouteRequestPercentageMirror", "HTTPRouteRequestPercentageMirror",
          (*MIRRORS, http_route(INFRA, "request-percentage-mirror", gateway_parent(),
                                [_share_rule(p, s) for p, s, _ in SHARES],
                                hostnames=[MIRROR_HOST])), _check_percentage),
    _case("GatewayHTTPListenerIsolation", "GatewayHTTPListenerIsolation",
          (*_isolation_objects(ISOLATION, "", []),
           *_isolation_objects(INTERSECTING, "-with-hostname-intersection", ROUTE_HOSTNAMES)),
          _check_isolation),
    _case("HTTPRouteBackendProtocolWebSocket", "HTTPRouteBackendProtocolWebSocket", WS_OBJECTS,
          _check_websocket),
    _case("HTTPRouteBackendProtocolH2C", "HTTPRouteBackendProtocolH2C", H2C_OBJECTS, _check_h2c),
]
