"""GATEWAY-GRPC and MESH-GRPC: GRPCRoutes on a Gateway listener and on a Service, called
with a real gRPC client (grpcio) from a pod. Each case owns a gRPC service name, so they can
be applied together (upstream conformance/tests/grpcroute-*.go, mesh/)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conformance.case import Case, CaseFailed
from conformance.cases.common import (
    GATEWAY_API,
    backend,
    deployment_of,
    gateway_address,
    namespace,
    route,
)
from conformance.lab import GRPC_PYTHON, Lab, eventually

NS = "gateway-conformance-grpc"
GATEWAY = "grpc-gateway"
PORT = 50051
KINDS = ("GRPCRoute",)

# Answers every method of the services the cases use with its pod's name.
SERVER = """
import os
from concurrent import futures
import grpc
name = os.environ["POD_NAME"].encode()
handlers = [grpc.method_handlers_generic_handler(service, {
    m: grpc.unary_unary_rpc_method_handler(lambda request, context: name)
    for m in ("SayHello", "SayBye", "Call")})
    for service in ("helloworld.Greeter", "conformance.Header", "conformance.Named")]
server = grpc.server(futures.ThreadPoolExecutor(4))
server.add_generic_rpc_handlers(handlers)
server.add_insecure_port("0.0.0.0:50051")
server.start()
server.wait_for_termination()
"""


def _server(name: str) -> dict[str, Any]:
    container = {"name": name, "image": "tulle/echo", "command": [GRPC_PYTHON, "-c", SERVER],
                 "ports": [{"name": "grpc", "containerPort": PORT}]}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name, "svc": "grpc"}},
                                  "spec": {"containers": [container]}}}}


def _service(name: str, selector: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": {"selector": selector, "ports": [{"name": "grpc", "port": PORT,
                                                      "targetPort": "grpc"}]}}


def _client() -> dict[str, Any]:
    container = {"name": "client", "image": "tulle/echo",
                 "ports": [{"name": "http", "containerPort": 8080}]}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "client", "namespace": NS},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "client"}},
                     "template": {"metadata": {"labels": {"app": "client"}},
                                  "spec": {"containers": [container]}}}}


BASE: tuple[dict[str, Any], ...] = (
    namespace(NS), _server("grpc-v1"), _server("grpc-v2"), _client(),
    _service("grpc", {"svc": "grpc"}), _service("grpc-v1", {"app": "grpc-v1"}),
    _service("grpc-v2", {"app": "grpc-v2"}),
    {"apiVersion": GATEWAY_API, "kind": "Gateway", "metadata": {"name": GATEWAY, "namespace": NS},
     "spec": {"gatewayClassName": "tulle",
              "listeners": [{"name": "grpc", "port": 80, "protocol": "HTTP"}]}},
)
GATEWAY_PARENT = {"name": GATEWAY, "sectionName": "grpc"}
MESH_PARENT = {"group": "", "kind": "Service", "name": "grpc", "port": PORT}
V1, V2 = backend("grpc-v1", PORT), backend("grpc-v2", PORT)


def _method(service: str, method: str | None = None, type_: str = "Exact") -> dict[str, Any]:
    match: dict[str, Any] = {"type": type_, "service": service}
    if method:
        match["method"] = method
    return {"method": match}


# (method, metadata, the answer wanted: a backend's name prefix or a gRPC status name)
Call = tuple[str, list[list[str]], str]


def _expect(target: str, calls: list[Call]) -> Callable[[Lab], None]:
    def check(lab: Lab) -> None:
        pod = lab.pod(NS, "client")
        where = target if target != "gateway" else f"{gateway_address(lab, NS, GATEWAY)}:80"
        if target == "mesh":
            where = f"grpc.{NS}:{PORT}"

        def once() -> None:
            got = lab.grpc(NS, pod, where, [{"method": m, "metadata": md} for m, md, _ in calls])
            problems = []
            for (m, md, want), answer in zip(calls, got, strict=True):
                ok = (answer["code"] == "OK" and deployment_of(answer["reply"]) == want) \
                    if want.startswith("grpc-") else answer["code"] == want
                if not ok:
                    problems.append(f"{m} {md}: {answer}, want {want}")
            if problems:
                raise CaseFailed("; ".join(problems))

        eventually(once, timeout=40)
    return check


def _case(profile: str, name: str, core: tuple[str, ...], features: tuple[str, ...],
          parent: dict[str, Any], target: str, rules: list[dict[str, Any]],
          calls: list[Call]) -> Case:
    manifest = route("GRPCRoute", NS, name.lower(), parent, rules)
    return Case(name, profile, core + features, (*BASE, manifest), _expect(target, calls),
                kinds=KINDS)


GATEWAY_CORE = ("Gateway", "GRPCRoute")
MESH_CORE = ("Mesh", "GRPCRoute")
CASES = [
    _case("GATEWAY-GRPC", "GRPCExactMethodMatching", GATEWAY_CORE, (), GATEWAY_PARENT,
          "gateway", [
              {"matches": [_method("helloworld.Greeter", "SayHello")], "backendRefs": [V1]},
              {"matches": [_method("helloworld.Greeter", "SayBye")], "backendRefs": [V2]},
          ], [("/helloworld.Greeter/SayHello", [], "grpc-v1"),
              ("/helloworld.Greeter/SayBye", [], "grpc-v2"),
              ("/helloworld.Greeter/Unknown", [], "UNIMPLEMENTED")]),
    _case("GATEWAY-GRPC", "GRPCRouteHeaderMatching", GATEWAY_CORE, (), GATEWAY_PARENT,
          "gateway", [
              {"matches": [{**_method("conformance.Header"),
                            "headers": [{"name": "version", "value": "two"}]}],
               "backendRefs": [V2]},
              {"matches": [_method("conformance.Header")], "backendRefs": [V1]},
          ], [("/conformance.Header/Call", [["version", "two"]], "grpc-v2"),
              ("/conformance.Header/Call", [["version", "one"]], "grpc-v1")]),
    _case("GATEWAY-GRPC", "GRPCRouteNamedRule", GATEWAY_CORE, ("GRPCRouteNamedRouteRule",),
          GATEWAY_PARENT, "gateway", [
              {"name": "named-rule", "matches": [_method("conformance.Named", "Call")],
               "backendRefs": [V2]},
          ], [("/conformance.Named/Call", [], "grpc-v2")]),
    _case("MESH-GRPC", "MeshGRPCRouteMethodMatching", MESH_CORE, (), MESH_PARENT, "mesh", [
        {"matches": [_method("helloworld.Greeter", "SayHello")], "backendRefs": [V1]},
        {"matches": [_method("helloworld.Greeter", "SayBye")], "backendRefs": [V2]},
    ], [("/helloworld.Greeter/SayHello", [], "grpc-v1"),
        ("/helloworld.Greeter/SayBye", [], "grpc-v2"),
        ("/helloworld.Greeter/Unknown", [], "UNIMPLEMENTED")]),
]
