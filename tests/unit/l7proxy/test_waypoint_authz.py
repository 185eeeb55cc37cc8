"""AuthorizationPolicy in the waypoint (issue 14 item 1): a routed request is judged on the
caller's pod identity and the request, before any upstream: a DENY by path or method and a
caller outside the ALLOW list get 403 ``RBAC: access denied`` and a DROPPED flow naming the
policy; the backend never sees them. Clients are loopback addresses standing for pods."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from agent.flows.flow import Flow, Verdict
from agent.flows.policyjson import policy_names_suffix
from agent.model.convert import from_dict
from agent.model.core import Pod
from l7proxy.authz import AuthzGate, Call
from l7proxy.config import ListenerConfig, WaypointConfig
from l7proxy.server import WaypointServer
from l7proxy.testing import gateway_config, read_response, service
from lab.echo.responses import EchoContext
from lab.echo.server import EchoServer
from tests.unit.authz.helpers import policy, rule

GAMMA = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mesh, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 8080}]
  rules:
  - backendRefs: [{name: web, port: 8080}]
"""
VIP = ("10.96.0.10", 8080)
FRONT, EVIL, ANON = "127.0.0.2", "127.0.0.3", "127.0.0.4"
POLICIES = [
    policy("no-admin", {"selector": {"matchLabels": {"app": "web"}}, "action": "DENY",
                        "rules": [rule(operation={"paths": ["/admin/*"]})]}, "default"),
    policy("no-delete", {"action": "DENY", "rules": [rule(operation={"methods": ["DELETE"]})]},
           "default"),
    policy("front-only", {"selector": {"matchLabels": {"app": "web"}},
                          "rules": [rule(source={"namespaces": ["front"]})]}, "default"),
]


def pod(name: str, namespace: str, ip: str, labels: dict[str, str] | None = None) -> Pod:
    found = from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "image": "x"}], "serviceAccountName": "web"},
        "status": {"phase": "Running", "podIP": ip},
    })
    assert isinstance(found, Pod)
    return found


PODS = [pod("web", "default", "127.0.0.1", {"app": "web"}), pod("fe", "front", FRONT),
        pod("x", "evil", EVIL)]


class Sink:
    def __init__(self) -> None:
        self.flows: list[Flow] = []

    def __call__(self, flows: Sequence[Flow]) -> None:
        self.flows.extend(flows)


def _config(port: int, gate: AuthzGate) -> WaypointConfig:
    config = gateway_config(service("web", ip=VIP[0]) + "---\n" + GAMMA, {"default/web:8080": [("127.0.0.1", port)]})
    config.listeners = [ListenerConfig("127.0.0.1", 0)]
    config.original_destination = lambda client: VIP
    config.authorize = gate.check
    return config


async def _call(port: int, source: str, method: str = "GET", path: str = "/x") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: web\r\n\r\n".encode())
    try:
        status, _, body = await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()
    return status, body


def _run(calls: list[tuple[str, str, str]], policies: Any = POLICIES) -> tuple[list[tuple[int, bytes]], list[Flow], list[str]]:
    async def main() -> tuple[list[tuple[int, bytes]], list[Flow], list[str]]:
        seen: list[str] = []
        echo = EchoServer(EchoContext(pod="web"), log=seen.append)
        [port] = await echo.start([0], "127.0.0.1")
        gate = AuthzGate("cluster.local")
        gate.swap(policies, PODS)
        sink = Sink()
        server = WaypointServer(_config(port, gate), flow_sink=sink)
        [listen] = await server.start()
        try:
            answers = [await _call(listen, *c) for c in calls]
            server.flows.flush()
        finally:
            await server.close()
            await echo.close()
        return answers, sink.flows, [line for line in seen if "Echoing" in line]

    return asyncio.run(main())


def test_an_allowed_caller_reaches_the_backend() -> None:
    [(status, _)], [flow], echoed = _run([(FRONT, "GET", "/x")])
    assert status == 200 and len(echoed) == 1
    assert flow.verdict == Verdict.FORWARDED


def test_deny_by_path_gives_403_and_a_dropped_flow_naming_the_policy() -> None:
    [(status, body)], [flow], echoed = _run([(FRONT, "GET", "/admin/users")])
    assert (status, body) == (403, b"RBAC: access denied")
    assert echoed == []
    assert flow.verdict == Verdict.DROPPED and flow.drop_reason_desc == "POLICY_DENY"
    assert [(p.namespace, p.name, p.kind) for p in flow.ingress_denied_by] == [
        ("default", "no-admin", "AuthorizationPolicy")
    ]
    assert flow.ingress_allowed_by == () and flow.egress_allowed_by == ()
    assert policy_names_suffix(flow) == " BY no-admin (AuthorizationPolicy)"


def test_deny_by_method() -> None:
    answers, flows, echoed = _run([(FRONT, "DELETE", "/x"), (FRONT, "POST", "/x")])
    assert [a[0] for a in answers] == [403, 200]
    assert [f.ingress_denied_by[0].name for f in flows if f.ingress_denied_by] == ["no-delete"]
    assert len(echoed) == 1


def test_a_caller_of_another_namespace_or_without_identity_is_denied_by_the_allow_list() -> None:
    answers, flows, echoed = _run([(EVIL, "GET", "/x"), (ANON, "GET", "/x")])
    assert [a for a in answers] == [(403, b"RBAC: access denied")] * 2
    assert echoed == []
    for flow in flows:
        assert flow.drop_reason_desc == "POLICY_DENIED"
        assert [p.name for p in flow.ingress_denied_by] == ["front-only"]


def test_an_allow_policy_without_rules_denies_all_and_no_policy_allows_all() -> None:
    deny_all = [policy("lockdown", {}, "default")]
    answers, _, echoed = _run([(FRONT, "GET", "/x")], deny_all)
    assert answers[0][0] == 403 and echoed == []
    answers, _, echoed = _run([(EVIL, "GET", "/admin/x")], [])
    assert answers[0][0] == 200 and len(echoed) == 1


def test_a_policy_of_another_namespace_or_workload_does_not_apply() -> None:
    elsewhere = [policy("lockdown", {}, "front"),
                 policy("other-app", {"selector": {"matchLabels": {"app": "db"}}}, "default")]
    answers, _, _ = _run([(EVIL, "GET", "/x")], elsewhere)
    assert answers[0][0] == 200


def test_a_mesh_policy_in_the_root_namespace_applies_everywhere() -> None:
    mesh = [policy("mesh-deny-admin", {"action": "DENY", "rules": [rule(operation={"paths": ["/admin/*"]})]}, "tulle-system")]
    answers, _, _ = _run([(FRONT, "GET", "/admin/x"), (FRONT, "GET", "/x")], mesh)
    assert [a[0] for a in answers] == [403, 200]


def test_a_service_target_ref_applies_to_requests_for_that_service() -> None:
    by_service = [policy("svc", {"targetRefs": [{"kind": "Service", "name": "web"}], "action": "DENY",
                                 "rules": [rule(source={"namespaces": ["evil"]})]}, "default"),
                  policy("other-svc", {"targetRefs": [{"kind": "Service", "name": "db"}]}, "default")]
    answers, _, _ = _run([(EVIL, "GET", "/x"), (FRONT, "GET", "/x")], by_service)
    assert [a[0] for a in answers] == [403, 200]


def test_a_deny_by_path_holds_for_every_spelling_of_the_path() -> None:
    """The attacker's paths: the gate judges the path the backend gets, normalized."""
    spellings = ["/x/../admin/users", "//admin/users", "/admin/./users", "/%61dmin/users",
                 "/admin/users?x=/public"]
    answers, flows, echoed = _run([(FRONT, "GET", p) for p in spellings])
    assert [a[0] for a in answers] == [403] * len(spellings)
    assert echoed == []
    assert {f.ingress_denied_by[0].name for f in flows} == {"no-admin"}


def test_each_request_of_a_keep_alive_connection_gets_its_own_verdict() -> None:
    """The attacker's connection: the gate keeps per-connection work (``authz.residual``),
    so one allowed request must not let the next, different one through on the same
    connection (path, method, header), and a policy change applies to the very next
    request on a connection already open."""
    debug = policy("no-debug", {"action": "DENY", "rules": [
        rule(when=[{"key": "request.headers[x-debug]", "values": ["*"]}])]}, "default")
    lockdown = policy("lockdown", {}, "default")  # an ALLOW without rules: denies all

    async def main() -> list[int]:
        echo = EchoServer(EchoContext(pod="web"))
        [port] = await echo.start([0], "127.0.0.1")
        gate = AuthzGate("cluster.local")
        gate.swap([*POLICIES, debug], PODS)
        server = WaypointServer(_config(port, gate))
        [listen] = await server.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", listen, local_addr=(FRONT, 0))
        statuses = []

        async def ask(method: str, path: str, extra: str = "") -> None:
            writer.write(f"{method} {path} HTTP/1.1\r\nHost: web\r\n{extra}\r\n".encode())
            status, _, _ = await asyncio.wait_for(read_response(reader), 5)
            statuses.append(status)

        try:
            await ask("GET", "/x")
            await ask("GET", "/admin/users")
            await ask("GET", "/x")
            await ask("DELETE", "/x")
            await ask("GET", "/x", "X-Debug: 1\r\n")
            await ask("GET", "/x")
            gate.swap([lockdown], PODS)
            await ask("GET", "/x")
            gate.swap([], PODS)
            await ask("GET", "/admin/users")
        finally:
            writer.close()
            await server.close()
            await echo.close()
        return statuses

    assert asyncio.run(main()) == [200, 403, 200, 403, 403, 200, 403, 200]


def test_endpoints_whose_policies_read_different_headers_each_get_them() -> None:
    """A Service's endpoints may be selected by different policies: the request must pass
    all of them, each reading its own headers (the gate decodes only the names a rule
    reads, per endpoint's policies), in either endpoint order."""
    by_path = policy("a-no-admin", {"selector": {"matchLabels": {"app": "a"}}, "action": "DENY",
                                    "rules": [rule(operation={"paths": ["/admin"]})]}, "default")
    by_header = policy("b-no-debug", {"selector": {"matchLabels": {"app": "b"}},
                                      "action": "DENY", "rules": [rule(when=[
                                          {"key": "request.headers[x-debug]", "values": ["*"]}])]},
                       "default")
    by_other = policy("c-no-trace", {"selector": {"matchLabels": {"app": "c"}},
                                     "action": "DENY", "rules": [rule(when=[
                                         {"key": "request.headers[x-trace]", "values": ["*"]}])]},
                      "default")
    a, b, c = ("127.0.1.1", 80), ("127.0.1.2", 80), ("127.0.1.3", 80)
    gate = AuthzGate("cluster.local")
    gate.swap([by_path, by_header, by_other],
              [*PODS, pod("a", "default", a[0], {"app": "a"}),
               pod("b", "default", b[0], {"app": "b"}), pod("c", "default", c[0], {"app": "c"})])

    def check(endpoints: list[tuple[str, int]], headers: list[tuple[bytes, bytes]],
              path: str = "/x") -> tuple[str, ...]:
        verdict = gate.check(Call((FRONT, 40000), None, endpoints, "GET", "web", path, headers))
        return () if verdict is None else verdict.policies

    for order in ([a, b, c], [c, b, a], [b, c, a]):
        assert check(order, []) == ()
        assert check(order, [(b"X-Debug", b"1")]) == ("default/b-no-debug",)
        assert check(order, [(b"x-trace", b"1")]) == ("default/c-no-trace",)
        assert check(order, [], "/admin") == ("default/a-no-admin",)
    assert check([a], [(b"X-Debug", b"1"), (b"x-trace", b"1")]) == ()


def test_callers_of_one_identity_share_one_narrowed_policy_set() -> None:
    """The gate's memory grows per distinct residual, not per (caller, endpoint): two
    addresses of one namespace share one where no rule reads addresses; a caller of
    another namespace gets its own."""
    gate = AuthzGate("cluster.local")
    gate.swap(POLICIES, [*PODS, pod("fe2", "front", "127.0.0.5")])
    parent, endpoint = None, ("127.0.0.1", 8080)
    first = gate._residual_for(parent, *endpoint, FRONT, "")
    assert first is not None
    assert gate._residual_for(parent, *endpoint, "127.0.0.5", "") is first
    assert gate._residual_for(parent, *endpoint, EVIL, "") is not first
