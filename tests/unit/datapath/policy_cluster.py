"""A small cluster for policy tests: namespaces, pods with identities, a NetworkPolicy builder."""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Address
from typing import Any

from agent.datapath.identity import allocate_identities, identity_labels
from agent.datapath.policy import PodEndpoint, PolicyPlan, compile_policy
from agent.datapath.policy_cidr import CidrRule
from agent.datapath.policy_plan import endpoint_from_pod
from agent.datapath.policy_ports import PortRule
from agent.model.convert import from_dict
from agent.model.core import Pod
from agent.model.networking import NetworkPolicy

NAMESPACE_LABELS = {
    "prod": {"env": "prod"},
    "dev": {"env": "dev"},
    "mon": {"purpose": "monitoring"},
}


def pod_doc(
    namespace: str, name: str, ip: str, labels: dict[str, str], ports: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "main", "ports": ports}]},
        "status": {"podIP": ip},
    }


def endpoints(docs: list[dict[str, Any]]) -> list[PodEndpoint]:
    """The policy view of the pods in ``docs``, with allocated identities."""
    pods = [from_dict(doc) for doc in docs]
    assert all(isinstance(pod, Pod) for pod in pods)
    sets = {
        pod.metadata.key: identity_labels(pod.metadata.namespace, pod.metadata.labels, pod.spec.service_account)
        for pod in pods
        if isinstance(pod, Pod)
    }
    allocation = allocate_identities(sets.values())
    result = []
    for pod in pods:
        assert isinstance(pod, Pod)
        endpoint = endpoint_from_pod(pod, allocation.by_labels[sets[pod.metadata.key]])
        assert endpoint is not None
        result.append(endpoint)
    return result


HTTP = {"name": "http", "containerPort": 8080}
METRICS = {"name": "metrics", "containerPort": 9100}
PODS = endpoints(
    [
        pod_doc("prod", "web-1", "10.0.1.10", {"app": "web", "pod-template-hash": "a"}, [HTTP]),
        pod_doc("prod", "web-2", "10.0.2.10", {"app": "web", "pod-template-hash": "b"}, [HTTP]),
        pod_doc("prod", "db", "10.0.1.11", {"app": "db"}, [{"name": "pg", "containerPort": 5432}]),
        pod_doc(
            "dev",
            "client",
            "10.0.2.20",
            {"app": "client"},
            [{"name": "http", "containerPort": 9090}],
        ),
        pod_doc("mon", "prom", "10.0.1.30", {"app": "prom"}, [METRICS]),
    ]
)
BY_NAME = {pod.name: pod for pod in PODS}
WEB1, WEB2, DB, CLIENT, PROM = (
    BY_NAME[name].ip for name in ("web-1", "web-2", "db", "client", "prom")
)
ID_WEB, ID_DB, ID_CLIENT, ID_PROM = (
    BY_NAME[name].identity for name in ("web-1", "db", "client", "prom")
)
LOCAL = frozenset({WEB1, DB, PROM})
"""This node's endpoints; web-2 and client run on the other node."""


def netpol(spec: dict[str, Any], name: str = "np", namespace: str = "prod") -> NetworkPolicy:
    policy = from_dict(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )
    assert isinstance(policy, NetworkPolicy)
    return policy


def compile_specs(*specs: dict[str, Any], pods: list[PodEndpoint] | None = None) -> PolicyPlan:
    """Compile one policy per spec (named np0, np1, ... in prod) for this node."""
    policies = [netpol(spec, name=f"np{i}") for i, spec in enumerate(specs)]
    return compile_policy(policies, PODS if pods is None else pods, NAMESPACE_LABELS, LOCAL)


def ip(text: str) -> IPv4Address:
    return IPv4Address(text)


def unnamed(rules: Mapping[Any, Any]) -> dict[Any, Any]:
    """A plan's rule maps without the policy set ids (policy_names), to compare port rules."""

    def strip(value: Any) -> Any:
        if isinstance(value, CidrRule):
            return CidrRule(value.deny, strip(value.ports))
        return tuple(PortRule(r.protocol, r.first, r.last) for r in value)

    return {key: strip(value) for key, value in rules.items()}
