"""Kind registry and resolution of user-typed kind names."""

from __future__ import annotations

import pytest

from agent.model.kinds import KINDS, UnknownKindError, kind_info, resolve_kind


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("HTTPRoute", "HTTPRoute"),
        ("httproute", "HTTPRoute"),
        ("httproutes", "HTTPRoute"),
        ("httproutes.gateway.networking.k8s.io", "HTTPRoute"),
        ("httproute.gateway.networking.k8s.io", "HTTPRoute"),
        ("httproutes.v1beta1.gateway.networking.k8s.io", "HTTPRoute"),
        ("svc", "Service"),
        ("Services", "Service"),
        ("services.v1", "Service"),
        ("ns", "Namespace"),
        ("po", "Pod"),
        ("deploy", "Deployment"),
        ("deployments.apps", "Deployment"),
        ("deployments.v1.apps", "Deployment"),
        ("netpol", "NetworkPolicy"),
        ("networkpolicies.networking.k8s.io", "NetworkPolicy"),
        ("gc", "GatewayClass"),
        ("gtw", "Gateway"),
        ("gateways", "Gateway"),
        ("endpointslices.discovery.k8s.io", "EndpointSlice"),
        ("referencegrants", "ReferenceGrant"),
        ("secret", "Secret"),
        ("tcproutes.gateway.networking.k8s.io", "TCPRoute"),
        ("udproute.v1.gateway.networking.k8s.io", "UDPRoute"),
        ("  Pods  ", "Pod"),
    ],
)
def test_resolve_kind_accepts_kubectl_forms(text: str, kind: str) -> None:
    assert resolve_kind(text).kind == kind


@pytest.mark.parametrize("text", ["foo", "routes", "pods.apps", "httproutes.example.com", ""])
def test_unknown_kinds_list_the_known_ones(text: str) -> None:
    with pytest.raises(UnknownKindError) as info:
        resolve_kind(text)
    assert str(info.value) == (
        f'unknown kind "{text}"; known kinds: AuthorizationPolicy, BackendTLSPolicy, BackendTrafficPolicy, ConfigMap, Deployment, EndpointSlice, GRPCRoute, Gateway, GatewayClass, '
        "HTTPFault, HTTPLocalRateLimitPolicy, HTTPRoute, Ingress, IngressClass, ListenerSet, LoadBalancerIPPool, Namespace, NetworkPolicy, Node, PeerAuthentication, Pod, ReferenceGrant, Secret, Service, TCPRoute, TLSRoute, UDPRoute"
    )
    assert isinstance(info.value, LookupError)


def test_kind_info_fields() -> None:
    route = kind_info("HTTPRoute")
    assert route.api_version == "gateway.networking.k8s.io/v1"
    assert route.api_versions == (
        "gateway.networking.k8s.io/v1",
        "gateway.networking.k8s.io/v1beta1",
    )
    assert route.group == "gateway.networking.k8s.io"
    assert route.resource == "httproutes.gateway.networking.k8s.io"
    assert route.namespaced
    assert kind_info("Service").group == "" and kind_info("Service").resource == "services"
    assert kind_info("ReferenceGrant").api_version == "gateway.networking.k8s.io/v1beta1"


def test_scopes() -> None:
    cluster_scoped = {info.kind for info in KINDS if not info.namespaced}
    assert cluster_scoped == {"Namespace", "Node", "GatewayClass", "IngressClass", "LoadBalancerIPPool"}


def test_kind_info_is_case_sensitive() -> None:
    with pytest.raises(UnknownKindError):
        kind_info("service")


def test_names_are_unambiguous() -> None:
    names = [n for info in KINDS for n in (info.kind.lower(), info.plural, *info.short_names)]
    assert len(names) == len(set(names))
