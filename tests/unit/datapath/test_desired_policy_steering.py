"""A Service whose only L7 policy is an HTTPLocalRateLimitPolicy or a BackendTrafficPolicy
goes through the waypoint, which enforces it: the datapath steers its TCP ports there
(``l7_keys``) and the waypoint routes it to itself (``default_routes``). Before, such a
Service kept plain L4 and its policy, reported Accepted, did nothing."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

import pytest

from agent.datapath.desired import ClusterView, l7_keys, view_of
from agent.datapath.planner import Change, Planner
from agent.datapath.services import ServiceKey
from agent.model.convert import ConversionError, from_dict
from gatewayapi import RouteCompiler
from gatewayapi.backendpolicy import targeted_services
from l7proxy.authz import default_routes


def obj(doc: dict[str, Any]) -> Any:
    return from_dict(doc)


def service(name: str, namespace: str, ip: str) -> Any:
    return obj({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"clusterIP": ip, "selector": {"app": name},
                         "ports": [{"name": "http", "port": 80},
                                   {"name": "dns", "port": 53, "protocol": "UDP"}]}})


def rate_limit(namespace: str, target: str, name: str = "rl") -> Any:
    return obj({"apiVersion": "policy.tulle.io/v1alpha1", "kind": "HTTPLocalRateLimitPolicy",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": target}],
                         "total": {"requestsPerSecond": 10}}})


def backend_policy(namespace: str, target: str) -> Any:
    return obj({"apiVersion": "policy.tulle.io/v1alpha1", "kind": "BackendTrafficPolicy",
                "metadata": {"name": "btp", "namespace": namespace},
                "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": target}],
                         "outlierDetection": {"consecutive5xxErrors": 3}}})


SERVICES = (service("web", "shop", "10.96.0.10"), service("db", "shop", "10.96.0.11"),
            service("web", "other", "10.96.0.12"))
WEB_80 = ServiceKey(IPv4Address("10.96.0.10"), 80, 6)


@pytest.mark.parametrize("policy", [rate_limit("shop", "web"), backend_policy("shop", "web")],
                         ids=["rate-limit", "backend-traffic-policy"])
def test_a_service_with_only_a_waypoint_policy_is_steered(policy: Any) -> None:
    assert l7_keys(ClusterView(services=SERVICES), RouteCompiler()).every == frozenset()
    view = view_of([*SERVICES, policy])
    # Only web's TCP port: not its UDP port, not db, not the other namespace's "web".
    assert l7_keys(view, RouteCompiler()).every == {WEB_80}


def test_the_planner_steers_on_a_rate_limit_alone_and_stops_when_it_goes() -> None:
    planner = Planner("n1", (IPv4Address("10.244.1.254"), 15001))
    planner.reset(SERVICES)
    assert planner.desired().l7 == frozenset()
    policy = rate_limit("shop", "web")
    planner.update([Change("HTTPLocalRateLimitPolicy", "shop", "rl", policy)])
    assert planner.desired().l7 == {WEB_80}
    planner.update([Change("HTTPLocalRateLimitPolicy", "shop", "rl", None)])
    assert planner.desired().l7 == frozenset()


def test_a_policy_cannot_steer_another_namespaces_service() -> None:
    """targetRefs are local (GEP-713 LocalPolicyTargetReference): a policy in namespace
    "other" naming "db" means other/db, which does not exist; shop/db stays plain L4."""
    policies = [rate_limit("other", "db"), backend_policy("other", "db")]
    assert targeted_services(policies, SERVICES) == frozenset()
    assert l7_keys(view_of([*SERVICES, *policies]), RouteCompiler()).every == frozenset()


def test_a_target_of_another_kind_is_refused_at_admission() -> None:
    for kind in ("HTTPLocalRateLimitPolicy", "BackendTrafficPolicy"):
        with pytest.raises(ConversionError, match="Service"):
            from_dict({"apiVersion": "policy.tulle.io/v1alpha1", "kind": kind,
                       "metadata": {"name": "p", "namespace": "shop"},
                       "spec": {"targetRefs": [{"group": "gateway.networking.k8s.io",
                                                "kind": "Gateway", "name": "web"}],
                                "total": {"requestsPerSecond": 1}}})


def test_the_waypoint_routes_a_targeted_service_to_itself() -> None:
    targeted = targeted_services([rate_limit("shop", "web")], SERVICES)
    routes = default_routes([], list(SERVICES), [], targeted)
    assert [(r.metadata.namespace, r.metadata.name) for r in routes] == [
        ("shop", "tulle-authz-web-80")]
    [route] = routes
    assert route.spec.parent_refs[0].name == "web" and route.spec.parent_refs[0].port == 80
    assert route.spec.rules[0].backend_refs[0].name == "web"
    # A Service some HTTPRoute has as parent keeps only the user's routes.
    user = obj({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": {"name": "mine", "namespace": "shop"},
                "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "web"}]}})
    assert default_routes([], list(SERVICES), [user], targeted) == []
