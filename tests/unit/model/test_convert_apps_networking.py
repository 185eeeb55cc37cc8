"""Converter tests for Deployment and NetworkPolicy."""

from __future__ import annotations

from typing import Any

import pytest

from agent.model.apps import Deployment, DeploymentStatus
from agent.model.convert import from_dict, to_dict
from agent.model.frozen import FrozenMap
from agent.model.meta import ConditionStatus, LabelSelector, Protocol, SelectorOperator
from agent.model.networking import NetworkPolicy, PolicyType
from tests.unit.model.helpers import DELETE, edit, error_of, round_trip

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "orders", "namespace": "shop", "labels": {"app": "orders"}},
    "spec": {
        "replicas": 3,
        "selector": {
            "matchLabels": {"app": "orders"},
            "matchExpressions": [{"key": "track", "operator": "In", "values": ["stable"]}],
        },
        "template": {
            "metadata": {
                "labels": {"app": "orders", "track": "stable"},
                "annotations": {"example.com/x": "y"},
            },
            "spec": {"containers": [{"name": "app", "command": ["sleep", "1000"]}]},
        },
    },
}

NETWORK_POLICY: dict[str, Any] = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "orders-allow", "namespace": "shop"},
    "spec": {
        "podSelector": {"matchLabels": {"app": "orders"}},
        "ingress": [
            {
                "from": [
                    {"podSelector": {"matchLabels": {"app": "web"}}},
                    {
                        "namespaceSelector": {
                            "matchExpressions": [{"key": "team", "operator": "Exists"}]
                        },
                        "podSelector": {},
                    },
                    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                ],
                "ports": [
                    {"port": 8080},
                    {"protocol": "UDP", "port": "dns"},
                    {"port": 30000, "endPort": 30100},
                ],
            },
            {},
        ],
        "egress": [{"to": [{"namespaceSelector": {}}], "ports": [{"port": 53, "protocol": "UDP"}]}],
    },
}


def test_deployment_reads_every_field() -> None:
    deploy = round_trip(DEPLOYMENT)
    assert isinstance(deploy, Deployment)
    spec = deploy.spec
    assert spec.replicas == 3
    assert spec.selector.match_labels == {"app": "orders"}
    assert spec.selector.match_expressions[0].operator is SelectorOperator.IN
    assert spec.template.metadata.labels == {"app": "orders", "track": "stable"}
    assert spec.template.metadata.name == ""
    assert spec.template.spec.containers[0].command == ("sleep", "1000")
    written = to_dict(deploy)
    assert written["spec"]["template"]["metadata"] == DEPLOYMENT["spec"]["template"]["metadata"]


def test_deployment_status_is_typed_and_kept() -> None:
    status = {
        "observedGeneration": 2,
        "replicas": 3,
        "updatedReplicas": 3,
        "readyReplicas": 2,
        "availableReplicas": 2,
        "conditions": [
            {
                "type": "Available",
                "status": "False",
                "reason": "MinimumReplicasUnavailable",
                "lastUpdateTime": "2024-01-02T03:04:05Z",
            }
        ],
    }
    deploy = round_trip(edit(DEPLOYMENT, "status", status))
    assert isinstance(deploy, Deployment)
    assert (deploy.status.ready_replicas, deploy.status.observed_generation) == (2, 2)
    assert deploy.status.conditions[0].status is ConditionStatus.FALSE
    assert to_dict(deploy)["status"] == status
    # No status yet: empty, and not written.
    fresh = from_dict(DEPLOYMENT)
    assert isinstance(fresh, Deployment)
    assert fresh.status == DeploymentStatus()
    assert "status" not in to_dict(fresh)


def test_deployment_replicas_default_to_one_and_zero_is_kept() -> None:
    deploy = round_trip(edit(DEPLOYMENT, "spec.replicas", DELETE))
    assert isinstance(deploy, Deployment) and deploy.spec.replicas == 1
    scaled_down = round_trip(edit(DEPLOYMENT, "spec.replicas", 0))
    assert isinstance(scaled_down, Deployment) and scaled_down.spec.replicas == 0
    assert to_dict(scaled_down)["spec"]["replicas"] == 0


def test_network_policy_reads_peers_and_ports() -> None:
    policy = round_trip(NETWORK_POLICY)
    assert isinstance(policy, NetworkPolicy)
    spec = policy.spec
    assert spec.policy_types == (PolicyType.INGRESS, PolicyType.EGRESS)
    web, team_ns, block = spec.ingress[0].from_
    assert web.pod_selector == LabelSelector(match_labels=FrozenMap({"app": "web"}))
    assert web.namespace_selector is None
    # An empty selector (all pods) differs from an absent one.
    assert team_ns.pod_selector == LabelSelector()
    assert team_ns.namespace_selector is not None
    assert block.ip_block is not None and block.ip_block.except_ == ("10.1.0.0/16",)
    numbered, named, ranged = spec.ingress[0].ports
    assert (numbered.protocol, numbered.port, numbered.end_port) == (Protocol.TCP, 8080, None)
    assert (named.protocol, named.port) == (Protocol.UDP, "dns")
    assert (ranged.port, ranged.end_port) == (30000, 30100)
    # `- {}` allows everything.
    assert spec.ingress[1].from_ == () and spec.ingress[1].ports == ()
    written = to_dict(policy)["spec"]
    assert written["ingress"][0]["from"][2] == {
        "ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}
    }
    assert written["ingress"][0]["from"][1]["podSelector"] == {}
    assert written["ingress"][1] == {}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, (PolicyType.INGRESS,)),
        ({"ingress": [{}]}, (PolicyType.INGRESS,)),
        ({"egress": [{}]}, (PolicyType.INGRESS, PolicyType.EGRESS)),
        ({"egress": []}, (PolicyType.INGRESS,)),
        ({"policyTypes": ["Egress"]}, (PolicyType.EGRESS,)),
    ],
)
def test_network_policy_types_default_like_kubernetes(
    spec: dict[str, Any], expected: tuple[PolicyType, ...]
) -> None:
    policy = round_trip(edit(NETWORK_POLICY, "spec", {"podSelector": {}, **spec}))
    assert isinstance(policy, NetworkPolicy)
    assert policy.spec.policy_types == expected
    assert policy.spec.affects_ingress == (PolicyType.INGRESS in expected)
    assert policy.spec.affects_egress == (PolicyType.EGRESS in expected)


def test_network_policy_pod_selector_defaults_to_everything() -> None:
    policy = from_dict(edit(NETWORK_POLICY, "spec.podSelector", DELETE))
    assert isinstance(policy, NetworkPolicy)
    assert policy.spec.pod_selector.is_empty


NP = "NetworkPolicy shop/orders-allow"
DEPLOY = "Deployment shop/orders"

ERRORS = [
    (edit(DEPLOYMENT, "spec.selector", DELETE), f"{DEPLOY}: spec.selector: required"),
    (
        edit(DEPLOYMENT, "spec.selector", {}),
        f"{DEPLOY}: spec.selector: empty selector is invalid for a Deployment",
    ),
    (
        edit(DEPLOYMENT, "spec.template.metadata.labels.track", "canary"),
        f"{DEPLOY}: spec.template.metadata.labels: `selector` does not match template `labels`",
    ),
    (
        edit(DEPLOYMENT, "spec.replicas", -1),
        f"{DEPLOY}: spec.replicas: must be at least 0, got -1",
    ),
    (
        edit(DEPLOYMENT, "spec.replicas", "3"),
        f'{DEPLOY}: spec.replicas: expected integer, got string "3"',
    ),
    (
        edit(DEPLOYMENT, "spec.template.spec.restartPolicy", "Never"),
        f'{DEPLOY}: spec.template.spec.restartPolicy: unsupported value "Never" '
        "(supported: Always)",
    ),
    (
        edit(DEPLOYMENT, "spec.template.spec", DELETE),
        f"{DEPLOY}: spec.template.spec: required",
    ),
    (
        edit(DEPLOYMENT, "spec.selector.matchExpressions[0].operator", "Is"),
        f'{DEPLOY}: spec.selector.matchExpressions[0].operator: unsupported value "Is" '
        "(supported: In, NotIn, Exists, DoesNotExist)",
    ),
    (
        edit(DEPLOYMENT, "spec.selector.matchExpressions[0].values", []),
        f"{DEPLOY}: spec.selector.matchExpressions[0].values: "
        "must be specified when operator is In",
    ),
    (
        edit(NETWORK_POLICY, "spec.ingress[0].from[0]", {}),
        f"{NP}: spec.ingress[0].from[0]: must specify a peer "
        "(podSelector, namespaceSelector or ipBlock)",
    ),
    (
        edit(NETWORK_POLICY, "spec.ingress[0].from[2].podSelector", {}),
        f"{NP}: spec.ingress[0].from[2].ipBlock: may not be combined with podSelector or "
        "namespaceSelector",
    ),
    (
        edit(NETWORK_POLICY, "spec.ingress[0].from[2].ipBlock.cidr", "10.0.0.0"),
        f'{NP}: spec.ingress[0].from[2].ipBlock.cidr: invalid value "10.0.0.0": '
        "must be a valid CIDR such as 10.0.0.0/8",
    ),
    (
        edit(NETWORK_POLICY, "spec.ingress[0].from[2].ipBlock.except[0]", "192.168.0.0/16"),
        f"{NP}: spec.ingress[0].from[2].ipBlock.except[0]: "
        "must be a strict subset of cidr 10.0.0.0/8",
    ),
    (
        edit(NETWORK_POLICY, "spec.ingress[0].from[2].ipBlock.except[0]", "10.0.0.0/8"),
        f"{NP}: spec.ingress[0].from[2].ipBlock.except[0]: "
        "must be a strict subset of cidr 10.0.0.0/8",
    ),
    (
        edit(NETWORK_POLICY, "spec.ingress[0].ports[2].endPort", 29999),
        f"{NP}: spec.ingress[0].ports[2].endPort: must be greater than or equal to port (30000)",
    ),
    (
        edit(NETWORK_POLICY, "spec.ingress[0].ports[1].endPort", 100),
        f"{NP}: spec.ingress[0].ports[1].endPort: may not be specified when port is a named port",
    ),
    (
        edit(NETWORK_POLICY, "spec.ingress[0].ports[2].port", DELETE),
        f"{NP}: spec.ingress[0].ports[2].endPort: may not be specified when port is not specified",
    ),
    (
        edit(NETWORK_POLICY, "spec.ingress[0].ports[0].port", 0),
        f"{NP}: spec.ingress[0].ports[0].port: must be between 1 and 65535, got 0",
    ),
    (
        edit(NETWORK_POLICY, "spec.ingress[0].ports[0].port", [80]),
        f"{NP}: spec.ingress[0].ports[0].port: expected integer or string, got array",
    ),
    (
        edit(NETWORK_POLICY, "spec.ingress[0].ports[0].protocol", "ICMP"),
        f'{NP}: spec.ingress[0].ports[0].protocol: unsupported value "ICMP" '
        "(supported: TCP, UDP, SCTP)",
    ),
    (
        edit(NETWORK_POLICY, "spec.policyTypes", ["Ingress", "Ingress"]),
        f'{NP}: spec.policyTypes[1]: duplicate value "Ingress"',
    ),
    (
        edit(NETWORK_POLICY, "spec.policyTypes", ["ingress"]),
        f'{NP}: spec.policyTypes[0]: unsupported value "ingress" (supported: Ingress, Egress)',
    ),
    (
        edit(NETWORK_POLICY, "spec.egress", {"to": []}),
        f"{NP}: spec.egress: expected array, got object",
    ),
]


@pytest.mark.parametrize(("doc", "message"), ERRORS, ids=[m for _, m in ERRORS])
def test_invalid_objects_name_object_and_field(doc: dict[str, Any], message: str) -> None:
    assert error_of(doc) == message
