"""Readers for networking.k8s.io/v1 kinds: NetworkPolicy."""

from __future__ import annotations

import ipaddress

from agent.model.convert_core import MAX_PORT, MIN_PORT, port_number
from agent.model.convert_meta import read_label_selector
from agent.model.meta import LabelSelector, ObjectMeta, Protocol
from agent.model.networking import (
    IPBlock,
    NetworkPolicy,
    NetworkPolicyEgressRule,
    NetworkPolicyIngressRule,
    NetworkPolicyPeer,
    NetworkPolicyPort,
    NetworkPolicySpec,
    PolicyType,
)
from agent.model.reader import REQUIRED, Reader
from agent.model.validation import cidr, iana_svc_name


def read_network_policy(r: Reader, metadata: ObjectMeta) -> NetworkPolicy:
    return NetworkPolicy(metadata=metadata, spec=r.obj("spec", _read_spec, REQUIRED))


def _read_spec(r: Reader) -> NetworkPolicySpec:
    pod_selector = r.obj("podSelector", read_label_selector, LabelSelector())
    ingress = r.objects("ingress", _read_ingress_rule)
    egress = r.objects("egress", _read_egress_rule)
    policy_types = r.enum_list("policyTypes", PolicyType, max_items=2)
    if not policy_types:
        # Kubernetes defaulting: every policy affects ingress; egress only with egress rules.
        policy_types = (PolicyType.INGRESS, PolicyType.EGRESS) if egress else (PolicyType.INGRESS,)
    return NetworkPolicySpec(
        pod_selector=pod_selector, policy_types=policy_types, ingress=ingress, egress=egress
    )


def _read_ingress_rule(r: Reader) -> NetworkPolicyIngressRule:
    return NetworkPolicyIngressRule(
        from_=r.objects("from", _read_peer), ports=r.objects("ports", _read_port)
    )


def _read_egress_rule(r: Reader) -> NetworkPolicyEgressRule:
    return NetworkPolicyEgressRule(
        to=r.objects("to", _read_peer), ports=r.objects("ports", _read_port)
    )


def _read_peer(r: Reader) -> NetworkPolicyPeer:
    peer = NetworkPolicyPeer(
        pod_selector=r.obj("podSelector", read_label_selector),
        namespace_selector=r.obj("namespaceSelector", read_label_selector),
        ip_block=r.obj("ipBlock", _read_ip_block),
    )
    selectors = peer.pod_selector is not None or peer.namespace_selector is not None
    if peer.ip_block is None and not selectors:
        r.fail(None, "must specify a peer (podSelector, namespaceSelector or ipBlock)")
    if peer.ip_block is not None and selectors:
        r.fail("ipBlock", "may not be combined with podSelector or namespaceSelector")
    return peer


def _read_ip_block(r: Reader) -> IPBlock:
    block = IPBlock(
        cidr=r.string("cidr", REQUIRED, check=cidr), except_=r.string_list("except", check=cidr)
    )
    network = ipaddress.ip_network(block.cidr, strict=False)
    for i, text in enumerate(block.except_):
        inner = ipaddress.ip_network(text, strict=False)
        if (
            inner.version != network.version
            or not inner.subnet_of(network)  # type: ignore[arg-type]
            or inner.prefixlen <= network.prefixlen
        ):
            r.fail(f"except[{i}]", f"must be a strict subset of cidr {block.cidr}")
    return block


def _read_port(r: Reader) -> NetworkPolicyPort:
    port = NetworkPolicyPort(
        protocol=r.enum("protocol", Protocol, Protocol.TCP),
        port=r.int_or_string("port", int_check=port_number, str_check=iana_svc_name),
        end_port=r.integer("endPort", minimum=MIN_PORT, maximum=MAX_PORT),
    )
    if port.end_port is not None:
        if port.port is None:
            r.fail("endPort", "may not be specified when port is not specified")
        if isinstance(port.port, str):
            r.fail("endPort", "may not be specified when port is a named port")
        if port.end_port < port.port:
            r.fail("endPort", f"must be greater than or equal to port ({port.port})")
    return port
