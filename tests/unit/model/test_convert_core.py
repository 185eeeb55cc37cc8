"""Converter tests for core kinds: Namespace, Pod, Service, EndpointSlice, Secret."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest

from agent.model.convert import from_dict, to_dict
from agent.model.core import (
    AddressType,
    ClientIPConfig,
    EndpointSlice,
    Namespace,
    Pod,
    PodPhase,
    PodStatus,
    RestartPolicy,
    Secret,
    Service,
    ServiceType,
    SessionAffinity,
    SessionAffinityConfig,
)
from agent.model.meta import ConditionStatus, Protocol
from tests.unit.model.helpers import DELETE, edit, error_of, round_trip

RFC1123_LABEL = (
    "must be a lowercase RFC 1123 label (lowercase alphanumerics or '-', "
    "starting and ending with an alphanumeric)"
)

NAMESPACE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Namespace",
    "metadata": {"name": "shop", "labels": {"team": "payments"}},
}

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "orders-0",
        "namespace": "shop",
        "uid": "0c1e7b9a",
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "orders",
                "uid": "d-1",
                "controller": True,
                "blockOwnerDeletion": True,
            },
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "cfg", "uid": "c-1"},
        ],
        "resourceVersion": "42",
        "generation": 3,
        "creationTimestamp": "2024-01-02T03:04:05Z",
        "labels": {"app": "orders", "app.kubernetes.io/version": "v1"},
        "annotations": {"example.com/note": "anything goes here: {}"},
    },
    "spec": {
        "nodeName": "node-1",
        "nodeSelector": {"kubernetes.io/hostname": "node-1"},
        "restartPolicy": "Never",
        "containers": [
            {
                "name": "app",
                "image": "python:3.11",
                "command": ["python3", "-m", "http.server"],
                "args": ["8080"],
                "env": [{"name": "MODE", "value": "fast"}, {"name": "EMPTY"}],
                "ports": [
                    {"name": "http", "containerPort": 8080},
                    {"containerPort": 9000, "protocol": "UDP"},
                ],
            },
            {"name": "sidecar"},
        ],
    },
    "status": {
        "phase": "Running",
        "podIP": "10.1.0.5",
        "hostIP": "192.168.0.10",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "PodReady",
                "message": "all containers ready",
                "lastTransitionTime": "2024-01-02T03:04:06+01:00",
            }
        ],
    },
}

SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "orders", "namespace": "shop"},
    "spec": {
        "type": "NodePort",
        "clusterIP": "10.96.0.10",
        "selector": {"app": "orders"},
        "ports": [
            {
                "name": "http",
                "port": 80,
                "targetPort": "http",
                "appProtocol": "http",
                "nodePort": 30080,
            },
            {"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"},
        ],
        "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
    },
}

ENDPOINT_SLICE: dict[str, Any] = {
    "apiVersion": "discovery.k8s.io/v1",
    "kind": "EndpointSlice",
    "metadata": {
        "name": "orders-abc12",
        "namespace": "shop",
        "labels": {"kubernetes.io/service-name": "orders"},
    },
    "addressType": "IPv4",
    "endpoints": [
        {
            "addresses": ["10.1.0.5"],
            "conditions": {"ready": True, "serving": True, "terminating": False},
            "nodeName": "node-1",
            "hostname": "orders-0",
            "zone": "zone-a",
            "targetRef": {"kind": "Pod", "namespace": "shop", "name": "orders-0", "uid": "u1"},
        },
        {"addresses": ["10.1.0.6"]},
        {"addresses": ["10.1.0.7"], "conditions": {"ready": False, "terminating": True}},
    ],
    "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}],
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


SECRET: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "creds", "namespace": "shop"},
    "type": "Opaque",
    "data": {"username": b64(b"admin"), "password": b64(b"old")},
    "stringData": {"password": "s3cret", "note": "plain"},
}

TLS_SECRET: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "gw-cert", "namespace": "infra"},
    "type": "kubernetes.io/tls",
    "data": {"tls.crt": b64(b"CERT"), "tls.key": b64(b"KEY")},
}


# --- valid objects ---------------------------------------------------------------------


def test_namespace_is_cluster_scoped_and_round_trips() -> None:
    ns = round_trip(edit(NAMESPACE, "metadata.namespace", "ignored"))
    assert isinstance(ns, Namespace)
    assert ns.metadata.namespace == ""
    assert ns.metadata.key == "shop"
    assert ns.metadata.labels == {"team": "payments"}
    assert to_dict(ns) == NAMESPACE


def test_pod_reads_every_field() -> None:
    pod = round_trip(POD)
    assert isinstance(pod, Pod)
    meta = pod.metadata
    assert (meta.uid, meta.resource_version, meta.generation) == ("0c1e7b9a", "42", 3)
    assert meta.creation_timestamp == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert meta.annotations["example.com/note"] == "anything goes here: {}"
    app, sidecar = pod.spec.containers
    assert app.command == ("python3", "-m", "http.server") and app.args == ("8080",)
    assert [(e.name, e.value) for e in app.env] == [("MODE", "fast"), ("EMPTY", "")]
    assert [(p.name, p.container_port, p.protocol) for p in app.ports] == [
        ("http", 8080, Protocol.TCP),
        (None, 9000, Protocol.UDP),
    ]
    assert (sidecar.image, sidecar.command, sidecar.ports) == ("", (), ())
    assert pod.spec.node_name == "node-1"
    assert pod.spec.node_selector == {"kubernetes.io/hostname": "node-1"}
    owner = meta.controller
    assert owner is not None
    assert (owner.api_version, owner.kind, owner.name, owner.uid) == (
        "apps/v1",
        "Deployment",
        "orders",
        "d-1",
    )
    assert meta.owner_references[1].controller is None
    assert pod.spec.restart_policy is RestartPolicy.NEVER
    assert pod.status is not None
    assert (pod.status.phase, pod.status.pod_ip) == (PodPhase.RUNNING, "10.1.0.5")
    condition = pod.status.conditions[0]
    assert condition.status is ConditionStatus.TRUE
    # Offsets normalise to UTC, as the API server stores metav1.Time.
    assert condition.last_transition_time == datetime(2024, 1, 2, 2, 4, 6, tzinfo=UTC)


def test_pod_written_in_kubernetes_shape() -> None:
    written = to_dict(from_dict(POD))
    assert written["status"]["podIP"] == "10.1.0.5"
    assert written["status"]["hostIP"] == "192.168.0.10"
    assert written["status"]["conditions"][0]["lastTransitionTime"] == "2024-01-02T02:04:06Z"
    assert written["spec"]["containers"][0]["env"][1] == {"name": "EMPTY"}
    assert written["spec"]["containers"][1] == {"name": "sidecar"}
    assert written["metadata"]["creationTimestamp"] == "2024-01-02T03:04:05Z"
    assert written["metadata"]["ownerReferences"] == POD["metadata"]["ownerReferences"]


def test_pod_defaults() -> None:
    pod = round_trip(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]},
        }
    )
    assert isinstance(pod, Pod)
    assert pod.metadata.namespace == "default"
    assert pod.spec.restart_policy is RestartPolicy.ALWAYS
    assert pod.spec.containers[0].ports[0].protocol is Protocol.TCP
    assert pod.spec.node_selector == {}
    assert pod.metadata.owner_references == () and pod.metadata.controller is None
    # Status is always there, empty until reported, and left out when written.
    assert pod.status == PodStatus()
    assert "status" not in to_dict(pod)


def test_service_reads_every_field() -> None:
    svc = round_trip(SERVICE)
    assert isinstance(svc, Service)
    spec = svc.spec
    assert spec.type is ServiceType.NODE_PORT
    assert spec.cluster_ip == "10.96.0.10" and not spec.headless
    http, dns = spec.ports
    assert (http.port, http.target_port, http.app_protocol, http.node_port) == (
        80,
        "http",
        "http",
        30080,
    )
    assert (dns.protocol, dns.target_port) == (Protocol.UDP, 5353)
    assert spec.selector == {"app": "orders"}
    assert spec.session_affinity is SessionAffinity.CLIENT_IP
    assert spec.affinity_timeout_seconds == 600
    written = to_dict(svc)["spec"]
    assert written["clusterIP"] == "10.96.0.10"
    assert written["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 600}}


def test_service_defaults() -> None:
    svc = round_trip(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"ports": [{"port": 8080}]},
        }
    )
    assert isinstance(svc, Service)
    spec = svc.spec
    assert spec.type is ServiceType.CLUSTER_IP
    assert spec.cluster_ip is None and not spec.headless
    assert spec.ports[0].target_port == 8080
    assert spec.ports[0].protocol is Protocol.TCP
    assert spec.session_affinity is SessionAffinity.NONE
    assert spec.session_affinity_config is None
    assert spec.affinity_timeout_seconds is None
    assert spec.selector == {}


def test_client_ip_affinity_defaults_its_timeout() -> None:
    svc = from_dict(edit(SERVICE, "spec.sessionAffinityConfig", DELETE))
    assert isinstance(svc, Service)
    assert svc.spec.session_affinity_config == SessionAffinityConfig(ClientIPConfig(10800))


def test_headless_service_needs_no_ports() -> None:
    svc = round_trip(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "db"},
            "spec": {"clusterIP": "None", "selector": {"app": "db"}},
        }
    )
    assert isinstance(svc, Service)
    assert svc.spec.headless
    assert svc.spec.ports == ()


def test_external_name_service_holds_its_name_and_no_cluster_ip() -> None:
    svc = round_trip(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "api.example.com"},
        }
    )
    assert isinstance(svc, Service)
    assert svc.spec.type is ServiceType.EXTERNAL_NAME
    assert (svc.spec.external_name, svc.spec.cluster_ip, svc.spec.ports) == (
        "api.example.com",
        None,
        (),
    )


def test_endpoint_slice_reads_every_field_and_condition_semantics() -> None:
    eps = round_trip(ENDPOINT_SLICE)
    assert isinstance(eps, EndpointSlice)
    assert eps.address_type is AddressType.IPV4
    assert eps.service_name == "orders"
    first, unset, terminating = eps.endpoints
    assert first.target_ref is not None and first.target_ref.name == "orders-0"
    assert (first.node_name, first.hostname, first.zone) == ("node-1", "orders-0", "zone-a")
    # Unset conditions read as ready and serving, not terminating.
    assert unset.conditions.ready is None
    assert (unset.conditions.is_ready, unset.conditions.is_serving) == (True, True)
    assert not unset.conditions.is_terminating
    # Unset serving follows ready.
    assert (terminating.conditions.is_ready, terminating.conditions.is_serving) == (False, False)
    assert terminating.conditions.is_terminating
    port = eps.ports[0]
    assert (port.name, port.port, port.protocol, port.app_protocol) == (
        "http",
        8080,
        Protocol.TCP,
        "http",
    )


def test_endpoint_slice_ipv6_and_unnamed_port() -> None:
    doc = edit(ENDPOINT_SLICE, "addressType", "IPv6")
    doc = edit(doc, "endpoints", [{"addresses": ["fd00::5"]}])
    doc = edit(doc, "ports", [{"port": 80}])
    eps = round_trip(doc)
    assert isinstance(eps, EndpointSlice)
    assert eps.endpoints[0].addresses == ("fd00::5",)
    assert eps.ports[0].name == ""


def test_secret_decodes_base64_and_merges_string_data() -> None:
    secret = round_trip(SECRET)
    assert isinstance(secret, Secret)
    assert secret.data == {"username": b"admin", "password": b"s3cret", "note": b"plain"}
    written = to_dict(secret)
    assert "stringData" not in written
    assert written["data"]["password"] == b64(b"s3cret")


def test_secret_base64_may_span_lines() -> None:
    doc = edit(SECRET, "data.username", "YWRt\naW4=\n")
    secret = from_dict(doc)
    assert isinstance(secret, Secret)
    assert secret.data["username"] == b"admin"


def test_tls_secret() -> None:
    secret = round_trip(TLS_SECRET)
    assert isinstance(secret, Secret)
    assert secret.type == "kubernetes.io/tls"
    assert (secret.data["tls.crt"], secret.data["tls.key"]) == (b"CERT", b"KEY")


def test_model_objects_are_hashable_and_immutable() -> None:
    pod = from_dict(POD)
    assert hash(pod) == hash(from_dict(POD))
    with pytest.raises(AttributeError):
        pod.metadata.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        pod.metadata.labels["app"] = "x"  # type: ignore[index]


# --- errors ----------------------------------------------------------------------------


ERRORS = [
    # Namespace
    (
        edit(NAMESPACE, "metadata.name", "Shop"),
        f'Namespace Shop: metadata.name: invalid value "Shop": {RFC1123_LABEL}',
    ),
    (
        edit(NAMESPACE, "metadata.labels.team", 7),
        "Namespace shop: metadata.labels[team]: expected string, got integer 7",
    ),
    # Pod
    (edit(POD, "spec", DELETE), "Pod shop/orders-0: spec: required"),
    (
        edit(POD, "spec.containers", []),
        "Pod shop/orders-0: spec.containers: must have at least 1 item",
    ),
    (
        edit(POD, "spec.containers[1].name", "app"),
        'Pod shop/orders-0: spec.containers[1].name: duplicate value "app"',
    ),
    (
        edit(POD, "spec.containers[0].name", "App"),
        f'Pod shop/orders-0: spec.containers[0].name: invalid value "App": {RFC1123_LABEL}',
    ),
    (
        edit(POD, "spec.containers[0].ports[0].containerPort", "8080"),
        "Pod shop/orders-0: spec.containers[0].ports[0].containerPort: "
        'expected integer, got string "8080"',
    ),
    (
        edit(POD, "spec.containers[0].ports[1].containerPort", 0),
        "Pod shop/orders-0: spec.containers[0].ports[1].containerPort: "
        "must be between 1 and 65535, got 0",
    ),
    (
        edit(POD, "spec.containers[0].ports[0].name", "toolongportname1"),
        "Pod shop/orders-0: spec.containers[0].ports[0].name: "
        'invalid value "toolongportname1": a port name must be no more than 15 characters',
    ),
    (
        edit(POD, "spec.containers[0].command", "python3 -m http.server"),
        "Pod shop/orders-0: spec.containers[0].command: expected array, "
        'got string "python3 -m http.server"',
    ),
    (
        edit(POD, "spec.containers[0].env[0].value", True),
        "Pod shop/orders-0: spec.containers[0].env[0].value: expected string, got boolean true",
    ),
    (
        edit(POD, "spec.restartPolicy", "Sometimes"),
        'Pod shop/orders-0: spec.restartPolicy: unsupported value "Sometimes" '
        "(supported: Always, OnFailure, Never)",
    ),
    (
        edit(POD, "status.podIP", "10.1.0"),
        'Pod shop/orders-0: status.podIP: invalid value "10.1.0": must be a valid IP address',
    ),
    (
        edit(POD, "status.conditions[0].status", "yes"),
        'Pod shop/orders-0: status.conditions[0].status: unsupported value "yes" '
        "(supported: True, False, Unknown)",
    ),
    (
        edit(POD, "metadata.creationTimestamp", "yesterday"),
        'Pod shop/orders-0: metadata.creationTimestamp: invalid value "yesterday": '
        "must be an RFC 3339 timestamp such as 2024-01-02T15:04:05Z",
    ),
    (
        edit(POD, "metadata.ownerReferences[1].controller", True),
        "Pod shop/orders-0: metadata.ownerReferences[1].controller: only one owner can be "
        "controller",
    ),
    (
        edit(POD, "metadata.ownerReferences[1].uid", DELETE),
        "Pod shop/orders-0: metadata.ownerReferences[1].uid: required",
    ),
    (
        edit(POD, "spec.nodeSelector", {"kubernetes.io/hostname": 1}),
        "Pod shop/orders-0: spec.nodeSelector[kubernetes.io/hostname]: expected string, "
        "got integer 1",
    ),
    (
        edit(POD, "metadata.generation", -1),
        "Pod shop/orders-0: metadata.generation: must be at least 0, got -1",
    ),
    (
        edit(POD, "metadata.annotations", {"bad key!": "x"}),
        'Pod shop/orders-0: metadata.annotations[bad key!]: invalid value "bad key!": '
        "name part must be at most 63 alphanumerics, '-', '_' or '.', starting and ending "
        "with an alphanumeric",
    ),
    # Service
    (
        edit(SERVICE, "spec.ports[0].port", DELETE),
        "Service shop/orders: spec.ports[0].port: required",
    ),
    (
        edit(SERVICE, "spec.ports[0].port", "80"),
        'Service shop/orders: spec.ports[0].port: expected integer, got string "80"',
    ),
    (
        edit(SERVICE, "spec.ports[0].port", 80.5),
        "Service shop/orders: spec.ports[0].port: expected integer, got number 80.5",
    ),
    (
        edit(SERVICE, "spec.ports[1].targetPort", "5353"),
        'Service shop/orders: spec.ports[1].targetPort: invalid value "5353": '
        "a port name must contain at least one letter",
    ),
    (
        edit(SERVICE, "spec.ports[1].targetPort", 70000),
        "Service shop/orders: spec.ports[1].targetPort: must be between 1 and 65535, got 70000",
    ),
    (
        edit(SERVICE, "spec.ports[1].name", DELETE),
        "Service shop/orders: spec.ports[1].name: required when the Service has more than one port",
    ),
    (
        edit(SERVICE, "spec.ports[1].name", "http"),
        'Service shop/orders: spec.ports[1].name: duplicate value "http"',
    ),
    (edit(SERVICE, "spec.ports", DELETE), "Service shop/orders: spec.ports: required"),
    (
        edit(SERVICE, "spec.type", "ClusterIP"),
        "Service shop/orders: spec.ports[0].nodePort: may not be used when type is ClusterIP",
    ),
    (
        edit(SERVICE, "spec.type", "ExternalName"),
        "Service shop/orders: spec.externalName: required",
    ),
    (
        edit(edit(SERVICE, "spec.type", "ExternalName"), "spec.externalName", "db.example.com"),
        "Service shop/orders: spec.clusterIP: must be empty when type is ExternalName",
    ),
    (
        edit(SERVICE, "spec.externalName", "db.example.com"),
        "Service shop/orders: spec.externalName: may only be set when type is ExternalName, "
        "not NodePort",
    ),
    (
        edit(SERVICE, "spec.clusterIP", "10.96.0"),
        'Service shop/orders: spec.clusterIP: invalid value "10.96.0": must be a valid IP address',
    ),
    (
        edit(SERVICE, "spec.clusterIP", "None"),
        'Service shop/orders: spec.clusterIP: may only be "None" when type is ClusterIP, '
        "not NodePort",
    ),
    (
        edit(SERVICE, "spec.sessionAffinity", "None"),
        "Service shop/orders: spec.sessionAffinityConfig: must not be set when sessionAffinity "
        'is "None"',
    ),
    (
        edit(SERVICE, "spec.sessionAffinityConfig.clientIP.timeoutSeconds", 0),
        "Service shop/orders: spec.sessionAffinityConfig.clientIP.timeoutSeconds: "
        "must be between 1 and 86400, got 0",
    ),
    (
        edit(SERVICE, "spec.selector.app", "bad value"),
        'Service shop/orders: spec.selector[app]: invalid value "bad value": a label value '
        "must be empty or at most 63 alphanumerics, '-', '_' or '.', starting and ending "
        "with an alphanumeric",
    ),
    (
        edit(SERVICE, "metadata.name", "1orders"),
        'Service shop/1orders: metadata.name: invalid value "1orders": must be an RFC 1035 '
        "label (lowercase alphanumerics or '-', starting with a letter and ending with an "
        "alphanumeric)",
    ),
    # EndpointSlice
    (
        edit(ENDPOINT_SLICE, "addressType", DELETE),
        "EndpointSlice shop/orders-abc12: addressType: required",
    ),
    (
        edit(ENDPOINT_SLICE, "endpoints[1].addresses[0]", "fd00::6"),
        'EndpointSlice shop/orders-abc12: endpoints[1].addresses[0]: invalid value "fd00::6": '
        "must be a valid IPv4 address",
    ),
    (
        edit(ENDPOINT_SLICE, "endpoints[1].addresses", []),
        "EndpointSlice shop/orders-abc12: endpoints[1].addresses: must have at least 1 item",
    ),
    (
        edit(ENDPOINT_SLICE, "endpoints[0].conditions.ready", "yes"),
        "EndpointSlice shop/orders-abc12: endpoints[0].conditions.ready: "
        'expected boolean, got string "yes"',
    ),
    (
        edit(ENDPOINT_SLICE, "ports[0].protocol", "tcp"),
        'EndpointSlice shop/orders-abc12: ports[0].protocol: unsupported value "tcp" '
        "(supported: TCP, UDP, SCTP)",
    ),
    # Secret
    (
        edit(SECRET, "data.password", "not base64!"),
        "Secret shop/creds: data[password]: invalid base64",
    ),
    (
        edit(SECRET, "data", {"a b": b64(b"x")}),
        'Secret shop/creds: data[a b]: invalid value "a b": a data key must consist of '
        "alphanumerics, '-', '_' or '.'",
    ),
    (
        edit(TLS_SECRET, "data", {"tls.crt": b64(b"CERT")}),
        "Secret infra/gw-cert: data[tls.key]: required for type kubernetes.io/tls",
    ),
]


@pytest.mark.parametrize(("doc", "message"), ERRORS, ids=[m for _, m in ERRORS])
def test_invalid_objects_name_object_and_field(doc: dict[str, Any], message: str) -> None:
    assert error_of(doc) == message


@pytest.mark.parametrize(
    ("address_type", "address", "why"),
    [
        ("IPv4", "127.0.0.1", "may not be in the loopback range (127.0.0.0/8, ::1/128)"),
        ("IPv4", "0.0.0.0", "may not be unspecified (0.0.0.0, ::)"),
        ("IPv4", "169.254.20.10", "may not be in the link-local range (169.254.0.0/16, fe80::/10)"),
        ("IPv4", "224.0.0.251", "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"),
        ("IPv6", "::1", "may not be in the loopback range (127.0.0.0/8, ::1/128)"),
        ("IPv6", "::ffff:127.0.0.1", "may not be in the loopback range (127.0.0.0/8, ::1/128)"),
        ("IPv6", "fe80::1", "may not be in the link-local range (169.254.0.0/16, fe80::/10)"),
    ],
)
def test_endpoint_slice_refuses_special_addresses(address_type: str, address: str, why: str) -> None:
    """Kubernetes' ValidateNonSpecialIP: a hand-written EndpointSlice behind an HTTPRoute
    would otherwise make the node's waypoint dial the node's own loopback listeners
    (tests/netns/test_policy_attacks.py)."""
    doc = edit(edit(ENDPOINT_SLICE, "addressType", address_type), "endpoints[1].addresses[0]", address)
    if address_type == "IPv6":
        doc = edit(edit(doc, "endpoints[0].addresses[0]", "fd00::5"), "endpoints[2].addresses[0]", "fd00::7")
    assert error_of(doc) == (
        f'EndpointSlice shop/orders-abc12: endpoints[1].addresses[0]: invalid value "{address}": {why}'
    )
