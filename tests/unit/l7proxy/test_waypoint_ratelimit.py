"""HTTPLocalRateLimitPolicy in the waypoint (issue 14 item 4), in process over loopback on
a clock the test holds still: a caller over its identity's budget gets 429 with Retry-After
and RateLimit-* fields and a DROPPED flow RATE_LIMITED, and the backend never sees it;
another identity keeps its own budget; a request AuthorizationPolicy denies spends none.
Clients are loopback addresses standing for pods."""

from __future__ import annotations

import asyncio
from typing import Any

from agent.flows.flow import Flow, Verdict
from agent.model.convert import from_dict
from agent.model.core import Service
from agent.model.ratelimit import HTTPLocalRateLimitPolicy
from l7proxy.authz import AuthzGate
from l7proxy.ratelimit import RateLimitGate
from l7proxy.server import WaypointServer
from l7proxy.testing import read_response
from lab.echo.responses import EchoContext
from lab.echo.server import EchoServer
from tests.unit.authz.helpers import policy as authz_policy
from tests.unit.authz.helpers import rule
from tests.unit.l7proxy.test_waypoint_authz import EVIL, FRONT, PODS, Sink, _config

LIMIT = from_dict({
    "apiVersion": "policy.tulle.io/v1alpha1", "kind": "HTTPLocalRateLimitPolicy",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"targetRefs": [{"kind": "Service", "name": "web"}],
             "identity": {"requestsPerSecond": 2}},
})
assert isinstance(LIMIT, HTTPLocalRateLimitPolicy)
WEB = from_dict({"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "web", "namespace": "default"},
                 "spec": {"ports": [{"port": 8080}]}})
assert isinstance(WEB, Service)


async def _call(port: int, source: str, path: str) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: web\r\n\r\n".encode())
    try:
        return await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()


def _run(calls: list[tuple[str, str]], authz: Any = ()) -> tuple[
        list[tuple[int, dict[str, str], bytes]], list[Flow], list[str]]:
    async def main() -> tuple[list[tuple[int, dict[str, str], bytes]], list[Flow], list[str]]:
        seen: list[str] = []
        echo = EchoServer(EchoContext(pod="web"), log=seen.append)
        [port] = await echo.start([0], "127.0.0.1")
        who = AuthzGate("cluster.local")
        who.swap(authz, PODS)
        limits = RateLimitGate(who.peer, clock=lambda: 50.0)  # held still: no refill
        limits.swap([LIMIT], [WEB])
        config = _config(port, who)
        config.rate_limit = limits.check
        sink = Sink()
        server = WaypointServer(config, flow_sink=sink)
        [listen] = await server.start()
        try:
            answers = [await _call(listen, *c) for c in calls]
            server.flows.flush()
        finally:
            await server.close()
            await echo.close()
        return answers, sink.flows, [line for line in seen if "Echoing" in line]

    return asyncio.run(main())


def test_over_the_limit_gets_429_with_its_fields_and_a_dropped_flow() -> None:
    answers, flows, echoed = _run([(FRONT, "/1"), (FRONT, "/2"), (FRONT, "/3"), (EVIL, "/4")])
    assert [a[0] for a in answers] == [200, 200, 429, 200]
    _, headers, body = answers[2]
    assert body == b"local_rate_limited\n"
    assert headers["retry-after"] == "1"
    assert (headers["ratelimit-limit"], headers["ratelimit-remaining"]) == ("2", "0")
    assert headers["ratelimit-reset"] == "1"
    assert len(echoed) == 3 and not any("/3" in line for line in echoed)
    dropped = [f for f in flows if f.verdict == Verdict.DROPPED]
    assert [f.drop_reason_desc for f in dropped] == ["RATE_LIMITED"]
    [flow] = dropped
    assert flow.l7 is not None and flow.l7.http is not None and flow.l7.http.code == 429
    assert flow.l7.http.url.endswith("/3")


def test_a_request_authorization_denies_spends_no_budget() -> None:
    deny = authz_policy("no-admin", {"action": "DENY",
                                     "rules": [rule(operation={"paths": ["/admin"]})]},
                        "default")
    answers, flows, _ = _run([(FRONT, "/admin"), (FRONT, "/admin"), (FRONT, "/1"),
                              (FRONT, "/2"), (FRONT, "/3")], authz=[deny])
    assert [a[0] for a in answers] == [403, 403, 200, 200, 429]
    assert [f.drop_reason_desc for f in flows if f.verdict == Verdict.DROPPED] == [
        "POLICY_DENY", "POLICY_DENY", "RATE_LIMITED"]
