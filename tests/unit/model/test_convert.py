"""Kind-independent converter behaviour: identity in errors, kinds, apiVersions, names."""

from __future__ import annotations

from typing import Any

import pytest

from agent.model.convert import ConversionError, from_dict, to_dict
from agent.model.core import Pod, Service
from agent.model.kinds import KINDS
from agent.model.meta import ObjectMeta
from agent.model.resource import RESOURCE_CLASSES
from tests.unit.model.helpers import DELETE, edit, error_of

KNOWN = (
    "AuthorizationPolicy, BackendTLSPolicy, BackendTrafficPolicy, ConfigMap, Deployment, EndpointSlice, GRPCRoute, Gateway, GatewayClass, HTTPFault, HTTPLocalRateLimitPolicy, HTTPRoute, Ingress, IngressClass, ListenerSet, LoadBalancerIPPool, Namespace, NetworkPolicy, Node, "
    "PeerAuthentication, "
    "Pod, ReferenceGrant, Secret, Service, TCPRoute, TLSRoute, UDPRoute"
)

SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "orders", "namespace": "shop"},
    "spec": {"ports": [{"port": 80}]},
}


def test_error_carries_identity_and_field() -> None:
    with pytest.raises(ConversionError) as info:
        from_dict(edit(SERVICE, "spec.ports[0].port", DELETE))
    error = info.value
    assert (error.kind, error.namespace, error.name) == ("Service", "shop", "orders")
    assert (error.path, error.message) == ("spec.ports[0].port", "required")
    assert str(error) == "Service shop/orders: spec.ports[0].port: required"
    assert isinstance(error, ValueError)


def test_error_for_object_without_namespace_uses_default() -> None:
    doc = edit(SERVICE, "metadata.namespace", DELETE)
    assert error_of(edit(doc, "spec.ports", "80")) == (
        'Service default/orders: spec.ports: expected array, got string "80"'
    )


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {"apiVersion": "v1", "kind": "Foo", "metadata": {"name": "x"}},
            f'Foo x: kind: unknown kind "Foo" (apiVersion v1); known kinds: {KNOWN}',
        ),
        (
            {"apiVersion": "v1", "kind": "service", "metadata": {"name": "x", "namespace": "a"}},
            f'service a/x: kind: unknown kind "service" (apiVersion v1); known kinds: {KNOWN}',
        ),
        ({"apiVersion": "v1", "metadata": {"name": "x"}}, "object x: kind: required"),
        (
            {"apiVersion": "v1", "kind": 3, "metadata": {"name": "x"}},
            "object x: kind: expected string, got integer 3",
        ),
        (edit(SERVICE, "apiVersion", DELETE), "Service shop/orders: apiVersion: required"),
        (
            edit(SERVICE, "apiVersion", "apps/v1"),
            'Service shop/orders: apiVersion: unsupported apiVersion "apps/v1" for kind Service '
            "(supported: v1)",
        ),
        (edit(SERVICE, "metadata", DELETE), "Service default/<unnamed>: metadata.name: required"),
        (
            edit(SERVICE, "metadata", "orders"),
            'Service default/<unnamed>: metadata: expected object, got string "orders"',
        ),
        (
            edit(SERVICE, "metadata.name", ""),
            "Service shop/<unnamed>: metadata.name: required",
        ),
        (
            edit(SERVICE, "metadata.name", "orders_v2"),
            'Service shop/orders_v2: metadata.name: invalid value "orders_v2": must be an RFC 1035 '
            "label (lowercase alphanumerics or '-', starting with a letter and ending with an "
            "alphanumeric)",
        ),
        (
            edit(SERVICE, "metadata.namespace", "Shop"),
            'Service Shop/orders: metadata.namespace: invalid value "Shop": must be a lowercase '
            "RFC 1123 label (lowercase alphanumerics or '-', starting and ending with an "
            "alphanumeric)",
        ),
        (
            edit(SERVICE, "metadata.labels", ["app=orders"]),
            "Service shop/orders: metadata.labels: expected object, got array",
        ),
        (["not", "an", "object"], "object <unnamed>: expected an object, got array"),
    ],
)
def test_identity_level_errors(doc: Any, message: str) -> None:
    assert error_of(doc) == message


def test_pod_names_may_be_subdomains_but_service_names_may_not() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "orders.v2"},
        "spec": {"containers": [{"name": "c"}]},
    }
    assert isinstance(from_dict(pod), Pod)
    assert error_of(edit(SERVICE, "metadata.name", "orders.v2")).startswith(
        'Service shop/orders.v2: metadata.name: invalid value "orders.v2"'
    )


def test_unknown_fields_are_ignored() -> None:
    doc = edit(SERVICE, "spec.ipFamilyPolicy", "SingleStack")
    doc = edit(doc, "metadata.managedFields", [{"manager": "kubectl"}])
    doc = edit(doc, "status", {"loadBalancer": {}})
    assert from_dict(doc) == from_dict(SERVICE)


def test_null_means_unset() -> None:
    svc = from_dict(edit(SERVICE, "spec.selector", None))
    assert isinstance(svc, Service)
    assert svc.spec.selector == {}


def test_to_dict_writes_kind_api_version_and_metadata_first() -> None:
    written = to_dict(from_dict(SERVICE))
    assert list(written)[:3] == ["apiVersion", "kind", "metadata"]
    assert written["metadata"] == {"name": "orders", "namespace": "shop"}


def test_to_dict_accepts_models_built_in_code() -> None:
    svc = Service(metadata=ObjectMeta(name="built", namespace="shop"))
    written = to_dict(svc)
    assert written == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "built", "namespace": "shop"},
        "spec": {"type": "ClusterIP", "sessionAffinity": "None"},
    }


def test_every_registered_kind_has_a_model_class() -> None:
    assert sorted(info.kind for info in KINDS) == sorted(cls.kind for cls in RESOURCE_CLASSES)
