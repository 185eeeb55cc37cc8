"""The kernel's part in AuthorizationPolicy: a pod a policy selects takes ingress only from
the node and the waypoints (which judged the policy); its NetworkPolicy ingress rules leave
the kernel's maps (the waypoint applies them), so no direct connection bypasses the policy."""

from __future__ import annotations

from typing import Any

from agent.datapath.desired import ClusterView, plan_endpoints
from agent.datapath.flags import EP_F_INGRESS_ENFORCED
from agent.datapath.policy_plan import Direction
from agent.model.convert import from_dict
from tests.unit.authz.helpers import policy


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
    after = plan(policy("web-only", {"selector": {"matchLabels": {"app": "web"}}, "rules": [{}]}))
    web, db = (after.endpoints[ep.ip] for ep in (before.endpoints[k] for k in sorted(before.endpoints)))
    assert web.flags & EP_F_INGRESS_ENFORCED and db.flags & EP_F_INGRESS_ENFORCED  # db: by its NetworkPolicy
    assert ingress_ips(after) == {"10.244.1.6"}  # web's allow for cli is gone from the kernel


def test_without_a_network_policy_the_selected_pod_becomes_default_deny() -> None:
    view = ClusterView(nodes=(NODE,), pods=PODS,
                       authorization_policies=(policy("ns-wide", {"action": "DENY"}),))
    part = plan_endpoints(view, "n1")
    assert all(e.flags & EP_F_INGRESS_ENFORCED for e in part.endpoints.values())
    unguarded = plan_endpoints(ClusterView(nodes=(NODE,), pods=PODS), "n1")
    assert not any(e.flags & EP_F_INGRESS_ENFORCED for e in unguarded.endpoints.values())


def test_a_policy_of_another_namespace_guards_nothing_here() -> None:
    part = plan(policy("elsewhere", {"rules": [{}]}, namespace="other"))
    assert ingress_ips(part) == {"10.244.1.5", "10.244.1.6"}
