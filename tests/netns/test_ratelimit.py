"""HTTPLocalRateLimitPolicy in a live lab (issue 14 item 4), through real pods and the
client node's waypoint: three callers with their own ServiceAccounts load one Service at
three times their limit, all at once, for 10 s. Each plain identity gets its own budget
(within 10% of identity.requestsPerSecond over the window), the overridden ServiceAccount
gets the override's rate, the rest are 429 with Retry-After and RateLimit-* fields, and the
flows say RATE_LIMITED. The policy reports Accepted."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, run_py, service, wait_for

pytestmark = pytest.mark.netns
NS = "ratelim"
IDENTITY_RPS, VIP_RPS, WINDOW = 4, 10, 10.0
CLIENTS = {"a": IDENTITY_RPS, "b": IDENTITY_RPS, "vip": VIP_RPS}  # ServiceAccount -> limit

# Spend the burst (requests until the first 429), then send at ``rate`` per second, paced,
# on one keep-alive connection for ``window`` seconds; count the answers in the window.
LOAD = r"""
import http.client, json, sys, time
host, rate, window = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
conn = None
def get(path):
    global conn
    for _ in range(2):
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, 80, timeout=10)
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}
        except (OSError, http.client.HTTPException):
            if conn is not None:
                conn.close()
            conn = None
    return 0, {}
limited = None
for _ in range(400):
    status, headers = get("/drain")
    if status == 429:
        limited = headers
        break
if limited is None:
    print(json.dumps({"error": "never limited"}))
    sys.exit()
counts, start, i = {}, time.monotonic(), 0
while True:
    due = start + i / rate
    if due >= start + window:
        break
    wait = due - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    status, _ = get("/load")
    i += 1
    if time.monotonic() <= start + window:
        counts[str(status)] = counts.get(str(status), 0) + 1
print(json.dumps({"counts": counts, "limited": limited, "sent": i}))
"""


def _client(name: str) -> dict[str, Any]:
    d = deployment(NS, name, 1, node="node1")
    d["spec"]["template"]["spec"]["serviceAccountName"] = name
    return d


ROUTE = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
         "metadata": {"name": "web", "namespace": NS},
         "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "web", "port": 80}],
                  "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}}
POLICY = {"apiVersion": "policy.tulle.io/v1alpha1", "kind": "HTTPLocalRateLimitPolicy",
          "metadata": {"name": "web", "namespace": NS},
          "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "web"}],
                   "identity": {"requestsPerSecond": IDENTITY_RPS},
                   "overrides": [{"requestsPerSecond": VIP_RPS, "clientRefs": [
                       {"kind": "ServiceAccount", "name": "vip"}]}]}}


@pytest.fixture(scope="module")
def pods(lab: Lab) -> Iterator[dict[str, str]]:
    apply(lab, namespace(NS), deployment(NS, "web", 1, node="node2"), service(NS, "web"),
          *(_client(n) for n in CLIENTS), ROUTE, POLICY)
    lab.wait_pods_ready(NS, 1 + len(CLIENTS), timeout=90)
    names = {n: pods_of(lab, NS, n)[0]["metadata"]["name"] for n in CLIENTS}

    def accepted() -> bool:
        [p] = lab.get("httplocalratelimitpolicies", NS)
        conditions = [c for a in (p.get("status") or {}).get("ancestors", [])
                      for c in a["conditions"]]
        return [(c["status"], c["reason"]) for c in conditions] == [("True", "Accepted")]

    wait_for(accepted, timeout=30, what="the policy Accepted")

    def limited() -> bool:  # the waypoint has the route and the policy
        urls = [arg for _ in range(IDENTITY_RPS * 2 + 2)
                for arg in ("-o", "/dev/null", f"http://web.{NS}/probe")]
        out = lab.exec(NS, names["a"], "curl", "-s", "-w", "%{http_code} ", *urls, check=False)
        return "429" in out.stdout.split()

    wait_for(limited, timeout=60, what="429s from the waypoint")
    try:
        yield names
    finally:
        lab.tulle("delete", "httplocalratelimitpolicy", "web", "-n", NS, check=False)


def test_each_identity_holds_its_limit_and_the_override_lifts_it(
    lab: Lab, pods: dict[str, str]
) -> None:
    time.sleep(1.5)  # the probe's spending is refilled
    results: dict[str, Any] = {}

    def load(name: str) -> None:
        results[name] = run_py(lab, NS, pods[name], LOAD, f"web.{NS}", CLIENTS[name] * 3,
                               WINDOW, timeout=90)

    threads = [threading.Thread(target=load, args=(n,)) for n in CLIENTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, limit in CLIENTS.items():
        result = results[name]
        assert "error" not in result, (name, result)
        counts = result["counts"]
        ok, refused = counts.get("200", 0), counts.get("429", 0)
        assert set(counts) <= {"200", "429"}, (name, counts)
        # each caller sent three times its limit: the limit is what it got, within 10%
        expected = limit * WINDOW
        assert abs(ok - expected) <= 0.1 * expected, (name, ok, expected, result)
        assert refused > 0, (name, counts)  # it did send over its limit
        headers = result["limited"]
        assert headers["ratelimit-limit"] == str(limit), (name, headers)
        assert headers["ratelimit-remaining"] == "0"
        assert int(headers["retry-after"]) >= 1 and int(headers["ratelimit-reset"]) >= 1
    time.sleep(1.5)  # flows reach the agent in batches
    out = lab.tulle("observe", "--last", "2000", "--verdict", "DROPPED", "--http-path",
                    "/load", "-o", "json").stdout
    flows = [json.loads(line)["flow"] for line in out.splitlines() if line.strip()]
    assert flows and all(f.get("drop_reason_desc") == "RATE_LIMITED" for f in flows), flows[:3]
    assert all(f["l7"]["http"]["code"] == 429 for f in flows)
    assert {f["source"]["pod_name"] for f in flows} == set(pods.values())
