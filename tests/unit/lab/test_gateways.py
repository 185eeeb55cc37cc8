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
