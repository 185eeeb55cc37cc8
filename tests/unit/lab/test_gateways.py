import ipaddress

from agent.model.convert import from_dict
from lab.controllers.gateways import gateway_addresses
from lab.seed import GATEWAY_CLASS
from lab.topology import SERVICE_CIDR


def _gw(name: str, cls: str = "tulle", address: str | None = None):
    obj = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
           "metadata": {"name": name, "namespace": "web"},
           "spec": {"gatewayClassName": cls, "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}
    if address:
        obj["status"] = {"addresses": [{"type": "IPAddress", "value": address}]}
    return from_dict(obj)


def _svc(ip: str):
    return from_dict({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s" + ip.replace(".", ""), "namespace": "web"},
                      "spec": {"clusterIP": ip, "ports": [{"port": 80}]}})


def test_tulle_gateways_without_an_address_get_one_from_the_service_range():
    classes = [from_dict(GATEWAY_CLASS), from_dict({**GATEWAY_CLASS, "metadata": {"name": "other"},
                                                    "spec": {"controllerName": "example.com/x"}})]
    fresh = gateway_addresses([_gw("a"), _gw("b", cls="other"), _gw("c", address="10.96.9.9")], classes, [])
    assert list(fresh) == [("web", "a")]
    assert ipaddress.ip_address(fresh[("web", "a")]) in SERVICE_CIDR


def test_addresses_avoid_service_and_gateway_ips_and_are_stable():
    classes = [from_dict(GATEWAY_CLASS)]
    first = gateway_addresses([_gw("a")], classes, [])[("web", "a")]
    again = gateway_addresses([_gw("a")], classes, [])[("web", "a")]
    assert first == again
    moved = gateway_addresses([_gw("a")], classes, [_svc(first)])[("web", "a")]
    assert moved != first
