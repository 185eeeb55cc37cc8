"""BackendTrafficPolicy in a live lab, through real pods and the client node's waypoint:
an endpoint answering 503 is ejected (the waypoint's metrics say so) and, once its ejection
time is over, comes back into the choice; requests beyond the connection-pool limits get
503 with Envoy's overflow answer and a DROPPED flow with reason UPSTREAM_OVERFLOW."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import Lab
from .test_datapath import PY, apply, deployment, namespace, pods_of, run_py, service, wait_for

pytestmark = pytest.mark.netns
NS = "resil"

SICK_SERVER = r"""
import http.server, json, os, sys
healed = sys.argv[1]
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        code = 200 if os.path.exists(healed) else 503
        body = json.dumps({"pod": os.environ["POD_NAME"]}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
"""

# n requests, sequential or all at once: [[status, pod, x-envoy-overloaded], ...]
REQUESTS = r"""
import http.client, json, sys, threading
host, path, n, together = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
out = [None] * n
def one(i):
    try:
        c = http.client.HTTPConnection(host, 80, timeout=20)
        c.request("GET", path, headers={"Connection": "close"})
        r = c.getresponse()
        body = r.read()
        try:
            pod = json.loads(body).get("pod", "")
        except ValueError:
            pod = body.decode("latin-1")[:200]
        out[i] = [r.status, pod, r.getheader("x-envoy-overloaded") or ""]
        c.close()
    except Exception as e:
        out[i] = [0, repr(e), ""]
if together:
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
else:
    for i in range(n):
        one(i)
print(json.dumps(out))
"""


def route(name: str) -> dict[str, Any]:
    ref = {"group": "", "kind": "Service", "name": name, "port": 80}
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"parentRefs": [ref], "rules": [{"backendRefs": [{"name": name, "port": 80}]}]}}


def policy(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "policy.tulle.io/v1alpha1", "kind": "BackendTrafficPolicy",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": name}], **spec}}


@pytest.fixture(scope="module")
def mesh(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    healed = tmp_path_factory.mktemp("resilience") / "healed"
    good = deployment(NS, "good", 1, labels={"svc": "flaky"}, node="node2")
    sick = deployment(NS, "sick", 1, labels={"svc": "flaky"}, node="node2",
                      command=[PY, "-c", SICK_SERVER, str(healed)])
    flaky = service(NS, "flaky")
    flaky["spec"]["selector"] = {"svc": "flaky"}
    apply(lab, namespace(NS), good, sick, deployment(NS, "busy", 1, node="node2"),
          deployment(NS, "client", 1, node="node1"), flaky, service(NS, "busy"),
          route("flaky"), route("busy"),
          policy("flaky", outlierDetection={
              "consecutive5xxErrors": 1, "interval": "1s", "baseEjectionTime": "10s",
              "maxEjectionPercent": 50}),
          policy("busy", connectionPool={
              "tcp": {"maxConnections": 1}, "http": {"http1MaxPendingRequests": 1}}))
    lab.wait_pods_ready(NS, 4, timeout=90)
    client = pods_of(lab, NS, "client")[0]["metadata"]["name"]

    def accepted() -> bool:
        policies = lab.get("backendtrafficpolicies", NS)
        conditions = [c for p in policies for a in (p.get("status") or {}).get("ancestors", [])
                      for c in a["conditions"]]
        return len(conditions) == 2 and all(c["status"] == "True" for c in conditions)

    wait_for(accepted, timeout=30, what="both policies Accepted")

    def served() -> bool:  # the waypoint has the routes and the pool policy (busy: overflow)
        codes = [r[0] for r in requests(lab, client, "busy", "/?delay=1s", 4, together=True)]
        return 200 in codes and 503 in codes

    wait_for(served, timeout=60, what="the busy route served with its pool limits")
    return {"client": client, "healed": healed}


def requests(lab: Lab, client: str, host: str, path: str, n: int, *, together: bool = False
             ) -> list[list[Any]]:
    out = run_py(lab, NS, client, REQUESTS, f"{host}.{NS}", path, n, "1" if together else "0")
    assert isinstance(out, list)
    return out


def waypoint_metric(lab: Lab, name: str, backend: str) -> float | None:
    out = subprocess.run(
        ["nsenter", f"--net=/var/run/netns/tulle-{lab.name}-node1", "--", "curl", "-s",
         "--max-time", "5", "http://127.0.0.1:9966/metrics"],
        capture_output=True, text=True, timeout=30, check=True).stdout
    for line in out.splitlines():
        if line.startswith(f'{name}{{backend="{backend}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_backend_answering_503_is_ejected_and_comes_back(lab: Lab, mesh: dict[str, Any]) -> None:
    client, backend = mesh["client"], f"{NS}/flaky:80"
    # good answers after 100 ms; sick at once, with 503, until healed
    seen: list[list[Any]] = []
    wait_for(lambda: seen.extend(requests(lab, client, "flaky", "/?delay=100ms", 4))
             or any(r[0] == 503 for r in seen), timeout=60, what="a 503 from the sick pod")
    assert waypoint_metric(lab, "tulle_waypoint_outlier_ejections_active", backend) == 1.0
    after = requests(lab, client, "flaky", "/?delay=100ms", 10)
    assert all(r[0] == 200 and r[1].startswith("good") for r in after), after
    Path(mesh["healed"]).touch()
    time.sleep(11.5)  # past the 10 s ejection time and the next 1 s sweep
    back = requests(lab, client, "flaky", "/?delay=100ms", 10)
    assert all(r[0] == 200 for r in back), back
    # back in the choice, and answering in 1 ms to good's 100: it takes most requests
    assert sum(r[1].startswith("sick") for r in back) >= 5, back
    assert waypoint_metric(lab, "tulle_waypoint_outlier_ejections_active", backend) == 0.0
    assert (waypoint_metric(lab, "tulle_waypoint_outlier_ejections_total", backend) or 0) >= 1


def test_pool_overflow_gives_503s_with_a_flow_reason(lab: Lab, mesh: dict[str, Any]) -> None:
    out = requests(lab, mesh["client"], "busy", "/overflow?delay=2s", 6, together=True)
    ok = [r for r in out if r[0] == 200]
    overflowed = [r for r in out if r[0] == 503]
    # one in flight, one waiting for it (http1MaxPendingRequests 1), the rest over the limit
    assert len(ok) == 2 and len(overflowed) == 4, out
    assert all(r[2] == "true" and "overflow" in r[1] for r in overflowed), overflowed
    time.sleep(1.5)  # flows reach the agent in batches
    flows = lab.tulle("observe", "--last", "500", "--verdict", "DROPPED", "--http-path",
                      "/overflow", "-o", "json").stdout
    reasons = [json.loads(line)["flow"].get("drop_reason_desc") for line in flows.splitlines()
               if line.strip()]
    assert reasons.count("UPSTREAM_OVERFLOW") >= 4, reasons
