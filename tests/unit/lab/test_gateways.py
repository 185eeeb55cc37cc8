from agent.model.convert import from_dict


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


def test_a_gateway_gets_its_pool_address_or_waits_not_programmed():
    from lab.controllers.gateways import with_address

    computed = {"conditions": [{"type": "Accepted", "status": "True"}, {"type": "Programmed", "status": "True"}],
                "addresses": [{"type": "IPAddress", "value": "10.96.1.1"}]}
    assert with_address(computed, "10.240.0.241", "")["addresses"] == [{"type": "IPAddress", "value": "10.240.0.241"}]
    waiting = with_address(computed, None, "no free address in pool(s) lab")
    assert waiting["addresses"] == []
    programmed = next(c for c in waiting["conditions"] if c["type"] == "Programmed")
    assert (programmed["status"], programmed["reason"]) == ("False", "AddressNotAssigned")
    assert programmed["message"] == "no free address in pool(s) lab"


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


def test_a_gateway_whose_requested_address_cannot_be_given_is_address_not_usable():
    """Upstream GatewayStaticAddresses: an asked-for address the implementation cannot use
    gives Programmed False, AddressNotUsable (AddressNotAssigned is for none assigned)."""
    from lab.controllers.gateways import with_address

    computed = {"conditions": [{"type": "Accepted", "status": "True"},
                               {"type": "Programmed", "status": "True"}]}
    waiting = with_address(computed, None, "requested address 192.0.2.1 is in no pool", True)
    programmed = next(c for c in waiting["conditions"] if c["type"] == "Programmed")
    assert (programmed["status"], programmed["reason"]) == ("False", "AddressNotUsable")
    accepted = next(c for c in waiting["conditions"] if c["type"] == "Accepted")
    assert accepted["status"] == "True"
    assert waiting["addresses"] == []


def test_a_gateway_with_no_pool_says_where_the_nodes_serve_it():
    """Issue 13's fallback, reported honestly: no address in ``status.addresses`` (a node
    address there would claim the listeners' own ports, which the conformance suite dials),
    Programmed False AddressNotAssigned, and the message names the nodePorts the waypoint
    listeners are served at (not the TCP listener's: the kernel serves that one only at a
    Gateway address)."""
    from lab.controllers.gateways import GatewayController
    from lab.seed import GATEWAY_CLASS
    from tests.unit.datapath.test_gateway_nodeports import TCP, gateway, gateway_service

    gw = gateway(listeners=({"name": "http", "port": 80, "protocol": "HTTP"}, TCP))
    gw["metadata"].update(generation=1, resourceVersion="3")
    svc = from_dict(gateway_service(gw))
    writer = _Writer()
    GatewayController(writer).reconcile([GATEWAY_CLASS, gw], [svc])  # no LoadBalancerIPPool
    [status] = [s for kind, _, name, s in writer.writes if (kind, name) == ("Gateway", "edge")]
    assert status.get("addresses") == []
    programmed = next(c for c in status["conditions"] if c["type"] == "Programmed")
    assert (programmed["status"], programmed["reason"]) == ("False", "AddressNotAssigned")
    assert programmed["message"] == (
        "no LoadBalancerIPPool selects it; served meanwhile at every node's address on its "
        "Service's nodePorts (listener port->nodePort: 80->31080)")


def test_a_gateway_with_an_address_says_nothing_of_node_ports():
    from lab.controllers.gateways import with_address

    computed = {"conditions": [{"type": "Programmed", "status": "True", "message": "ok"}]}
    assert with_address(computed, "10.240.0.241", "", node_ports={80: 31080}) == {
        **computed, "addresses": [{"type": "IPAddress", "value": "10.240.0.241"}]}
