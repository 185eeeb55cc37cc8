"""The kernel's part in AuthorizationPolicy. A pod a policy the kernel cannot judge (L7)
selects takes ingress only from the node and the waypoints (which judged the policy); its
NetworkPolicy ingress rules leave the kernel's maps (the waypoint applies them), so no direct
connection bypasses the policy. A pod whose every policy is L4-only is judged on each
client's node (authz_v1 entries, EP_F_AUTHZ_KERNEL) and keeps its NetworkPolicy rules."""

from __future__ import annotations

from typing import Any

from agent.datapath.authz_l4 import AUTHZ_F_ALLOW, AUTHZ_F_BY_ALLOW, UNKNOWN_CLIENT
from agent.datapath.desired import ClusterView, plan_endpoints
from agent.datapath.flags import EP_F_AUTHZ_KERNEL, EP_F_INGRESS_ENFORCED
from agent.datapath.policy_plan import Direction
from agent.model.convert import from_dict
from tests.unit.authz.helpers import policy, rule

L7 = [rule(operation={"paths": ["/admin/*"]})]


def obj(doc: dict[str, Any]) -> Any:
    return from_dict(doc)


def pod(name: str, ip: str, app: str, node: str = "n1") -> Any:
    return obj({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "shop", "labels": {"app": app}},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
                "status": {"phase": "Running", "podIP": ip}})


NODE = obj({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
            "spec": {"podCIDR": "10.244.1.0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.240.0.11"}]}})
PODS = (pod("web", "10.244.1.5", "web"), pod("db", "10.244.1.6", "db"),
        pod("cli", "10.244.2.7", "cli", node="n2"))
ALLOW_CLI = obj({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                 "metadata": {"name": "np", "namespace": "shop"},
                 "spec": {"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "cli"}}}]}]}})


def plan(*authz: Any) -> Any:
    view = ClusterView(nodes=(NODE,), pods=PODS, policies=(ALLOW_CLI,), authorization_policies=authz)
    return plan_endpoints(view, "n1")


def ingress_ips(part: Any) -> set[str]:
    return {str(k[0]) for k in part.identity_rules if k[2] is Direction.INGRESS}


def test_a_selected_pod_takes_ingress_only_through_the_waypoint() -> None:
    before = plan()
    assert ingress_ips(before) == {"10.244.1.5", "10.244.1.6"}
    after = plan(policy("web-only", {"selector": {"matchLabels": {"app": "web"}}, "rules": L7}))
    web, db = (after.endpoints[ep.ip] for ep in (before.endpoints[k] for k in sorted(before.endpoints)))
    assert web.flags & EP_F_INGRESS_ENFORCED and db.flags & EP_F_INGRESS_ENFORCED  # db: by its NetworkPolicy
    assert ingress_ips(after) == {"10.244.1.6"}  # web's allow for cli is gone from the kernel


def test_without_a_network_policy_the_selected_pod_becomes_default_deny() -> None:
    view = ClusterView(nodes=(NODE,), pods=PODS,
                       authorization_policies=(policy("ns-wide", {"action": "DENY", "rules": L7}),))
    part = plan_endpoints(view, "n1")
    assert all(e.flags & EP_F_INGRESS_ENFORCED for e in part.endpoints.values())
    unguarded = plan_endpoints(ClusterView(nodes=(NODE,), pods=PODS), "n1")
    assert not any(e.flags & EP_F_INGRESS_ENFORCED for e in unguarded.endpoints.values())


def test_a_policy_of_another_namespace_guards_nothing_here() -> None:
    part = plan(policy("elsewhere", {"rules": L7}, namespace="other"))
    assert ingress_ips(part) == {"10.244.1.5", "10.244.1.6"}


def test_an_l4_only_policy_is_judged_on_the_clients_node() -> None:
    before = plan()
    allow = policy("web-from-db", {"selector": {"matchLabels": {"app": "web"}},
                                   "rules": [rule(source={"namespaces": ["shop"]},
                                                  operation={"ports": ["8080"]})]})
    after = plan(allow)
    by_name = {e.name: e for e in after.endpoints.values()}
    web_id = by_name["web"].identity
    assert by_name["web"].flags & EP_F_AUTHZ_KERNEL
    assert not by_name["db"].flags & EP_F_AUTHZ_KERNEL
    # Not behind the waypoint: web keeps its NetworkPolicy ingress rules in the kernel.
    assert ingress_ips(after) == ingress_ips(before) == {"10.244.1.5", "10.244.1.6"}
    local = {by_name["web"].ip, by_name["db"].ip}
    assert set(after.authz) == {(ip, web_id) for ip in local | {UNKNOWN_CLIENT}}
    ranges = after.authz[(by_name["db"].ip, web_id)]
    assert [(first, last, flags) for first, last, flags, _ in ranges] == [
        (0, 8079, AUTHZ_F_BY_ALLOW), (8080, 8080, AUTHZ_F_ALLOW), (8081, 65535, AUTHZ_F_BY_ALLOW)]
    assert after.authz[(UNKNOWN_CLIENT, web_id)][0][:3] == (0, 65535, AUTHZ_F_BY_ALLOW)


def test_one_l7_policy_keeps_the_pod_behind_the_waypoint() -> None:
    l4 = policy("l4", {"selector": {"matchLabels": {"app": "web"}}, "action": "DENY",
                       "rules": [rule(source={"namespaces": ["evil"]})]})
    l7 = policy("l7", {"selector": {"matchLabels": {"app": "web"}}, "rules": L7})
    part = plan(l4, l7)
    web = next(e for e in part.endpoints.values() if e.name == "web")
    assert web.flags & EP_F_INGRESS_ENFORCED and not web.flags & EP_F_AUTHZ_KERNEL
    assert part.authz == {}
