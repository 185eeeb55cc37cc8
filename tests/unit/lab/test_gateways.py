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


class _Writer:
    def __init__(self):
        self.writes = []

    def update_status(self, kind, namespace, name, status):
        self.writes.append((kind, namespace, name, status))
        return {}


def test_authorization_policies_get_accepted_and_it_is_written_once():
    from lab.controllers.gateways import GatewayController

    ap = {"apiVersion": "security.tulle.io/v1", "kind": "AuthorizationPolicy",
          "metadata": {"name": "p", "namespace": "web", "generation": 2, "resourceVersion": "5"},
          "spec": {"targetRefs": [{"kind": "Service", "name": "missing"}]}}
    writer = _Writer()
    controller = GatewayController(writer)
    controller.reconcile([ap], [])
    [(kind, ns, name, status)] = writer.writes
    assert (kind, ns, name) == ("AuthorizationPolicy", "web", "p")
    [c] = status["conditions"]
    assert (c["type"], c["status"], c["reason"], c["observedGeneration"]) == (
        "Accepted", "False", "TargetNotFound", 2)
    controller.reconcile([{**ap, "status": status}], [])
    assert len(writer.writes) == 1  # unchanged: not written again
