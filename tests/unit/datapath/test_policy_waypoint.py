"""The waypoint's policy check equals the kernel's two checks of a direct connection."""

from __future__ import annotations

from typing import Any

import pytest

from agent.datapath.policy_waypoint import connection_policy
from agent.model.convert import from_dict
from agent.model.core import Namespace, Pod
from agent.model.networking import NetworkPolicy

from .policy_cluster import pod_doc


def _pod(ns: str, name: str, ip: str, app: str) -> Pod:
    doc = pod_doc(ns, name, ip, {"app": app}, [{"name": "alt", "containerPort": 9090}])
    doc["metadata"]["uid"] = f"{ns}-{name}"
    obj = from_dict(doc)
    assert isinstance(obj, Pod)
    return obj


def _ns(name: str, labels: dict[str, str]) -> Namespace:
    obj = from_dict({"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": name, "labels": labels}})
    assert isinstance(obj, Namespace)
    return obj


def _policy(ns: str, spec: dict[str, Any]) -> NetworkPolicy:
    obj = from_dict({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                     "metadata": {"name": "p", "namespace": ns}, "spec": spec})
    assert isinstance(obj, NetworkPolicy)
    return obj


PODS = [_pod("a", "srv", "10.244.1.5", "srv"), _pod("b", "cli", "10.244.2.6", "cli"),
        _pod("c", "cli", "10.244.2.7", "cli")]
NAMESPACES = [_ns("a", {"team": "a"}), _ns("b", {"team": "b"}), _ns("c", {"team": "c"})]
SRV, B, C = ("10.244.1.5", 8080), ("10.244.2.6", 40000), ("10.244.2.7", 40000)


@pytest.mark.parametrize(("spec", "ns", "expect"), [
    ({"podSelector": {}, "policyTypes": ["Ingress"]}, "a", (False, False)),
    ({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {
        "matchLabels": {"team": "b"}}}]}]}, "a", (True, False)),
    ({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {
        "cidr": "10.244.0.0/16", "except": ["10.244.2.7/32"]}}]}]}, "a", (True, False)),
    ({"podSelector": {}, "policyTypes": ["Egress"]}, "b", (False, True)),
    ({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{
        "namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "srv"}}}],
        "ports": [{"port": 8080}]}]}, "b", (True, True)),
], ids=["deny-ingress", "ingress-from-namespace", "ipblock-except", "egress-deny",
        "egress-to-pod-on-port"])
def test_client_egress_and_backend_ingress_both_apply(
        spec: dict[str, Any], ns: str, expect: tuple[bool, bool]) -> None:
    judge = connection_policy(PODS, NAMESPACES, [_policy(ns, spec)])
    assert (judge.allows(B, SRV), judge.allows(C, SRV)) == expect


def test_named_port_and_wrong_port() -> None:
    spec = {"podSelector": {}, "ingress": [{"ports": [{"port": "alt"}]}]}
    judge = connection_policy(PODS, NAMESPACES, [_policy("a", spec)])
    assert judge.allows(B, ("10.244.1.5", 9090))
    assert not judge.allows(B, ("10.244.1.5", 8080))


def test_no_policy_allows_and_unknown_clients_are_the_world() -> None:
    assert connection_policy(PODS, NAMESPACES, []).allows(B, SRV)
    spec = {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]}
    judge = connection_policy(PODS, NAMESPACES, [_policy("a", spec)])
    assert judge.allows(B, SRV)
    assert not judge.allows(("10.244.9.9", 1), SRV)  # not a pod: not in any namespace
    assert not judge.allows(("not-an-ip", 1), SRV)


def test_waypoint_names_the_policies_of_both_sides() -> None:
    ingress = _policy("a", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {
        "matchLabels": {"team": "b"}}}]}]})
    egress = from_dict({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                        "metadata": {"name": "out", "namespace": "b"},
                        "spec": {"podSelector": {}, "policyTypes": ["Egress"],
                                 "egress": [{"ports": [{"port": 8080}]}]}})
    assert isinstance(egress, NetworkPolicy)
    policy = connection_policy(PODS, NAMESPACES, [ingress, egress])
    assert policy.allowed_by(B, SRV) == (("b/out",), ("a/p",))
    assert policy.allowed_by(C, SRV) is None  # denied: nothing to name
    open_policy = connection_policy(PODS, NAMESPACES, [])
    assert open_policy.allowed_by(C, SRV) == ((), ())  # no policy selects either side


def test_the_gate_names_only_matching_policies_once_per_pair() -> None:
    """PolicyGate (the waypoint's ``admits`` and ``policy_names``): a policy that selects
    the backend but whose rule does not match the client is not named; a pair is judged
    once (the request path reads a cache), and a policy change judges it afresh."""
    from l7proxy.netpolicy import PolicyGate

    from_b = _policy("a", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {
        "matchLabels": {"team": "b"}}}]}]})
    from_c = from_dict({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                        "metadata": {"name": "from-c", "namespace": "a"},
                        "spec": {"podSelector": {}, "ingress": [{"from": [{
                            "namespaceSelector": {"matchLabels": {"team": "c"}}}]}]}})
    assert isinstance(from_c, NetworkPolicy)
    policy = connection_policy(PODS, NAMESPACES, [from_b, from_c])
    calls: list[tuple[Any, ...]] = []
    real = policy.allowed_by

    class Counting(type(policy)):  # type: ignore[misc]
        def allowed_by(self, *args: Any, **kwargs: Any) -> Any:
            calls.append(args)
            return real(*args, **kwargs)

    gate = PolicyGate(Counting(policy.plan, policy.identities, policy.errors,
                               policy.namespaces))
    assert gate.names(B, SRV) == ((), ("a/p",))
    assert gate.names(C, SRV) == ((), ("a/from-c",))
    assert gate(B, SRV) and gate((B[0], 50000), SRV)  # another client port: same pair
    assert len(calls) == 2
    gate.swap(connection_policy(PODS, NAMESPACES, [from_b]))
    assert gate.names(C, SRV) is None and not gate(C, SRV)


def test_a_client_the_kernel_found_outside_is_judged_as_the_world() -> None:
    """A Gateway's client from outside the cluster (from_netdev recorded the world
    identity): no egress policy of ours; the backend's ingress judges it by ipBlock, and
    a rule for pods or namespaces never admits it."""
    from l7proxy.netpolicy import PolicyGate

    outside = ("10.240.0.2", 40000)
    open_policy = connection_policy(PODS, NAMESPACES, [])
    assert not open_policy.allows(outside, SRV)  # unknown, not known outside: fail closed
    assert open_policy.allowed_by(outside, SRV, outside=True) == ((), ())
    pods_only = connection_policy(PODS, NAMESPACES, [_policy("a", {
        "podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]})])
    assert not pods_only.allows(outside, SRV, outside=True)
    fabric = connection_policy(PODS, NAMESPACES, [_policy("a", {
        "podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.240.0.0/24"}}]}]})])
    assert fabric.allowed_by(outside, SRV, outside=True) == ((), ("a/p",))
    assert not fabric.allows(("192.0.2.1", 1), SRV, outside=True)
    gate = PolicyGate(open_policy)
    assert not gate(outside, SRV)
    gate.saw_outside(outside[0])
    assert gate(outside, SRV)
