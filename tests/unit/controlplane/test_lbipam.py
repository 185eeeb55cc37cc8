"""LoadBalancer IPAM, pure: the allocator's promises and the status it plans."""

import ipaddress

from agent.model.convert import from_dict
from agent.model.gateway_service import service_name
from controlplane.gatewayservice import desired_service
from controlplane.lbipam import LOAD_BALANCER_CLASS, Claim, allocate, plan, requested_address
from lab.seed import GATEWAY_CLASS


def _pool(name, *blocks, selector=None, disabled=False):
    spec = {"blocks": list(blocks), "disabled": disabled}
    if selector is not None:
        spec["serviceSelector"] = {"matchLabels": selector}
    return from_dict({"apiVersion": "networking.tulle.io/v1alpha1", "kind": "LoadBalancerIPPool",
                      "metadata": {"name": name}, "spec": spec})


def _claim(name, requested=None, current=None, **labels):
    return Claim(("Service", "web", name), labels, requested, current)


POOL = _pool("lab", {"cidr": "10.240.0.240/30"})  # .241 and .242 usable


def test_addresses_come_only_from_the_pool_and_are_stable_per_object():
    first = allocate([POOL], [_claim("a"), _claim("b")])
    assert set(first.addresses.values()) == {"10.240.0.241", "10.240.0.242"}
    again = allocate([POOL], [_claim("b"), _claim("a")])
    assert again.addresses == first.addresses


def test_exhausted_pool_makes_the_newcomer_wait_and_a_release_is_reused():
    held = allocate([POOL], [_claim("a"), _claim("b")]).addresses
    full = allocate([POOL], [_claim(n, current=held.get(("Service", "web", n))) for n in "ab"] + [_claim("c")])
    assert full.waiting == {("Service", "web", "c"): "no free address in pool(s) lab"}
    assert full.addresses == held  # the newcomer never takes a held address
    freed = held[("Service", "web", "a")]
    after = allocate([POOL], [_claim("b", current=held[("Service", "web", "b")]), _claim("c")])
    assert after.addresses[("Service", "web", "c")] == freed


def test_requested_address_is_honoured_when_in_a_pool_and_free():
    got = allocate([POOL], [_claim("a", requested="10.240.0.242")])
    assert got.addresses == {("Service", "web", "a"): "10.240.0.242"}


def test_requested_address_outside_the_pools_or_taken_waits_with_the_reason():
    got = allocate([POOL], [
        _claim("a", current="10.240.0.241"),
        _claim("b", requested="10.240.0.241"),
        _claim("c", requested="192.0.2.1"),
        _claim("d", requested="fd00::1"),
    ])
    assert got.addresses == {("Service", "web", "a"): "10.240.0.241"}
    assert got.waiting[("Service", "web", "b")] == "requested address 10.240.0.241 is already used by Service web/a"
    assert got.waiting[("Service", "web", "c")] == "requested address 192.0.2.1 is in no pool that selects it"
    assert "not an IPv4 address" in got.waiting[("Service", "web", "d")]


def test_an_address_no_pool_serves_any_more_is_replaced_never_kept():
    got = allocate([POOL], [_claim("gw", current="10.96.3.4")])  # a Gateway's old Service-range address
    assert ipaddress.ip_address(got.addresses[("Service", "web", "gw")]) in ipaddress.ip_network("10.240.0.240/30")


def test_selectors_and_disabled_pools():
    special = _pool("special", {"start": "192.0.2.10"}, selector={"tier": "edge"})
    off = _pool("off", {"start": "198.51.100.1"}, disabled=True)
    got = allocate([special, off], [_claim("edge", tier="edge"), _claim("plain"),
                                    _claim("kept", current="198.51.100.1")])
    assert got.addresses[("Service", "web", "edge")] == "192.0.2.10"
    assert got.addresses[("Service", "web", "kept")] == "198.51.100.1"  # a disabled pool keeps what it gave
    assert got.waiting[("Service", "web", "plain")] == "no free address in pool(s) off"
    assert allocate([special], [_claim("plain")]).waiting == {("Service", "web", "plain"): "no LoadBalancerIPPool selects it"}


def test_a_large_pool_costs_nothing_until_it_fills():
    big = _pool("big", {"cidr": "10.0.0.0/8"})
    got = allocate([big], [_claim(str(i)) for i in range(50)])
    assert len(set(got.addresses.values())) == 50


def _svc(name, type_="LoadBalancer", cls=None, ingress=None, lb_ip=None):
    spec = {"type": type_, "ports": [{"port": 80}], "clusterIP": "10.96.0.5"}
    if cls:
        spec["loadBalancerClass"] = cls
    if lb_ip:
        spec["loadBalancerIP"] = lb_ip
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "web"}, "spec": spec}
    if ingress:
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": ingress, "ipMode": "VIP"}]}}
    return from_dict(obj)


def _gw(name, cls="tulle", address=None, requested=None, infrastructure=None):
    obj = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
           "metadata": {"name": name, "namespace": "web", "uid": f"uid-{name}"},
           "spec": {"gatewayClassName": cls, "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}
    if infrastructure:
        obj["spec"]["infrastructure"] = infrastructure
    if requested:
        obj["spec"]["addresses"] = [{"type": "IPAddress", "value": requested}]
    if address:
        obj["status"] = {"addresses": [{"type": "IPAddress", "value": address}]}
    return from_dict(obj)


def test_plan_serves_ours_leaves_other_classes_and_releases_on_type_change():
    pool = _pool("lab", {"cidr": "10.240.0.240/28"})
    services = [
        _svc("mine"),
        _svc("classed", cls=LOAD_BALANCER_CLASS),
        _svc("metallb", cls="metallb.io/l2", ingress="203.0.113.7"),
        _svc("was-lb", type_="ClusterIP", ingress="10.240.0.245"),
        _svc("settled", ingress="10.240.0.246"),
    ]
    got = plan([pool], services, [], [])
    assert set(got.services) == {("web", "mine"), ("web", "classed"), ("web", "was-lb")}
    [entry] = got.services[("web", "mine")]["loadBalancer"]["ingress"]
    assert entry["ipMode"] == "VIP" and ipaddress.ip_address(entry["ip"]) in pool_net()
    assert got.services[("web", "was-lb")] == {"loadBalancer": {"ingress": []}}


def _own(*gateways):
    """Each Gateway's own Service, as tulle-controller makes it (controlplane/gatewayservice)."""
    return [from_dict(desired_service(g)) for g in gateways]


def pool_net():
    return ipaddress.ip_network("10.240.0.240/28")


def test_plan_gives_tulle_gateways_pool_addresses_replacing_service_range_ones():
    classes = [from_dict(GATEWAY_CLASS)]
    gateways = [_gw("old", address="10.96.7.7"), _gw("asks", requested="10.240.0.250"), _gw("foreign", cls="other")]
    got = plan([_pool("lab", {"cidr": "10.240.0.240/28"})], _own(*gateways[:2]), gateways, classes)
    assert set(got.gateways) == {("web", "old"), ("web", "asks")}
    assert ipaddress.ip_address(got.gateways[("web", "old")]) in pool_net()
    assert got.gateways[("web", "asks")] == "10.240.0.250"


def test_a_gateway_refused_for_its_parameters_holds_no_address():
    classes = [from_dict(GATEWAY_CLASS)]
    refused = _gw("refused", address="10.240.0.241", infrastructure={
        "parametersRef": {"group": "", "kind": "ConfigMap", "name": "knobs"}})
    served = _gw("served")
    own = _own(refused, served)
    got = plan([_pool("lab", {"cidr": "10.240.0.240/28"})], own, [refused, served], classes)
    assert got.gateways[("web", "refused")] is None
    assert "parametersRef" in got.waiting[("Gateway", "web", "refused")]
    assert ipaddress.ip_address(got.gateways[("web", "served")]) in pool_net()
    assert ("web", service_name("refused")) not in got.services  # it never held one


def test_a_service_waiting_for_an_address_has_none():
    got = plan([], [_svc("lonely", ingress="10.240.0.241")], [], [])
    assert got.services == {("web", "lonely"): {"loadBalancer": {"ingress": []}}}
    assert got.waiting == {("Service", "web", "lonely"): "no LoadBalancerIPPool selects it"}


def _ingress(name, address=None, cls="tulle"):
    obj = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": name, "namespace": "web"},
           "spec": {"ingressClassName": cls, "defaultBackend": {
               "service": {"name": "app", "port": {"number": 80}}}}}
    if address:
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": address}]}}
    return from_dict(obj)


def test_plan_gives_each_served_ingress_class_one_pool_address_beside_the_others():
    from lab.seed import INGRESS_CLASS

    classes = [from_dict(INGRESS_CLASS)]
    pool = _pool("lab", {"cidr": "10.240.0.240/30"})  # .241 and .242 usable
    got = plan([pool], [_svc("mine")], [], [], [_ingress("a", "10.96.3.3"), _ingress("b")],
               classes)
    address = got.ingress_classes["tulle"]
    assert address is not None and ipaddress.ip_address(address) in pool_net()  # not 10.96
    [entry] = got.services[("web", "mine")]["loadBalancer"]["ingress"]
    assert entry["ip"] != address  # one pool, no address given twice
    kept = plan([pool], [], [], [], [_ingress("a", address)], classes)
    assert kept.ingress_classes == {"tulle": address}
    # A class with no Ingress claims nothing; another controller's class is not Tulle's.
    assert plan([pool], [], [], [], [_ingress("x", cls="nginx")], classes).ingress_classes == {}
    held = [_svc("s1", ingress="10.240.0.241"), _svc("s2", ingress="10.240.0.242")]
    full = plan([pool], held, [], [], [_ingress("a")], classes)
    assert full.ingress_classes == {"tulle": None}
    assert "no free address" in full.waiting[("IngressClass", "", "tulle")]


def test_a_gateway_address_without_a_value_gets_a_pool_address():
    """GatewayAddressEmpty: ``addresses: [{type: IPAddress}]`` asks for any address."""
    gw = from_dict({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                    "metadata": {"name": "any", "namespace": "web", "uid": "u"},
                    "spec": {"gatewayClassName": "tulle", "addresses": [{"type": "IPAddress"}],
                             "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}})
    assert requested_address(gw) is None
    got = plan([_pool("lab", {"cidr": "10.240.0.240/28"})], _own(gw), [gw], [from_dict(GATEWAY_CLASS)])
    assert ipaddress.ip_address(got.gateways[("web", "any")]) in pool_net()
    assert got.waiting == {}


def test_a_gateway_asks_with_its_first_ip_address_that_has_a_value():
    gw = _gw("asks", requested="10.240.0.250")
    assert requested_address(gw) == "10.240.0.250"
    outside = _gw("outside", requested="192.0.2.1")
    got = plan([_pool("lab", {"cidr": "10.240.0.240/28"})], _own(gw, outside), [gw, outside],
               [from_dict(GATEWAY_CLASS)])
    assert got.gateways == {("web", "asks"): "10.240.0.250", ("web", "outside"): None}
    assert "192.0.2.1" in got.waiting[("Gateway", "web", "outside")]
