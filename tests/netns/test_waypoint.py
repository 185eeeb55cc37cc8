"""The waypoint in a live lab: GAMMA routes on Services and a Gateway, behind eBPF
redirection, and proof that Services without L7 needs never reach it."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from typing import Any

import pytest
import yaml

from lab.state import LabPaths

from . import clients
from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, run_py, service, wait_for

pytestmark = pytest.mark.netns
NS = "mesh"


def route(name: str, parent: dict[str, Any], rules: list[dict[str, Any]],
          hostnames: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"parentRefs": [parent], "rules": rules}
    if hostnames:
        spec["hostnames"] = hostnames
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}


def prefix(path: str) -> list[dict[str, Any]]:
    return [{"path": {"type": "PathPrefix", "value": path}}]


V1 = {"name": "echo-v1", "port": 80}
V2 = {"name": "echo-v2", "port": 80}
SERVICE_PARENT = {"group": "", "kind": "Service", "name": "echo", "port": 80}
RULES = [
    {"matches": [{"headers": [{"name": "x-version", "value": "v2"}]}], "backendRefs": [V2]},
    {"matches": prefix("/redirect"), "filters": [{"type": "RequestRedirect", "requestRedirect": {
        "path": {"type": "ReplaceFullPath", "replaceFullPath": "/moved"}, "statusCode": 302}}]},
    {"matches": prefix("/old"), "backendRefs": [V1], "filters": [{"type": "URLRewrite", "urlRewrite": {
        "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"}}}]},
    {"matches": prefix("/slow"), "backendRefs": [V1], "timeouts": {"request": "500ms"}},
    {"matches": prefix("/retry"), "backendRefs": [V1],
     "retry": {"codes": [503], "attempts": 3, "backoff": "10ms"}},
    {"matches": prefix("/mirror"), "backendRefs": [V1], "filters": [
        {"type": "RequestMirror", "requestMirror": {"backendRef": V2}}]},
    {"backendRefs": [{**V1, "weight": 80}, {**V2, "weight": 20}]},
]


@pytest.fixture(scope="module")
def mesh(lab: Lab) -> dict[str, Any]:
    gateway = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "web", "namespace": NS},
               "spec": {"gatewayClassName": "tulle",
                        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}
    v1 = deployment(NS, "echo-v1", 1, labels={"svc": "echo"}, node="node2")
    v2 = deployment(NS, "echo-v2", 1, labels={"svc": "echo"}, node="node2")
    echo = service(NS, "echo")
    echo["spec"]["selector"] = {"svc": "echo"}
    apply(lab, namespace(NS), v1, v2, deployment(NS, "client", 1, node="node1"), echo,
          service(NS, "echo-v1"), service(NS, "echo-v2"), gateway,
          route("split", SERVICE_PARENT, RULES),
          route("site", {"name": "web", "sectionName": "http"},
                [{"matches": prefix("/"), "backendRefs": [V1]}], hostnames=["web.example"]))
    lab.wait_pods_ready(NS, 3, timeout=90)
    client = pods_of(lab, NS, "client")[0]["metadata"]["name"]

    def ready() -> Any:
        r = lab.exec(NS, client, "curl", "-s", "--max-time", "2", "-H", "x-version: v2",
                     "http://echo.mesh/", check=False)
        return r.returncode == 0 and '"echo-v2' in r.stdout

    wait_for(ready, timeout=30, what="the route is served")
    gw = wait_for(lambda: (lab.get("gateways", NS)[0].get("status") or {}).get("addresses"),
                  what="gateway address")
    return {"client": client, "gateway": gw[0]["value"]}


def curl(lab: Lab, mesh: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return lab.exec(NS, mesh["client"], "curl", "-s", "--max-time", "5", *args, check=False)


def echo(lab: Lab, mesh: dict[str, Any], url: str, *args: str) -> dict[str, Any]:
    out = curl(lab, mesh, *args, url)
    assert out.returncode == 0, out
    return json.loads(out.stdout)


def test_gamma_weighted_split_called_by_name_from_the_other_node(lab: Lab, mesh: dict[str, Any]) -> None:
    result = run_py(lab, NS, mesh["client"], clients.HTTP_SPREAD, "echo.mesh", 80, 300)
    assert result["failed"] == 0, result
    v1 = sum(n for pod, n in result["pods"].items() if pod.startswith("echo-v1"))
    assert 0.70 <= v1 / 300 <= 0.90, result["pods"]


def test_header_based_routing(lab: Lab, mesh: dict[str, Any]) -> None:
    for _ in range(10):
        assert echo(lab, mesh, "http://echo.mesh/any", "-H", "x-version: v2")["pod"].startswith("echo-v2")


def test_waypoint_adds_forwarded_headers(lab: Lab, mesh: dict[str, Any]) -> None:
    body = echo(lab, mesh, "http://echo.mesh/hdr", "-H", "traceparent: 00-abc-def-01")
    assert body["headers"]["X-Forwarded-Proto"] == ["http"]
    assert body["headers"]["X-Forwarded-For"]
    assert body["headers"]["Traceparent"] == ["00-abc-def-01"]


def test_redirect_and_rewrite(lab: Lab, mesh: dict[str, Any]) -> None:
    head = curl(lab, mesh, "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "http://echo.mesh/redirect/x")
    assert head.stdout == "302 http://echo.mesh/moved"
    assert echo(lab, mesh, "http://echo.mesh/old/thing?q=1")["path"] == "/new/thing?q=1"


def test_request_timeout_gives_504(lab: Lab, mesh: dict[str, Any]) -> None:
    started = time.monotonic()
    code = curl(lab, mesh, "-o", "/dev/null", "-w", "%{http_code}", "http://echo.mesh/slow?delay=3s").stdout
    assert code == "504"
    assert time.monotonic() - started < 2.5


def test_retries_reach_a_backend_that_succeeds_after_failures(lab: Lab, mesh: dict[str, Any]) -> None:
    token = uuid.uuid4().hex
    ok = curl(lab, mesh, "-o", "/dev/null", "-w", "%{http_code}",
              f"http://echo.mesh/retry?uuid={token}&succeedAfter=2&responseCode=503").stdout
    assert ok == "200"
    token = uuid.uuid4().hex
    exhausted = curl(lab, mesh, "-o", "/dev/null", "-w", "%{http_code}",
                     f"http://echo.mesh/retry?uuid={token}&succeedAfter=9&responseCode=503").stdout
    assert exhausted == "503"


def test_mirror_sends_a_copy_to_v2(lab: Lab, mesh: dict[str, Any]) -> None:
    marker = uuid.uuid4().hex
    assert echo(lab, mesh, f"http://echo.mesh/mirror/{marker}")["pod"].startswith("echo-v1")
    v2 = pods_of(lab, NS, "echo-v2")[0]["metadata"]["name"]
    log = LabPaths.for_lab(lab.name).pod_log(NS, v2, "echo-v2")
    wait_for(lambda: marker in log.read_text(), timeout=10, what="mirrored request logged by v2")


def test_gateway_http_listener_from_a_pod(lab: Lab, mesh: dict[str, Any]) -> None:
    body = echo(lab, mesh, f"http://{mesh['gateway']}/gw", "-H", "Host: web.example")
    assert body["pod"].startswith("echo-v1") and body["path"] == "/gw"
    other = curl(lab, mesh, "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: nope.example",
                 f"http://{mesh['gateway']}/").stdout
    assert other == "404"
    gw = lab.get("gateways", NS)[0]
    conditions = {c["type"]: c["status"] for c in gw["status"]["conditions"]}
    assert conditions["Programmed"] == "True"
    assert gw["status"]["listeners"][0]["attachedRoutes"] == 1


def test_routes_report_accepted_and_resolved_refs(lab: Lab, mesh: dict[str, Any]) -> None:
    out = yaml.safe_load(lab.tulle("get", "httproute", "-n", NS, "-o", "yaml").stdout)
    for item in out["items"]:
        conds = {c["type"]: c for c in item["status"]["parents"][0]["conditions"]}
        assert conds["Accepted"]["status"] == "True" and conds["ResolvedRefs"]["status"] == "True"


def _waypoint_requests(lab: Lab) -> float:
    text = subprocess.run(["ip", "netns", "exec", f"tulle-{lab.name}-node1", "curl", "-s",
                           "http://127.0.0.1:9966/metrics"], capture_output=True, text=True).stdout
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("tulle_waypoint_requests_total"))


def test_a_service_without_routes_never_touches_the_waypoint(lab: Lab, mesh: dict[str, Any]) -> None:
    before = _waypoint_requests(lab)
    for _ in range(20):
        body = echo(lab, mesh, "http://echo-v1.mesh/direct")
        assert "X-Forwarded-For" not in body["headers"]
    assert _waypoint_requests(lab) == before
    echo(lab, mesh, "http://echo.mesh/via-waypoint")
    assert _waypoint_requests(lab) > before  # the counter does move for routed Services




def test_l7_flows_show_in_observe_with_route_and_client(lab: Lab, mesh: dict[str, Any]) -> None:
    echo(lab, mesh, "http://echo.mesh/observed", "-H", "x-version: v2")
    time.sleep(1.0)
    out = lab.tulle("observe", "--last", "50", "-t", "l7", "--from-pod", f"{NS}/{mesh['client']}",
                    "--http-path", "/observed", "-o", "json").stdout
    flows = [json.loads(line)["flow"] for line in out.splitlines() if line.strip()]
    assert flows, out
    f = flows[-1]
    assert f["Type"] == "L7" and f["verdict"] == "FORWARDED"
    assert f["l7"]["http"]["code"] == 200 and f["l7"]["http"]["method"] == "GET"
    assert f["source"]["pod_name"] == mesh["client"] and f["source"]["identity"] > 255
    assert f["tulle"]["route"] == f"{NS}/split" and f["tulle"]["backend"].startswith(f"{NS}/echo-v2")
    assert int(f["l7"]["latency_ns"]) > 0


# -- GAMMA consumer routes (issue 9 item 3) ------------------------------------------------
# Service gy/api (HTTP on 80, a server-first raw TCP stream on 9000) has no routes of its own;
# namespace gx adds a consumer route on every port. Clients in gx get it; clients in gz keep
# plain L4, so they get a plain 200 and the raw port works for them.

def consumer_route() -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "mine", "namespace": "gx"},
            "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "api", "namespace": "gy"}],
                     "rules": [{"filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
                         "add": [{"name": "X-Consumer", "value": "gx"}]}}],
                         "backendRefs": [{"name": "api", "namespace": "gy", "port": 80}]}]}}


@pytest.fixture(scope="module")
def consumers(lab: Lab) -> dict[str, Any]:
    api = deployment("gy", "api", 1, node="node1")
    api["spec"]["template"]["spec"]["containers"].append(
        {"name": "raw", "image": "tulle/echo", "command": ["/usr/bin/python3", "-c", clients.STREAM_SERVER],
         "ports": [{"name": "raw", "containerPort": 9000}]})
    svc = service("gy", "api")
    svc["spec"]["ports"].append({"name": "raw", "port": 9000, "targetPort": "raw", "protocol": "TCP"})
    grant = {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
             "metadata": {"name": "from-gx", "namespace": "gy"},
             "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "gx"}],
                      "to": [{"group": "", "kind": "Service"}]}}
    apply(lab, namespace("gx"), namespace("gy"), namespace("gz"), api, svc, grant,
          deployment("gx", "cx", 1, node="node2"), deployment("gx", "cx1", 1, node="node1"),
          deployment("gz", "cz", 1, node="node2"), deployment("gz", "cz1", 1, node="node1"),
          consumer_route())
    for ns, count in (("gy", 1), ("gx", 2), ("gz", 2)):
        lab.wait_pods_ready(ns, count, timeout=90)
    pods = {app: (ns, pods_of(lab, ns, app)[0]["metadata"]["name"])
            for ns, app in (("gx", "cx"), ("gx", "cx1"), ("gz", "cz"), ("gz", "cz1"))}
    wait_for(lambda: consumer_header(lab, *pods["cx"]) == ["gx"], timeout=30,
             what="the consumer route served to gx")
    return pods


def consumer_header(lab: Lab, ns: str, pod: str) -> Any:
    out = lab.exec(ns, pod, "curl", "-s", "--max-time", "3", "http://api.gy/", check=False)
    if out.returncode != 0:
        return f"curl failed: {out.returncode} {out.stdout[-200:]}"
    try:
        return json.loads(out.stdout)["headers"].get("X-Consumer")
    except ValueError:
        return f"not JSON: {out.stdout[-200:]}"


RAW_READ = r"""
import json, socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
data = b""
while b"\n" not in data:
    chunk = s.recv(256)
    if not chunk:
        break
    data += chunk
print(json.dumps(data.split(b"\n")[0].decode(errors="replace")))
"""


@pytest.mark.parametrize("client", ["cx", "cx1", "cz", "cz1"])
def test_consumer_route_serves_its_namespace_only(lab: Lab, consumers: dict[str, Any], client: str) -> None:
    ns, pod = consumers[client]
    expected = ["gx"] if ns == "gx" else None
    assert consumer_header(lab, ns, pod) == expected


@pytest.mark.parametrize("client", ["cz", "cz1"])
def test_other_namespaces_keep_the_raw_port(lab: Lab, consumers: dict[str, Any], client: str) -> None:
    ns, pod = consumers[client]
    banner = run_py(lab, ns, pod, RAW_READ, "api.gy", 9000, timeout=20)
    assert banner.startswith("api-"), banner
