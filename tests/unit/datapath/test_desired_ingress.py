"""Which IngressClass addresses the datapath sends to the waypoint: ports 80 and 443 of the
address Tulle's Ingresses announce in their status, never another class's, and never an
address that is a Service's ClusterIP (the Service keeps its connections)."""

from __future__ import annotations

from ipaddress import IPv4Address

from agent.datapath.desired import ServiceKey, l7_keys, view_of
from gatewayapi import RouteCompiler
from tests.unit.gatewayapi.helpers import service
from tests.unit.gatewayapi.ingress_helpers import ingress, ingress_class, path, rule

ADDRESS = "10.96.50.1"


def keys(*objects) -> frozenset[ServiceKey]:
    return l7_keys(view_of(objects), RouteCompiler()).every


def web(name: str = "web", **kwargs):
    return ingress(name, rule("a.com", path("/", "app")), address=ADDRESS, **kwargs)


def test_the_class_address_on_80_and_443() -> None:
    assert keys(web(), ingress_class(), service("app")) == {
        ServiceKey(IPv4Address(ADDRESS), 80, 6), ServiceKey(IPv4Address(ADDRESS), 443, 6)}


def test_another_class_or_no_class_object_is_not_redirected() -> None:
    other = ingress_class("nginx", "k8s.io/ingress-nginx")
    assert keys(web(class_name="nginx"), ingress_class(), other, service("app")) == frozenset()
    assert keys(web(), service("app")) == frozenset()  # IngressClass tulle does not exist


def test_an_address_that_is_a_services_clusterip_stays_the_services() -> None:
    assert keys(web(), ingress_class(), service("app", cluster_ip=ADDRESS)) == frozenset()
