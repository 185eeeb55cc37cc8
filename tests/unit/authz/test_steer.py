"""Which Services go through the waypoint for AuthorizationPolicy: the datapath steers them
(``l7_keys``) and the waypoint routes them to themselves when no HTTPRoute does."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address
from typing import Any

from agent.datapath.desired import ClusterView, l7_keys
from agent.datapath.services import ServiceKey
from agent.model.convert import from_dict
from agent.model.core import Service
from agent.model.frozen import FrozenMap
from agent.model.grpcroute import GRPCRoute
from agent.model.httproute import HTTPRoute
from authz import steered_services
from gatewayapi import RouteCompiler
from l7proxy.authz import default_routes
from tests.unit.authz.helpers import policy, rule


def service(name: str, namespace: str, ip: str, ports: list[dict[str, Any]] | None = None) -> Service:
    found = from_dict({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterIP": ip, "selector": {"app": name},
                 "ports": ports or [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]},
    })
    assert isinstance(found, Service)
    return found


# An L7 rule: only the waypoint can judge it (L4-only policies are the kernel's: no steering).
L7 = rule(operation={"paths": ["/admin/*"]})
SERVICES = [service("web", "shop", "10.96.0.10"), service("db", "shop", "10.96.0.11"),
            service("api", "front", "10.96.0.12"), service("x", "other", "10.96.0.13")]


def test_a_workload_policy_steers_its_namespaces_services_a_target_ref_its_service() -> None:
    policies = [policy("p", {"selector": {"matchLabels": {"app": "web"}}, "rules": [L7]}, "shop"),
                policy("t", {"targetRefs": [{"kind": "Service", "name": "api"}]}, "front"),
                policy("g", {"targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "x"}]}, "other")]
    # db's selector (app=db) and the policy's (app=web) disagree: no pod of db is selected.
    assert steered_services(policies, SERVICES) == {("shop", "web"), ("front", "api")}
    assert steered_services([], SERVICES) == frozenset()


def test_a_namespace_wide_policy_steers_every_service_of_its_namespace() -> None:
    policies = [policy("ns", {"action": "DENY", "rules": [L7]}, "shop")]
    assert steered_services(policies, SERVICES) == {("shop", "web"), ("shop", "db")}


def test_labels_that_could_meet_on_one_pod_steer() -> None:
    """The policy names a label the Service's selector does not: a pod may carry both."""
    tiered = [policy("t", {"selector": {"matchLabels": {"tier": "gold"}}, "rules": [L7]}, "shop")]
    assert steered_services(tiered, SERVICES) == {("shop", "web"), ("shop", "db")}
    with_selector = service("manual", "shop", "10.96.0.20")
    manual = dataclasses.replace(with_selector, spec=dataclasses.replace(with_selector.spec, selector=FrozenMap()))
    only_web = [policy("p", {"selector": {"matchLabels": {"app": "web"}}, "rules": [L7]}, "shop")]
    assert ("shop", "manual") in steered_services(only_web, [manual])


def test_l4_only_workload_policies_steer_nothing() -> None:
    """The kernel judges them on the client's node (agent/datapath/authz_l4.py)."""
    l4 = [policy("allow", {"selector": {"matchLabels": {"app": "web"}},
                           "rules": [rule(source={"namespaces": ["front"]}, operation={"ports": ["80"]})]}, "shop"),
          policy("ns", {"action": "DENY"}, "shop"),
          policy("mesh", {"action": "DENY", "rules": [{}]}, "tulle-system")]
    assert steered_services(l4, SERVICES) == frozenset()
    # A targetRef is judged where the Service is reached, L4-only or not.
    l4.append(policy("t", {"targetRefs": [{"kind": "Service", "name": "api"}]}, "front"))
    assert steered_services(l4, SERVICES) == {("front", "api")}


def test_a_root_namespace_policy_steers_every_service() -> None:
    mesh = [policy("m", {"action": "DENY", "rules": [rule(operation={"paths": ["/x"]})]}, "tulle-system")]
    assert len(steered_services(mesh, SERVICES)) == 4


def test_the_datapath_sends_the_steered_tcp_ports_to_the_waypoint() -> None:
    view = ClusterView(services=tuple(SERVICES),
                       authorization_policies=(policy("t", {"targetRefs": [{"kind": "Service", "name": "web"}]}),))
    needs = l7_keys(view, RouteCompiler())
    assert needs.every == {ServiceKey(IPv4Address("10.96.0.10"), 80, 6)}


def test_the_waypoint_routes_a_steered_service_without_route_to_itself() -> None:
    policies = [policy("p", {"rules": [L7]}, "shop")]  # namespace-wide
    routes = default_routes(policies, SERVICES, [])
    assert sorted((r.metadata.namespace, r.metadata.name) for r in routes) == [
        ("shop", "tulle-authz-db-80"), ("shop", "tulle-authz-web-80")]
    [web] = [r for r in routes if r.metadata.name.endswith("web-80")]
    assert web.spec.parent_refs[0].kind == "Service" and web.spec.parent_refs[0].port == 80
    assert web.spec.rules[0].backend_refs[0].name == "web"
    # A Service some HTTPRoute already has as parent keeps only the user's routes.
    user = from_dict({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                      "metadata": {"name": "mine", "namespace": "shop"},
                      "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "web"}]}})
    assert isinstance(user, HTTPRoute)
    assert [r.metadata.name for r in default_routes(policies, SERVICES, [user])] == ["tulle-authz-db-80"]
    # So does one a GRPCRoute has as parent: its unmatched gRPC methods stay UNIMPLEMENTED.
    grpc = from_dict({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
                      "metadata": {"name": "calls", "namespace": "shop"},
                      "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "db"}]}})
    assert isinstance(grpc, GRPCRoute)
    assert default_routes(policies, SERVICES, [user, grpc]) == []
    assert default_routes([], SERVICES, []) == []
