"""The lab's Ingress controller: one address per IngressClass of Tulle's, announced in the
status of every Ingress it serves (never a Service's or a Gateway's address), taken back
from an Ingress that changes class, and a Warning Event per TLS entry whose Secret cannot
serve."""

from __future__ import annotations

import base64
import ipaddress
from typing import Any

from agent.model.convert import from_dict, to_dict
from lab.controllers.ingresses import IngressController, plan_statuses, tls_problems
from lab.seed import INGRESS_CLASS
from lab.topology import LB_POOL_CIDR, SERVICE_CIDR
from tests.unit.gatewayapi.helpers import service, tls_secret
from tests.unit.gatewayapi.ingress_helpers import ingress, ingress_class, path, rule

CLASSES = [from_dict(INGRESS_CLASS), ingress_class("nginx", "k8s.io/ingress-nginx")]


def web(name: str = "web", **kwargs: Any):
    return ingress(name, rule("a.com", path("/", "app")), **kwargs)


def test_served_ingresses_share_their_class_address_and_others_get_none():
    mine, classless, theirs = web("a"), web("b", class_name=None), web("c", class_name="nginx")
    plan = plan_statuses([mine, classless, theirs], CLASSES, [], [])
    assert set(plan) == {("default", "a"), ("default", "b")}  # the lab's class is the default
    [entry] = plan[("default", "a")]["loadBalancer"]["ingress"]
    assert plan[("default", "b")] == plan[("default", "a")]
    assert ipaddress.ip_address(entry["ip"]) in SERVICE_CIDR


def test_the_address_is_kept_and_never_a_services_or_a_gateways():
    first = plan_statuses([web()], CLASSES, [], [])[("default", "web")]
    ip = first["loadBalancer"]["ingress"][0]["ip"]
    assert plan_statuses([web(address=ip)], CLASSES, [], [])[("default", "web")] == first
    moved = plan_statuses([web()], CLASSES, [service("s", cluster_ip=ip)], [])
    assert moved[("default", "web")]["loadBalancer"]["ingress"][0]["ip"] != ip
    gw = from_dict({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                    "metadata": {"name": "g", "namespace": "default"},
                    "spec": {"gatewayClassName": "tulle", "listeners": [
                        {"name": "http", "port": 80, "protocol": "HTTP"}]},
                    "status": {"addresses": [{"type": "IPAddress", "value": ip}]}})
    moved = plan_statuses([web()], CLASSES, [], [gw])
    assert moved[("default", "web")]["loadBalancer"]["ingress"][0]["ip"] != ip
    # and a Gateway never takes the class's address: Gateways' come from the LoadBalancer
    # pool (controlplane.lbipam), which the lab keeps outside the service range
    assert ipaddress.ip_address(ip) in SERVICE_CIDR and not LB_POOL_CIDR.overlaps(SERVICE_CIDR)


def test_an_ingress_that_leaves_the_class_loses_its_address():
    ip = plan_statuses([web()], CLASSES, [], [])[("default", "web")]["loadBalancer"]["ingress"][0]["ip"]
    stayer = web("stays", address=ip)
    leaver = web("leaves", class_name="nginx", address=ip)
    plan = plan_statuses([stayer, leaver], CLASSES, [], [])
    assert plan[("default", "leaves")] == {"loadBalancer": {}}
    other = web("other", class_name="nginx", address="192.0.2.7")  # not Tulle's address
    assert ("default", "other") not in plan_statuses([stayer, other], CLASSES, [], [])


def _pem_secret(name: str, crt: bytes, key: bytes):
    return from_dict({"apiVersion": "v1", "kind": "Secret",
                      "metadata": {"name": name, "namespace": "default"},
                      "type": "kubernetes.io/tls",
                      "data": {"tls.crt": base64.b64encode(crt).decode(),
                               "tls.key": base64.b64encode(key).decode()}})


def test_tls_problems_name_the_entry_hosts_and_secret():
    ing = web(tls=[{"hosts": ["a.com"], "secretName": "good"},
                   {"hosts": ["b.com"], "secretName": "missing"},
                   {"hosts": ["c.com"], "secretName": "opaque"},
                   {"hosts": ["d.com"], "secretName": "bad"},
                   {"hosts": ["e.com"]}])
    secrets = [_pem_secret("good", b"crt", b"key"), _pem_secret("bad", b"crt", b"key"),
               tls_secret("opaque", "default", valid=False)]

    problems = tls_problems(ing, secrets, lambda crt, key: None)
    assert problems == [
        "spec.tls[1] (hosts b.com): Secret default/missing not found: HTTPS is refused for these hosts",
        "spec.tls[2] (hosts c.com): Secret default/opaque is of type Opaque, not kubernetes.io/tls: HTTPS is refused for these hosts",
        "spec.tls[4] (hosts e.com): no secretName: HTTPS is refused for these hosts",
    ]
    bad = tls_problems(ing, secrets[1:2], lambda crt, key: "tls.key is not a valid private key")
    assert ("spec.tls[3] (hosts d.com): Secret default/bad: tls.key is not a valid private key"
            ": HTTPS is refused for these hosts") in bad


class _Api:
    def __init__(self) -> None:
        self.writes: list[tuple[str, str, str, dict[str, Any]]] = []

    def update_status(self, kind, namespace, name, status):
        self.writes.append((kind, namespace, name, status))
        return {}


class _Events:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str, str]] = []

    def record(self, about, reason, message, component, type_="Normal"):
        self.recorded.append((about["name"], reason, type_))


def test_controller_writes_status_once_and_warns_once_per_problem():
    api, events = _Api(), _Events()
    controller = IngressController(api, events, lambda crt, key: None)
    ing = web(tls=[{"hosts": ["a.com"], "secretName": "missing"}])
    objects = [to_dict(ing), INGRESS_CLASS]
    controller.reconcile(objects, [])
    [(kind, ns, name, status)] = api.writes
    assert (kind, ns, name) == ("Ingress", "default", "web")
    assert events.recorded == [("web", "InvalidTLSSecret", "Warning")]
    controller.reconcile([{**to_dict(ing), "status": status}, INGRESS_CLASS], [])
    assert len(api.writes) == 1 and len(events.recorded) == 1


def test_two_classes_never_share_an_address():
    second = ingress_class("tulle-b")
    ip = plan_statuses([web()], CLASSES, [], [])[("default", "web")]["loadBalancer"]["ingress"][0]["ip"]
    a = web("a", address=ip)
    moved = web("moved", class_name="tulle-b", address=ip)  # it was in class tulle
    plan = plan_statuses([a, moved], [*CLASSES, second], [], [])
    first = plan[("default", "a")]["loadBalancer"]["ingress"][0]["ip"]
    other = plan[("default", "moved")]["loadBalancer"]["ingress"][0]["ip"]
    assert first == ip and other != ip


def test_pool_addresses_are_announced_and_a_waiting_class_takes_its_address_back():
    pooled = plan_statuses([web("a"), web("b", class_name="nginx")], CLASSES, [], [],
                           {"tulle": "10.240.0.245"})
    assert pooled == {("default", "a"): {"loadBalancer": {"ingress": [{"ip": "10.240.0.245"}]}}}
    waiting = plan_statuses([web("a", address="10.240.0.245"), web("c")], CLASSES, [], [],
                            {"tulle": None})
    assert waiting == {("default", "a"): {"loadBalancer": {}}}  # "c" never had one
