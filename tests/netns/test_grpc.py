"""GRPCRoute in a live lab (issue 16 item 1), with real grpcio servers and clients in pods:
method-based routing to two backends through a Service (GAMMA, behind eBPF redirection)
and through a Gateway listener, UNIMPLEMENTED for a method no rule matches, status on the
routes, and the L7 flow with the call's grpc-status in `tulle observe`."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import pytest
import yaml

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, service, wait_for

pytestmark = pytest.mark.netns
NS = "grpcns"
PY = sys.executable  # the project's environment, which has grpcio (pyproject.toml)
PORT = 50051

SERVER = """
import os
from concurrent import futures
import grpc
name = os.environ["POD_NAME"].encode()
methods = {m: grpc.unary_unary_rpc_method_handler(lambda request, context: name)
           for m in ("SayHello", "SayBye")}
server = grpc.server(futures.ThreadPoolExecutor(4))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("helloworld.Greeter", methods),))
server.add_insecure_port("0.0.0.0:50051")
server.start()
server.wait_for_termination()
"""

CLIENT = """
import json, sys
import grpc
target, *methods = sys.argv[1:]
out = []
with grpc.insecure_channel(target) as channel:
    for method in methods:
        try:
            reply = channel.unary_unary(method)(b"x", timeout=5)
            out.append(["OK", reply.decode()])
        except grpc.RpcError as err:
            out.append([err.code().name, err.details()])
print(json.dumps(out))
"""


def grpc_route(name: str, parent: dict[str, Any], rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"parentRefs": [parent], "rules": rules}}


def method(service: str, name: str | None = None) -> list[dict[str, Any]]:
    match: dict[str, Any] = {"service": service}
    if name:
        match["method"] = name
    return [{"method": match}]


V1 = {"name": "greeter-v1", "port": PORT}
V2 = {"name": "greeter-v2", "port": PORT}
RULES = [
    {"name": "hello", "matches": method("helloworld.Greeter", "SayHello"), "backendRefs": [V1]},
    {"name": "rest", "matches": method("helloworld.Greeter"), "backendRefs": [V2]},
]


def _server(name: str) -> dict[str, Any]:
    d = deployment(NS, name, 1, command=[PY, "-c", SERVER], labels={"svc": "greeter"},
                   ports=[{"name": "grpc", "containerPort": PORT}], node="node2")
    return d


@pytest.fixture(scope="module")
def mesh(lab: Lab) -> dict[str, Any]:
    gateway = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "edge", "namespace": NS},
               "spec": {"gatewayClassName": "tulle",
                        "listeners": [{"name": "grpc", "port": 80, "protocol": "HTTP"}]}}
    greeter = service(NS, "greeter", PORT, "grpc")
    greeter["spec"]["selector"] = {"svc": "greeter"}
    apply(lab, namespace(NS), _server("greeter-v1"), _server("greeter-v2"),
          deployment(NS, "client", 1, node="node1"), greeter,
          service(NS, "greeter-v1", PORT, "grpc"), service(NS, "greeter-v2", PORT, "grpc"),
          gateway,
          grpc_route("mesh", {"group": "", "kind": "Service", "name": "greeter", "port": PORT},
                     RULES),
          grpc_route("edge", {"name": "edge", "sectionName": "grpc"}, RULES))
    lab.wait_pods_ready(NS, 3, timeout=90)
    client = pods_of(lab, NS, "client")[0]["metadata"]["name"]
    ip = next(s for s in lab.get("services", NS)
              if s["metadata"]["name"] == "greeter")["spec"]["clusterIP"]
    mesh = {"client": client, "service": f"{ip}:{PORT}"}

    def served() -> Any:
        out = call(lab, mesh, mesh["service"], "/helloworld.Greeter/SayBye")
        return out[0][0] == "OK" and out[0][1].startswith("greeter-v2")

    wait_for(served, timeout=40, what="the GRPCRoute is served")
    gw = wait_for(lambda: (lab.get("gateways", NS)[0].get("status") or {}).get("addresses"),
                  what="gateway address")
    mesh["gateway"] = f"{gw[0]['value']}:80"
    return mesh


def call(lab: Lab, mesh: dict[str, Any], target: str, *methods: str) -> list[list[str]]:
    out = lab.exec(NS, mesh["client"], PY, "-c", CLIENT, target, *methods, timeout=60).stdout
    result: list[list[str]] = json.loads(out.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("through", ["service", "gateway"])
def test_methods_route_to_two_backends(lab: Lab, mesh: dict[str, Any], through: str) -> None:
    hello, bye, other = call(lab, mesh, mesh[through], "/helloworld.Greeter/SayHello",
                             "/helloworld.Greeter/SayBye", "/other.Service/Call")
    assert hello[0] == "OK" and hello[1].startswith("greeter-v1"), hello
    assert bye[0] == "OK" and bye[1].startswith("greeter-v2"), bye
    assert other[0] == "UNIMPLEMENTED", other  # no rule matches: the waypoint's own answer


def test_grpcroutes_report_accepted_and_resolved_refs(lab: Lab, mesh: dict[str, Any]) -> None:
    out = yaml.safe_load(lab.tulle("get", "grpcroute", "-n", NS, "-o", "yaml").stdout)
    assert sorted(i["metadata"]["name"] for i in out["items"]) == ["edge", "mesh"]
    for item in out["items"]:
        conds = {c["type"]: c for c in item["status"]["parents"][0]["conditions"]}
        assert conds["Accepted"]["status"] == "True" and conds["ResolvedRefs"]["status"] == "True"
    gw = lab.get("gateways", NS)[0]
    listener = gw["status"]["listeners"][0]
    assert {"group": "gateway.networking.k8s.io", "kind": "GRPCRoute"} in listener["supportedKinds"]
    assert listener["attachedRoutes"] == 1


def test_grpc_flows_show_service_method_and_status(lab: Lab, mesh: dict[str, Any]) -> None:
    call(lab, mesh, mesh["service"], "/helloworld.Greeter/SayHello", "/other.Service/Observed")
    time.sleep(1.0)
    out = lab.tulle("observe", "--last", "100", "-t", "l7", "--from-pod",
                    f"{NS}/{mesh['client']}", "-o", "json").stdout
    flows = [json.loads(line)["flow"] for line in out.splitlines() if line.strip()]

    def last(path: str) -> dict[str, Any]:
        found = [f for f in flows if f["l7"]["http"].get("url", "").endswith(path)]
        assert found, out
        return found[-1]

    hello, other = last("/helloworld.Greeter/SayHello"), last("/other.Service/Observed")
    assert hello["l7"]["http"]["protocol"] == "HTTP/2"
    assert hello["l7"]["http"]["headers"] == [{"key": "grpc-status", "value": "0"}]
    assert hello["tulle"]["rule"] == f"{NS}/mesh#hello"
    assert hello["tulle"]["backend"].startswith(f"{NS}/greeter-v1")
    assert other["l7"]["http"]["headers"] == [{"key": "grpc-status", "value": "12"}]
    assert other["verdict"] == "DROPPED"
