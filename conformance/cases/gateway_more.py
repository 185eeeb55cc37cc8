"""GATEWAY-HTTP cases that need more than one request-answer comparison: weighted backends
(a count), request mirrors (what the mirror backends received) and a listener on port 8080.
Mirror targets are small recording servers: the mirrored request is never answered to the
client, so the case asks the recorder, directly by pod IP, which paths it saw."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any
from uuid import uuid4

from conformance.case import Case, CaseFailed
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
    service,
    via_gateway,
)
from conformance.lab import POD_PYTHON, Lab, eventually

PROFILE = "GATEWAY-HTTP"
CORE = ("Gateway", "HTTPRoute")
V1, V2 = "infra-backend-v1", "infra-backend-v2"

# Records the path of every request it gets, and lists them at /__recorded (asked directly).
RECORDER = r"""
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
seen = []
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/__recorded":
            body = json.dumps(seen).encode()
        else:
            seen.append(self.path)
            body = b"{}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""


def _recorder(name: str) -> dict[str, Any]:
    container = {"name": name, "image": "tulle/echo", "command": [POD_PYTHON, "-c", RECORDER],
                 "ports": [{"name": "http", "containerPort": 8080}]}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": INFRA},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [container]}}}}


MIRRORS = (_recorder("mirror-a"), _recorder("mirror-b"), service(INFRA, "mirror-a"),
           service(INFRA, "mirror-b"))


def _recorded(lab: Lab, app: str) -> list[str]:
    pod = next((p for p in lab.get("pods", INFRA)
                if p["metadata"].get("labels", {}).get("app") == app), None)
    ip = (pod or {}).get("status", {}).get("podIP")
    if not ip:
        raise CaseFailed(f"no running pod of {app}")
    [answer] = lab.http(INFRA, lab.pod(INFRA, "client"),
                        [{"url": f"http://{ip}:8080/__recorded"}])
    if answer.get("status") != 200:
        raise CaseFailed(f"recorder {app} did not answer: {answer}")
    return list(answer["body"])


def _mirror_case(name: str, feature: str, mirrors: tuple[str, ...]) -> Case:
    host = name.lower() + ".example.com"
    rules = [{"backendRefs": [backend(V1)],
              "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": backend(m)}}
                          for m in mirrors]}]

    def check(lab: Lab) -> None:
        """The client gets the backend's answer; each mirror gets the request too
        (upstream HTTPRouteRequestMirror / HTTPRouteRequestMultipleMirrors)."""
        marker = f"/mirror/{uuid4().hex}"
        via_gateway(lab, host, [Expect(path=marker, backend=V1)])

        def mirrored() -> None:
            for m in mirrors:
                if marker not in _recorded(lab, m):
                    raise CaseFailed(f"{m} did not receive the mirrored {marker}")

        eventually(mirrored, timeout=15)

    route = http_route(INFRA, name.lower(), gateway_parent(), rules, hostnames=[host])
    return Case(name, PROFILE, (*CORE, feature), (*GATEWAY_BASE, *MIRRORS, route), check)


def _weight_check(host: str) -> Callable[[Lab], None]:
    def check(lab: Lab) -> None:
        """Weights 70/30: over 100 requests each backend gets a share near its weight
        (upstream HTTPRouteWeight allows a tolerance; this allows +-20 points)."""
        via_gateway(lab, host, [Expect(path="/", status=200)])  # routed at all
        base = f"http://{gateway_address(lab)}"
        answers = lab.http(INFRA, lab.pod(INFRA, "client"),
                           [{"url": base + "/", "host": host}] * 100)
        pods = Counter(deployment_of(str(a.get("body", {}).get("pod", "?")))
                       if isinstance(a.get("body"), dict) else "error" for a in answers)
        if not 50 <= pods[V1] <= 90 or pods[V1] + pods[V2] != 100:
            raise CaseFailed(f"70/30 split gave {dict(pods)}")
    return check


WEIGHT_HOST = "httprouteweight.example.com"
PARENT_PORT_HOST = "httprouteparentrefport.example.com"
PORT_8080 = "gateway-port-8080"
CASES = [
    Case("HTTPRouteWeight", PROFILE, CORE, (*GATEWAY_BASE, http_route(
        INFRA, "httprouteweight", gateway_parent(),
        [{"backendRefs": [backend(V1, weight=70), backend(V2, weight=30)]}],
        hostnames=[WEIGHT_HOST])), _weight_check(WEIGHT_HOST)),
    Case("HTTPRouteParentRefPort", PROFILE, (*CORE, "HTTPRouteParentRefPort"), (
        *GATEWAY_BASE, http_route(INFRA, "httprouteparentrefport", {**gateway_parent(), "port": 80},
                                  [{"backendRefs": [backend(V2)]}], hostnames=[PARENT_PORT_HOST])),
        lambda lab: via_gateway(lab, PARENT_PORT_HOST, [Expect(path="/parent-port", backend=V2)])),
    _mirror_case("HTTPRouteRequestMirror", "HTTPRouteRequestMirror", ("mirror-a",)),
    _mirror_case("HTTPRouteRequestMultipleMirrors", "HTTPRouteRequestMultipleMirrors",
                 ("mirror-a", "mirror-b")),
    Case("GatewayWithPort8080", PROFILE, (*CORE, "GatewayPort8080"), (
        *GATEWAY_BASE,
        {"apiVersion": GATEWAY_API, "kind": "Gateway",
         "metadata": {"name": PORT_8080, "namespace": INFRA},
         "spec": {"gatewayClassName": "tulle",
                  "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}]}},
        http_route(INFRA, "port-8080", {"name": PORT_8080, "sectionName": "http"},
                   [{"matches": [prefix("/")], "backendRefs": [backend(V2)]}])),
        lambda lab: expect_all(
            lab, INFRA, "client", f"http://{gateway_address(lab, INFRA, PORT_8080)}:8080",
            [Expect(path="/port-8080", backend=V2)])),
]
