"""Each of Tulle's Gateways' Service of type LoadBalancer (controlplane/gatewayservice, pure),
the address LoadBalancer IPAM gives the Gateway through it (controlplane/lbipam), and the
attacker's cases: a user's Service squatting the name, one labelled with the Gateway's name to
take its address, a Gateway of the same name in another namespace."""

import copy
import ipaddress
import re
from ipaddress import IPv4Address, IPv4Network

from agent.datapath.services import NodeSite, plan_services
from agent.model.convert import from_dict
from agent.model.gateway_service import (
    GATEWAY_NAME_LABEL,
    is_service_of,
    looks_like_gateway_service,
    service_name,
)
from agent.model.lbpool import LOAD_BALANCER_CLASS
from controlplane.gatewayservice import desired_service, plan
from controlplane.lbipam import plan as plan_addresses
from lab.seed import GATEWAY_CLASS

CLASSES = [from_dict(GATEWAY_CLASS)]
POOL = from_dict({"apiVersion": "networking.tulle.io/v1alpha1", "kind": "LoadBalancerIPPool",
                  "metadata": {"name": "lab"}, "spec": {"blocks": [{"cidr": "10.240.0.240/28"}]}})
POOL_NET = ipaddress.ip_network("10.240.0.240/28")
HTTP = {"name": "http", "port": 80, "protocol": "HTTP"}


def gateway(name="edge", ns="web", uid=None, listeners=(HTTP,), infrastructure=None,
            requested=None, address=None):
    obj = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
           "metadata": {"name": name, "namespace": ns, "uid": f"uid-{ns}-{name}" if uid is None else uid},
           "spec": {"gatewayClassName": "tulle", "listeners": list(listeners)}}
    if infrastructure:
        obj["spec"]["infrastructure"] = infrastructure
    if requested:
        obj["spec"]["addresses"] = [{"type": "IPAddress", "value": requested}]
    if address:
        obj["status"] = {"addresses": [{"type": "IPAddress", "value": address}]}
    return from_dict(obj)


def served(obj, cluster_ip="10.96.0.20", ingress=None):
    """``obj`` as the API server serves it: a resourceVersion, a ClusterIP, nodePorts and the
    defaults it fills in."""
    out = copy.deepcopy(obj)
    out["metadata"]["resourceVersion"] = "7"
    spec = out["spec"]
    spec.update(clusterIP=cluster_ip, sessionAffinity="None", externalTrafficPolicy="Cluster",
                allocateLoadBalancerNodePorts=True)
    spec["ports"] = [{**p, "nodePort": 30000 + i} for i, p in enumerate(spec.get("ports") or [])]
    if ingress:
        out["status"] = {"loadBalancer": {"ingress": [{"ip": ingress, "ipMode": "VIP"}]}}
    return out


def user_service(name, ns="web", labels=None, type_="LoadBalancer", owner=None):
    meta = {"name": name, "namespace": ns, "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [owner]
    return served({"apiVersion": "v1", "kind": "Service", "metadata": meta,
                   "spec": {"type": type_, "selector": {"app": "mine"},
                            "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                       "targetPort": 8080}]}}, cluster_ip="10.96.0.99")


def run(gateways, raw):
    typed = [from_dict(o) for o in raw]
    return plan(gateways, typed, {(o["metadata"]["namespace"], o["metadata"]["name"]): o
                                  for o in raw})


# -- the Service ------------------------------------------------------------------------------

def test_the_service_is_a_classed_load_balancer_with_the_listeners_ports_and_no_selector():
    gw = gateway(listeners=(HTTP, {"name": "other-host", "port": 80, "protocol": "HTTP",
                                   "hostname": "b.example"},
                            {"name": "https", "port": 443, "protocol": "HTTPS",
                             "tls": {"certificateRefs": [{"name": "cert"}]}},
                            {"name": "dns", "port": 53, "protocol": "UDP"}),
                 infrastructure={"labels": {"team": "a", GATEWAY_NAME_LABEL: "forged"},
                                 "annotations": {"note": "x"}})
    svc = desired_service(gw)
    assert svc["metadata"]["name"] == "tulle-gateway-edge"
    assert svc["metadata"]["namespace"] == "web"
    # An infrastructure label cannot rename the owner.
    assert svc["metadata"]["labels"] == {"team": "a", GATEWAY_NAME_LABEL: "edge"}
    assert svc["metadata"]["annotations"] == {"note": "x"}
    assert svc["metadata"]["ownerReferences"] == [{
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "name": "edge",
        "uid": "uid-web-edge", "controller": True}]
    spec = svc["spec"]
    assert spec["type"] == "LoadBalancer" and spec["loadBalancerClass"] == LOAD_BALANCER_CLASS
    assert "selector" not in spec
    assert [(p["name"], p["port"], p["protocol"], p["targetPort"]) for p in spec["ports"]] == [
        ("udp-53", 53, "UDP", 53), ("tcp-80", 80, "TCP", 80), ("tcp-443", 443, "TCP", 443)]
    typed = from_dict(svc)
    assert is_service_of(typed, gw) and looks_like_gateway_service(typed)


def test_service_names_are_rfc1035_labels_and_never_shared():
    label = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    names = {g: service_name(g) for g in ("a.b", "a-b", "x" * 253, "x" * 252 + "y", "edge")}
    assert names["edge"] == "tulle-gateway-edge"
    assert len(set(names.values())) == len(names)
    for name in names.values():
        assert len(name) <= 63 and label.match(name), name


# -- the plan ---------------------------------------------------------------------------------

def test_a_new_gateway_gets_its_service_and_one_from_no_api_gets_none():
    gw = gateway()
    got = run([gw], [])
    assert got.create == [desired_service(gw)] and not got.update and not got.delete
    assert run([gateway(uid="")], []).create == []  # nothing could own it


def test_an_unchanged_service_is_left_alone_whatever_the_api_server_filled_in():
    gw = gateway(infrastructure={"labels": {"team": "a"}})
    got = run([gw], [served(desired_service(gw))])
    assert (got.create, got.update, got.delete, got.conflicts) == ([], [], [], {})


def test_listeners_and_infrastructure_changes_update_it_keeping_what_the_server_assigned():
    before = gateway(infrastructure={"labels": {"team": "a", "old": "1"}})
    have = served(desired_service(before))
    after = gateway(listeners=(HTTP, {"name": "alt", "port": 8080, "protocol": "HTTP"}),
                    infrastructure={"labels": {"team": "b"}, "annotations": {"k": "v"}})
    [updated] = run([after], [have]).update
    assert updated["metadata"]["resourceVersion"] == "7"  # a PUT at what was read
    assert updated["metadata"]["labels"] == {"team": "b", GATEWAY_NAME_LABEL: "edge"}  # old gone
    assert updated["metadata"]["annotations"] == {"k": "v"}
    assert updated["spec"]["clusterIP"] == "10.96.0.20"
    assert [(p["port"], p.get("nodePort")) for p in updated["spec"]["ports"]] == [
        (80, 30000), (8080, None)]  # the API server assigns the new port's


def test_its_service_goes_with_the_gateway_or_when_the_gateway_leaves_tulle():
    gw = gateway()
    mine = served(desired_service(gw))
    assert run([], [mine]).delete == [("web", "tulle-gateway-edge")]
    # Re-created under the same name: a new uid; the old Service is not the new Gateway's.
    reborn = gateway(uid="uid-new")
    got = run([reborn], [mine])
    assert got.delete == [("web", "tulle-gateway-edge")] and not got.update
    assert "not this Gateway's" in got.conflicts[("web", "edge")]


def test_a_service_of_another_load_balancer_class_is_made_again():
    gw = gateway()
    have = served(desired_service(gw))
    have["spec"]["loadBalancerClass"] = "metallb.io/l2"  # immutable: cannot be updated
    assert run([gw], [have]).delete == [("web", "tulle-gateway-edge")]


# -- the attacker's cases ---------------------------------------------------------------------

def test_a_user_service_squatting_the_name_is_never_overwritten_nor_deleted():
    gw = gateway(requested="10.240.0.250")
    squatter = user_service("tulle-gateway-edge")
    got = run([gw], [squatter])
    assert (got.create, got.update, got.delete) == ([], [], [])
    assert "Service web/tulle-gateway-edge exists and is not this Gateway's" in \
        got.conflicts[("web", "edge")]
    assert run([], [squatter]).delete == []  # no Gateway at all: still not ours
    # No address for the Gateway, and why; the squatter is an ordinary LoadBalancer claim
    # that the Gateway's requested address is not given to through the Gateway.
    lb = plan_addresses([POOL], [from_dict(squatter)], [gw], CLASSES)
    assert lb.gateways == {("web", "edge"): None}
    assert "is not this Gateway's" in lb.waiting[("Gateway", "web", "edge")]
    [entry] = lb.services[("web", "tulle-gateway-edge")]["loadBalancer"]["ingress"]
    assert entry["ip"] != "10.240.0.250"


def test_a_forged_owner_reference_to_another_uid_is_not_ownership():
    gw = gateway()
    forged = user_service("tulle-gateway-edge", owner={
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "name": "edge",
        "uid": "guessed", "controller": True})
    got = run([gw], [forged])
    assert not got.update and "not this Gateway's" in got.conflicts[("web", "edge")]


def test_a_service_labelled_with_the_gateway_name_takes_nothing_from_it():
    gw = gateway(requested="10.240.0.250")
    mine = served(desired_service(gw))
    hijack = user_service("hijack", labels={GATEWAY_NAME_LABEL: "edge"})
    got = run([gw], [mine, hijack])
    assert (got.create, got.update, got.delete, got.conflicts) == ([], [], [], {})
    lb = plan_addresses([POOL], [from_dict(mine), from_dict(hijack)], [gw], CLASSES)
    assert lb.gateways == {("web", "edge"): "10.240.0.250"}
    assert lb.services[("web", "tulle-gateway-edge")] == {
        "loadBalancer": {"ingress": [{"ip": "10.240.0.250", "ipMode": "VIP"}]}}
    [entry] = lb.services[("web", "hijack")]["loadBalancer"]["ingress"]
    assert entry["ip"] != "10.240.0.250"
    # The agent: the labelled Service is served as any LoadBalancer Service is.
    assert not looks_like_gateway_service(from_dict(hijack))


def test_a_gateway_of_the_same_name_in_another_namespace_has_a_service_and_address_of_its_own():
    web, shop = gateway(ns="web"), gateway(ns="shop")
    got = run([web, shop], [served(desired_service(web))])
    assert [(s["metadata"]["namespace"], s["metadata"]["name"]) for s in got.create] == [
        ("shop", "tulle-gateway-edge")]
    services = [from_dict(served(desired_service(g))) for g in (web, shop)]
    assert not is_service_of(services[0], shop) and not is_service_of(services[1], web)
    lb = plan_addresses([POOL], services, [web, shop], CLASSES)
    assert lb.gateways[("web", "edge")] != lb.gateways[("shop", "edge")]
    for ns in ("web", "shop"):
        [entry] = lb.services[(ns, "tulle-gateway-edge")]["loadBalancer"]["ingress"]
        assert entry["ip"] == lb.gateways[(ns, "edge")]


# -- the address through the Service ----------------------------------------------------------

def test_the_gateway_address_is_its_services_and_survives_the_move_to_a_service():
    gw = gateway(address="10.240.0.247")  # the address it had before it had a Service
    mine = from_dict(served(desired_service(gw)))
    lb = plan_addresses([POOL], [mine], [gw], CLASSES)
    assert lb.gateways == {("web", "edge"): "10.240.0.247"}
    assert lb.services[("web", "tulle-gateway-edge")] == {
        "loadBalancer": {"ingress": [{"ip": "10.240.0.247", "ipMode": "VIP"}]}}
    settled = from_dict(served(desired_service(gw), ingress="10.240.0.247"))
    again = plan_addresses([POOL], [settled], [gateway()], CLASSES)
    assert again.gateways == {("web", "edge"): "10.240.0.247"} and again.services == {}


def test_an_upgrade_keeps_gateway_addresses_while_their_services_are_made():
    """The round that creates the Services plans on a snapshot without them: each Gateway
    keeps the address it shows (not released, not swapped, not open to a Service asking)."""
    a, b = gateway("a", address="10.240.0.243"), gateway("b", address="10.240.0.242")
    thief = from_dict(served({"apiVersion": "v1", "kind": "Service",
                              "metadata": {"name": "thief", "namespace": "other"},
                              "spec": {"type": "LoadBalancer", "loadBalancerIP": "10.240.0.243",
                                       "ports": [{"port": 80}]}}))
    lb = plan_addresses([POOL], [thief], [a, b], CLASSES)
    assert lb.gateways == {("web", "a"): "10.240.0.243", ("web", "b"): "10.240.0.242"}
    assert ("Gateway", "web", "a") not in lb.waiting
    assert "10.240.0.243" not in str(lb.services.get(("other", "thief")))


def test_without_a_pool_a_gateway_waits_and_says_why():
    gw = gateway()
    lb = plan_addresses([], [], [gw], CLASSES)
    assert lb.gateways == {("web", "edge"): None}
    assert lb.waiting[("Gateway", "web", "edge")] == "no LoadBalancerIPPool selects it"
    held = from_dict(served(desired_service(gw), ingress="10.240.0.241"))
    none = plan_addresses([], [held], [gw], CLASSES)
    assert none.gateways == {("web", "edge"): None}
    assert none.waiting[("Gateway", "web", "edge")] == "no LoadBalancerIPPool selects it"
    assert none.services[("web", "tulle-gateway-edge")] == {"loadBalancer": {"ingress": []}}


# -- the agent --------------------------------------------------------------------------------

SITE = NodeSite(IPv4Address("10.0.0.11"), IPv4Network("10.244.1.0/24"))


def test_the_agent_programs_no_external_entry_for_a_gateways_service():
    """Its address is the Gateway's (the waypoint): an entry without backends at the same key
    would shadow it and drop every client; a user's LoadBalancer Service keeps its own."""
    gw = gateway()
    mine = from_dict(served(desired_service(gw), ingress="10.240.0.250"))
    raw = user_service("hijack", labels={GATEWAY_NAME_LABEL: "edge"})
    raw["status"] = {"loadBalancer": {"ingress": [{"ip": "10.240.0.251", "ipMode": "VIP"}]}}
    hijack = from_dict(raw)
    keys = {str(k.vip) for k in plan_services([mine, hijack], [], site=SITE).entries}
    assert "10.240.0.250" not in keys  # the Gateway's address stays the Gateway's
    assert {"10.240.0.251", "10.0.0.11", "10.96.0.99", "10.96.0.20"} <= keys


# -- the Gateway's status ---------------------------------------------------------------------

class _Writer:
    def __init__(self):
        self.writes = []

    def update_status(self, kind, namespace, name, status):
        self.writes.append((kind, namespace, name, status))
        return {}


def test_a_squatted_gateway_is_not_programmed_address_not_assigned_naming_the_squatter():
    """Even when it asked for an address: AddressNotUsable is for an address that cannot be
    given, and this one could be, through a Service of its own."""
    from lab.controllers.gateways import GatewayController

    gw = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
          "metadata": {"name": "edge", "namespace": "web", "uid": "u1", "generation": 1,
                       "resourceVersion": "4"},
          "spec": {"gatewayClassName": "tulle", "listeners": [HTTP],
                   "addresses": [{"type": "IPAddress", "value": "10.240.0.250"}]}}
    pool = {"apiVersion": "networking.tulle.io/v1alpha1", "kind": "LoadBalancerIPPool",
            "metadata": {"name": "lab"}, "spec": {"blocks": [{"cidr": "10.240.0.240/28"}]}}
    squatter = from_dict(user_service("tulle-gateway-edge"))
    writer = _Writer()
    GatewayController(writer).reconcile([GATEWAY_CLASS, gw, pool], [squatter])
    [status] = [s for kind, _, _, s in writer.writes if kind == "Gateway"]
    assert status["addresses"] == []
    programmed = next(c for c in status["conditions"] if c["type"] == "Programmed")
    assert (programmed["status"], programmed["reason"]) == ("False", "AddressNotAssigned")
    assert "Service web/tulle-gateway-edge exists and is not this Gateway's" in programmed["message"]
