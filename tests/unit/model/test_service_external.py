"""Services reachable from outside: externalTrafficPolicy, healthCheckNodePort, the
LoadBalancer fields and status.loadBalancer, read as the API server validates them."""

from __future__ import annotations

from typing import Any

import pytest

from agent.model.convert import ConversionError, from_dict, to_dict
from agent.model.core import LoadBalancerIngress, Service, ServiceType, TrafficPolicy


def service(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"ports": [{"port": 80}], **spec},
    }
    if status is not None:
        obj["status"] = status
    return obj


def read(spec: dict[str, Any], status: dict[str, Any] | None = None) -> Service:
    svc = from_dict(service(spec, status))
    assert isinstance(svc, Service)
    return svc


@pytest.mark.parametrize(
    ("spec", "policy"),
    [
        ({}, None),
        ({"type": "NodePort"}, TrafficPolicy.CLUSTER),
        ({"type": "LoadBalancer"}, TrafficPolicy.CLUSTER),
        ({"type": "NodePort", "externalTrafficPolicy": "Local"}, TrafficPolicy.LOCAL),
        ({"type": "LoadBalancer", "externalTrafficPolicy": "Cluster"}, TrafficPolicy.CLUSTER),
    ],
)
def test_external_traffic_policy_defaults_to_cluster_for_external_types(
    spec: dict[str, Any], policy: TrafficPolicy | None
) -> None:
    assert read(spec).spec.external_traffic_policy is policy


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        ({"externalTrafficPolicy": "Local"}, "spec.externalTrafficPolicy", "NodePort or LoadBalancer"),
        ({"type": "NodePort", "externalTrafficPolicy": "local"}, "spec.externalTrafficPolicy", "Local"),
        ({"type": "NodePort", "externalTrafficPolicy": "Local", "healthCheckNodePort": 30001},
         "spec.healthCheckNodePort", "LoadBalancer"),
        ({"type": "LoadBalancer", "healthCheckNodePort": 30001}, "spec.healthCheckNodePort", "Local"),
        ({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 0},
         "spec.healthCheckNodePort", ""),
        ({"type": "NodePort", "loadBalancerClass": "tulle.io/lb"}, "spec.loadBalancerClass",
         "LoadBalancer"),
        ({"loadBalancerIP": "10.240.0.200"}, "spec.loadBalancerIP", "LoadBalancer"),
        ({"type": "LoadBalancer", "loadBalancerIP": "banana"}, "spec.loadBalancerIP", "IP"),
    ],
)
def test_external_fields_are_refused_where_the_api_server_refuses_them(
    spec: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(ConversionError) as err:
        from_dict(service(spec))
    assert err.value.path == path
    assert message in str(err.value)


def test_load_balancer_status_is_read_and_written_back() -> None:
    svc = read(
        {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000},
        {"loadBalancer": {"ingress": [{"ip": "10.240.0.200", "ipMode": "VIP"},
                                      {"hostname": "lb.example.com"}]}},
    )
    assert svc.spec.type is ServiceType.LOAD_BALANCER
    assert svc.spec.health_check_node_port == 31000
    assert svc.status.load_balancer.ingress == (
        LoadBalancerIngress(ip="10.240.0.200", ip_mode="VIP"),
        LoadBalancerIngress(hostname="lb.example.com"),
    )
    assert svc.load_balancer_ips == ("10.240.0.200",)
    assert from_dict(to_dict(svc)) == svc


def test_only_a_load_balancer_service_has_load_balancer_addresses() -> None:
    # A stale status on a Service changed to NodePort must not keep an outside address.
    svc = read({"type": "NodePort"}, {"loadBalancer": {"ingress": [{"ip": "10.240.0.200"}]}})
    assert svc.load_balancer_ips == ()


@pytest.mark.parametrize(
    ("entry", "message"),
    [({}, "one of ip or hostname"), ({"hostname": "lb", "ipMode": "VIP"}, "only be set with ip"),
     ({"ip": "10.0.0.1", "ipMode": "Bridge"}, '"VIP" or "Proxy"'), ({"ip": "x"}, "IP")],
)
def test_bad_load_balancer_status_entries_are_refused(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConversionError, match=message):
        from_dict(service({"type": "LoadBalancer"}, {"loadBalancer": {"ingress": [entry]}}))
