"""Session persistence (GEP-1619) in a live lab, through real pods and the client node's
waypoint: an HTTPRoute on Service ``web`` (3 echo pods) with ``sessionPersistence``. Requests
without the cookie spread over the pods; the cookie from the first answer keeps every later
request on one pod; a forged cookie is balanced as if absent and answered with a new one."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, run_py, service, wait_for

pytestmark = pytest.mark.netns
NS = "sticky"

# n GETs of http://host/path with an optional Cookie: [[status, pod, set-cookie], ...]
REQUESTS = r"""
import http.client, json, sys
host, path, n, cookie = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
out = []
for _ in range(n):
    try:
        c = http.client.HTTPConnection(host, 80, timeout=20)
        headers = {"Connection": "close"}
        if cookie:
            headers["Cookie"] = cookie
        c.request("GET", path, headers=headers)
        r = c.getresponse()
        body = r.read()
        try:
            pod = json.loads(body).get("pod", "")
        except ValueError:
            pod = body.decode("latin-1")[:200]
        out.append([r.status, pod, r.getheader("set-cookie") or ""])
        c.close()
    except Exception as e:
        out.append([0, repr(e), ""])
print(json.dumps(out))
"""


def route() -> dict[str, Any]:
    ref = {"group": "", "kind": "Service", "name": "web", "port": 80}
    rule = {"backendRefs": [{"name": "web", "port": 80}],
            "sessionPersistence": {"sessionName": "web-session"}}
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {"parentRefs": [ref], "rules": [rule]}}


@pytest.fixture(scope="module")
def client(lab: Lab) -> str:
    apply(lab, namespace(NS), deployment(NS, "web", 3, node="node2"),
          deployment(NS, "client", 1, node="node1"), service(NS, "web"), route())
    lab.wait_pods_ready(NS, 4, timeout=90)
    name: str = pods_of(lab, NS, "client")[0]["metadata"]["name"]

    def issued() -> bool:  # the waypoint has the route: its answer sets the cookie
        out = requests(lab, name, 1)
        return out[0][0] == 200 and out[0][2].startswith("web-session=")

    wait_for(issued, timeout=60, what="the route served with its session cookie")
    return name


def requests(lab: Lab, client: str, n: int, cookie: str = "") -> list[list[Any]]:
    out = run_py(lab, NS, client, REQUESTS, f"web.{NS}", "/", n, cookie)
    assert isinstance(out, list) and len(out) == n
    return out


def test_cookie_keeps_requests_on_one_pod_and_without_it_they_spread(
    lab: Lab, client: str
) -> None:
    pods = {p["metadata"]["name"] for p in pods_of(lab, NS, "web")}
    assert len(pods) == 3
    plain = requests(lab, client, 30)
    assert all(r[0] == 200 for r in plain), plain
    # P2C over three pods: 30 requests all on one would take (2/3)^30 luck at worst
    assert len({r[1] for r in plain}) >= 2, plain
    assert all(r[2].startswith("web-session=") for r in plain)  # each a new session
    first = plain[0]
    jar = first[2].split(";", 1)[0]
    pinned = requests(lab, client, 20, f"lang=en; {jar}")
    assert all(r[0] == 200 for r in pinned), pinned
    assert {r[1] for r in pinned} == {first[1]}, pinned
    assert first[1] in pods
    assert all(r[2] == "" for r in pinned), pinned  # honoured: not re-issued


def test_forged_cookie_is_balanced_and_replaced(lab: Lab, client: str) -> None:
    jar = requests(lab, client, 1)[0][2].split(";", 1)[0]
    name, _, token = jar.partition("=")
    tail = "BBBB" if token.endswith("AAAA") else "AAAA"
    forged = f"{name}={token[:-4]}{tail}"  # the tag altered
    out = requests(lab, client, 30, forged)
    assert all(r[0] == 200 and r[2].startswith("web-session=") for r in out), out
    assert len({r[1] for r in out}) >= 2, out
