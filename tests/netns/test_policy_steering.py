"""A Service whose only L7 policy is an HTTPLocalRateLimitPolicy (no HTTPRoute, no
AuthorizationPolicy) is steered to the waypoint, so the limit holds: before, its traffic kept
plain L4 while the policy said Accepted. The client (node1) and the server (node2) are on
different nodes; the client's node's waypoint counts. A neighbour Service without a policy
stays unlimited, and a Host header naming it does not let a caller out of the limit (the
waypoint routes by the original destination, never by Host)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, service, wait_for

pytestmark = pytest.mark.netns
NS = "rlalone"
RPS = 2  # a burst of 2, then 2 per second: 20 back-to-back requests must meet 429s
POLICY = {"apiVersion": "policy.tulle.io/v1alpha1", "kind": "HTTPLocalRateLimitPolicy",
          "metadata": {"name": "web", "namespace": NS},
          "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "web"}],
                   "total": {"requestsPerSecond": RPS}}}


@pytest.fixture(scope="module")
def client(lab: Lab) -> Iterator[str]:
    free = service(NS, "free")
    free["spec"]["selector"] = {"app": "web"}  # the same pods, another Service
    apply(lab, namespace(NS), deployment(NS, "web", 1, node="node2"), service(NS, "web"), free,
          deployment(NS, "cli", 1, node="node1"), POLICY)
    lab.wait_pods_ready(NS, 2, timeout=90)
    name = pods_of(lab, NS, "cli")[0]["metadata"]["name"]
    wait_for(lambda: "200" in codes(lab, name, f"http://free.{NS}/", 1), timeout=60,
             what="the free Service answering")
    try:
        yield name
    finally:
        lab.tulle("delete", "httplocalratelimitpolicy", "web", "-n", NS, check=False)


def codes(lab: Lab, pod: str, url: str, count: int, *headers: str) -> list[str]:
    args = [a for _ in range(count) for a in ("-o", "/dev/null", url)]
    extra = [a for h in headers for a in ("-H", h)]
    out = lab.exec(NS, pod, "curl", "-s", "-m", "5", *extra, "-w", "%{http_code} ", *args,
                   check=False)
    return out.stdout.split()


def test_a_rate_limit_alone_steers_its_service_and_holds(lab: Lab, client: str) -> None:
    def limited() -> list[str] | None:
        found = codes(lab, client, f"http://web.{NS}/x", 20)
        return found if "429" in found else None

    found = wait_for(limited, timeout=60, what="429s from the waypoint for web")
    assert set(found) <= {"200", "429"}, found
    assert found.count("200") >= 1, found
    # The Host header does not choose the Service: naming the free one changes nothing.
    spoofed = codes(lab, client, f"http://web.{NS}/x", 20, f"Host: free.{NS}")
    assert "429" in spoofed and set(spoofed) <= {"200", "429"}, spoofed
    # The neighbour Service over the same pods has no policy: never limited.
    assert codes(lab, client, f"http://free.{NS}/x", 20) == ["200"] * 20
