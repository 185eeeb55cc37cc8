"""Fault injection and retry budgets in a live lab, through real pods and the client node's
waypoint: an HTTPFault abort at 50% over 200 requests fires within a binomial bound, each
with a FAULT_ABORT flow; a delay holds every request at least its time; a GEP-3388 retry
budget caps the retries a failing backend sees (requests it saw vs the client's)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from .conftest import Lab
from .test_datapath import PY, apply, deployment, namespace, pods_of, run_py, service, wait_for
from .test_resilience import waypoint_metric

pytestmark = pytest.mark.netns
NS = "faults"
POL = "policy.tulle.io/v1alpha1"

# answers 503 to everything; one line per request in the file: "via" when the request came
# through the waypoint (it adds X-Forwarded-For), "direct" when it did not
FAILING_SERVER = r"""
import http.server, sys
log = sys.argv[1]
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        with open(log, "a") as f:
            f.write(("via" if self.headers.get("X-Forwarded-For") else "direct") + "\n")
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
"""

# n sequential requests: [[status, body (200 bytes at most), seconds], ...]
REQUESTS = r"""
import http.client, json, sys, time
host, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = []
for i in range(n):
    started = time.monotonic()
    try:
        c = http.client.HTTPConnection(host, 80, timeout=20)
        c.request("GET", path, headers={"Connection": "close"})
        r = c.getresponse()
        out.append([r.status, r.read()[:200].decode("latin-1"), time.monotonic() - started])
        c.close()
    except Exception as e:
        out.append([0, repr(e), time.monotonic() - started])
print(json.dumps(out))
"""


def extension(name: str) -> dict[str, Any]:
    ref = {"group": "policy.tulle.io", "kind": "HTTPFault", "name": name}
    return {"type": "ExtensionRef", "extensionRef": ref}


def echo_route() -> dict[str, Any]:
    parent = {"group": "", "kind": "Service", "name": "echo", "port": 80}
    backends = [{"name": "echo", "port": 80}]
    rules = [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/abort"}}],
         "filters": [extension("half")], "backendRefs": backends},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/delay"}}],
         "filters": [extension("slow")], "backendRefs": backends},
        {"backendRefs": backends},
    ]
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "echo", "namespace": NS},
            "spec": {"parentRefs": [parent], "rules": rules}}


def failing_route() -> dict[str, Any]:
    parent = {"group": "", "kind": "Service", "name": "failing", "port": 80}
    rule = {"retry": {"attempts": 2, "codes": [503], "backoff": "1ms"},
            "backendRefs": [{"name": "failing", "port": 80}]}
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "failing", "namespace": NS},
            "spec": {"parentRefs": [parent], "rules": [rule]}}


def fault(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": POL, "kind": "HTTPFault", "metadata": {"name": name, "namespace": NS},
            "spec": spec}


# A window of an hour: nothing leaves it during the test, so the allowance is exact:
# 20% of the requests seen, and one retry from the floor.
BUDGET = {"budget": {"percent": 20, "interval": "1h"},
          "minRetryRate": {"count": 1, "interval": "1h"}}


@pytest.fixture(scope="module")
def mesh(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    log = tmp_path_factory.mktemp("faults") / "failing.log"
    log.touch()
    apply(lab, namespace(NS),
          deployment(NS, "echo", 1, node="node2"),
          deployment(NS, "failing", 1, node="node2", command=[PY, "-c", FAILING_SERVER, str(log)]),
          deployment(NS, "client", 1, node="node1"),
          service(NS, "echo"), service(NS, "failing"), echo_route(), failing_route(),
          fault("half", abort={"httpStatus": 503, "percentage": {"value": 50}}),
          fault("slow", delay={"fixedDelay": "300ms"}),
          {"apiVersion": POL, "kind": "BackendTrafficPolicy",
           "metadata": {"name": "failing", "namespace": NS},
           "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "failing"}],
                    "retryConstraint": BUDGET}})
    lab.wait_pods_ready(NS, 3, timeout=90)
    client = pods_of(lab, NS, "client")[0]["metadata"]["name"]

    def resolved() -> bool:
        routes = {r["metadata"]["name"]: r for r in lab.get("httproutes", NS)}
        echo = routes.get("echo", {}).get("status", {}).get("parents", [])
        conditions = {c["type"]: c["status"] for p in echo for c in p["conditions"]}
        return conditions.get("ResolvedRefs") == "True"

    wait_for(resolved, timeout=30, what="the echo route's HTTPFault references resolved")
    # the waypoint serves the route once the slow fault holds requests
    wait_for(lambda: requests(lab, client, "echo", "/delay", 1)[0][2] >= 0.3, timeout=60,
             what="the delay fault served")
    warm = 0

    def via_waypoint() -> bool:
        nonlocal warm
        warm += 1
        requests(lab, client, "failing", "/", 1)
        return "via" in log.read_text().split()

    wait_for(via_waypoint, timeout=60, what="the failing route served by the waypoint")
    return {"client": client, "log": log, "warm": warm}


def requests(lab: Lab, client: str, host: str, path: str, n: int) -> list[list[Any]]:
    out = run_py(lab, NS, client, REQUESTS, f"{host}.{NS}", path, n)
    assert isinstance(out, list)
    return out


def test_an_abort_fires_at_its_percentage(lab: Lab, mesh: dict[str, Any]) -> None:
    n = 200
    out = requests(lab, mesh["client"], "echo", "/abort", n)
    aborted = [r for r in out if r[0] == 503]
    assert all(r[0] in (200, 503) for r in out), out
    assert all(r[1] == "fault filter abort\n" for r in aborted), aborted[:3]
    # Binomial(200, 0.5): 5 standard deviations (7.07 each) from 100
    assert abs(len(aborted) - n / 2) <= 5 * math.sqrt(n * 0.25), len(aborted)

    def flows() -> bool:
        lines = lab.tulle("observe", "--last", "2000", "--verdict", "DROPPED", "--http-path",
                          "/abort", "-o", "json").stdout.splitlines()
        reasons = [json.loads(line)["flow"].get("drop_reason_desc") for line in lines if line]
        return reasons.count("FAULT_ABORT") == len(aborted)

    wait_for(flows, timeout=20, what=f"{len(aborted)} FAULT_ABORT flows")


def test_a_delay_holds_every_request_its_time(lab: Lab, mesh: dict[str, Any]) -> None:
    out = requests(lab, mesh["client"], "echo", "/delay", 5)
    assert all(r[0] == 200 for r in out), out
    assert all(r[2] >= 0.3 for r in out), out  # a lower bound: the fault's own 300 ms


def test_a_retry_budget_caps_retry_amplification(lab: Lab, mesh: dict[str, Any]) -> None:
    log: Path = mesh["log"]
    log.write_text("")
    n = 50
    out = requests(lab, mesh["client"], "failing", "/", n)
    assert all(r[0] == 503 for r in out), out
    seen = log.read_text().split()
    assert set(seen) == {"via"}
    # without the budget: 3 tries a request (150). With it: the requests, and at most 20% of
    # every request the budget saw (the warm-up's too) plus the floor's one.
    allowance = (n + mesh["warm"]) * 20 // 100 + 1
    assert n < len(seen) <= n + allowance, (len(seen), allowance)
    refused = waypoint_metric(lab, "tulle_waypoint_retry_budget_exhausted_total", f"{NS}/failing:80")
    assert refused is not None and refused >= n - allowance
