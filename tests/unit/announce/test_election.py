"""L2 announcement, pure: one ready node per address, stable, moving only what it must."""

from collections import Counter

from agent.announce.announcer import plan_announcements
from agent.announce.election import announced_by, elect, load_balancer_addresses
from agent.model.cache import ModelCache
from agent.model.convert import from_dict
from lab.seed import GATEWAY_CLASS

NODES = [f"node{i}" for i in range(1, 6)]
ADDRESSES = [f"10.240.0.{i}" for i in range(241, 255)] + [f"192.0.2.{i}" for i in range(1, 100)]


def test_each_address_has_exactly_one_announcer_among_the_ready_nodes():
    for address in ADDRESSES:
        mine = [n for n in NODES if address in announced_by(n, ADDRESSES, NODES)]
        assert mine == [elect(address, NODES)]
    assert len(Counter(elect(a, NODES) for a in ADDRESSES)) == len(NODES)  # spread, not one node


def test_the_order_nodes_are_listed_in_does_not_matter():
    assert all(elect(a, NODES) == elect(a, list(reversed(NODES))) for a in ADDRESSES)


def test_when_a_node_goes_away_only_its_addresses_move():
    before = {a: elect(a, NODES) for a in ADDRESSES}
    rest = [n for n in NODES if n != "node2"]
    after = {a: elect(a, rest) for a in ADDRESSES}
    for address in ADDRESSES:
        if before[address] == "node2":
            assert after[address] in rest
        else:
            assert after[address] == before[address]
    assert any(v == "node2" for v in before.values())


def test_a_node_that_is_not_ready_announces_nothing_and_no_nodes_no_announcer():
    assert announced_by("node9", ADDRESSES, NODES) == frozenset()
    assert elect("10.240.0.241", []) is None


def _node(name, ready):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                       "reason": "x", "message": "",
                                       "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}


def _svc(name, ip, cls=None, type_="LoadBalancer"):
    spec = {"type": type_, "ports": [{"port": 80}]}
    if cls:
        spec["loadBalancerClass"] = cls
    return from_dict({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "d"},
                      "spec": spec, "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}})


def _gw(name, ip, cls="tulle"):
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": name, "namespace": "d"},
            "spec": {"gatewayClassName": cls, "listeners": [{"name": "h", "port": 80, "protocol": "HTTP"}]},
            "status": {"addresses": [{"type": "IPAddress", "value": ip}]}}


def test_what_is_announced_services_of_our_class_and_tulle_gateways():
    services = [_svc("a", "10.240.0.241"), _svc("b", "10.240.0.242", cls="tulle.io/lb"),
                _svc("c", "203.0.113.1", cls="metallb.io/l2"), _svc("d", "10.240.0.243", type_="ClusterIP")]
    gateways = [from_dict(_gw("g", "10.240.0.244")), from_dict(_gw("o", "10.240.0.245", cls="other"))]
    got = load_balancer_addresses(services, gateways, [from_dict(GATEWAY_CLASS)])
    assert got == {"10.240.0.241", "10.240.0.242", "10.240.0.244"}


def test_the_agents_plan_from_its_cluster_objects_follows_readiness():
    objects = [_node("node1", True), _node("node2", True), GATEWAY_CLASS, _gw("g", "10.240.0.244"),
               _svc("a", "10.240.0.241")]
    both = {n: plan_announcements(n, objects, ModelCache()) for n in ("node1", "node2")}
    assert both["node1"] | both["node2"] == {"10.240.0.241", "10.240.0.244"}
    assert not both["node1"] & both["node2"]
    objects[0] = _node("node1", False)
    assert plan_announcements("node2", objects, ModelCache()) == {"10.240.0.241", "10.240.0.244"}
    assert plan_announcements("node1", objects, ModelCache()) == frozenset()


def test_ingress_class_addresses_are_announced_only_for_tulles_classes():
    from lab.seed import INGRESS_CLASS

    def ingress(name, cls, ip):
        return from_dict({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                          "metadata": {"name": name, "namespace": "web"},
                          "spec": {"ingressClassName": cls, "defaultBackend": {
                              "service": {"name": "app", "port": {"number": 80}}}},
                          "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}})

    theirs = from_dict({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                        "metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}})
    found = load_balancer_addresses(
        [], [], [], [ingress("a", "tulle", "10.240.0.247"), ingress("b", "nginx", "10.240.0.248")],
        [from_dict(INGRESS_CLASS), theirs])
    assert found == {"10.240.0.247"}
