"""The pod spec parts a node runs by: hostNetwork, env fieldRef, hostPath volumes, mounts."""

from __future__ import annotations

from typing import Any

import pytest

from agent.model.convert import from_dict, to_dict
from agent.model.core import (
    Container,
    EmptyDirVolumeSource,
    EnvVarSource,
    HostPathVolumeSource,
    ObjectFieldSelector,
    Pod,
    Volume,
    VolumeMount,
)
from agent.model.core_container import (
    ConfigMapVolumeSource,
    EnvFromSource,
    ExecAction,
    HTTPGetAction,
    HTTPHeader,
    KeySelector,
    KeyToPath,
    LocalObjectRef,
    Probe,
    SecretVolumeSource,
    TCPSocketAction,
)
from tests.unit.model.helpers import edit, error_of, round_trip

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "agent-x", "namespace": "sys"},
    "spec": {
        "hostNetwork": True,
        "containers": [{
            "name": "agent",
            "command": ["sh", "-c", "exec agent"],
            "env": [
                {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {
                    "fieldPath": "metadata.labels['app']"}}},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                {"name": "PLAIN", "value": "1"},
            ],
            "volumeMounts": [{"name": "state", "mountPath": "/var/run/x", "readOnly": True},
                             {"name": "cfg", "mountPath": "/etc/x"}],
        }],
        "volumes": [{"name": "state", "hostPath": {"path": "/var/run/x",
                                                   "type": "DirectoryOrCreate"}},
                    {"name": "cfg", "configMap": {"name": "x"}},
                    {"name": "scratch", "emptyDir": {}},
                    {"name": "health", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}],
    },
}


def test_reads_host_network_env_sources_volumes_and_mounts() -> None:
    pod = round_trip(POD)
    assert isinstance(pod, Pod)
    assert pod.spec.host_network is True
    env = pod.spec.containers[0].env
    assert env[0].value_from == EnvVarSource(ObjectFieldSelector("spec.nodeName"))
    assert env[1].value_from == EnvVarSource(ObjectFieldSelector("metadata.labels['app']"))
    assert env[2].value_from == EnvVarSource(secret_key_ref=KeySelector("s", "k"))
    assert pod.spec.volumes == (
        Volume("state", HostPathVolumeSource("/var/run/x", "DirectoryOrCreate")),
        Volume("cfg", config_map=ConfigMapVolumeSource("x")),
        Volume("scratch", empty_dir=EmptyDirVolumeSource()),
        Volume("health", empty_dir=EmptyDirVolumeSource("Memory")))
    assert pod.spec.containers[0].volume_mounts == (
        VolumeMount("state", "/var/run/x", True), VolumeMount("cfg", "/etc/x"))


def test_false_and_unset_are_omitted_as_the_api_omits_them() -> None:
    doc = edit(POD, "spec.hostNetwork", False)
    doc = edit(doc, "spec.containers[0].volumeMounts[0].readOnly", False)
    spec = to_dict(from_dict(doc))["spec"]
    assert "hostNetwork" not in spec
    assert spec["containers"][0]["volumeMounts"][0] == {"name": "state", "mountPath": "/var/run/x"}


def test_reads_secret_and_config_map_volumes() -> None:
    volumes = [{"name": "tls", "secret": {"secretName": "certs", "defaultMode": 0o400,
                                          "optional": True,
                                          "items": [{"key": "tls.crt", "path": "a/cert.pem",
                                                     "mode": 0o444}]}},
               {"name": "cfg", "configMap": {"name": "settings"}},
               {"name": "state", "emptyDir": {}}]
    pod = from_dict(edit(POD, "spec.volumes", volumes))
    assert isinstance(pod, Pod)
    assert pod.spec.volumes == (
        Volume("tls", secret=SecretVolumeSource("certs", (KeyToPath("tls.crt", "a/cert.pem",
                                                                    0o444),), 0o400, True)),
        Volume("cfg", config_map=ConfigMapVolumeSource("settings")),
        Volume("state", empty_dir=EmptyDirVolumeSource()))
    assert to_dict(pod)["spec"]["volumes"] == volumes


@pytest.mark.parametrize(("volume", "message"), [
    ({"secretName": "s", "items": [{"key": "k", "path": "../k"}]},
     "secret.items[0].path: invalid value \"../k\": must not contain '..'"),
    ({"secretName": "s", "items": [{"key": "k", "path": "/k"}]},
     "secret.items[0].path: invalid value \"/k\": must be a relative path"),
    ({"secretName": "s", "defaultMode": 0o1000}, "secret.defaultMode: must be between 0 and 511"),
    ({"secretName": "s", "items": [{"key": "k/x", "path": "k"}]}, "secret.items[0].key"),
    ({}, "secret.secretName: required"),
])
def test_refuses_bad_secret_volumes(volume: dict[str, Any], message: str) -> None:
    volumes = [*POD["spec"]["volumes"], {"name": "v", "secret": volume}]
    assert message in error_of(edit(POD, "spec.volumes", volumes))


@pytest.mark.parametrize("automount", [True, False, None])
def test_automount_service_account_token_keeps_false_as_a_pointer_does(
    automount: bool | None,
) -> None:
    """*bool in the API: false is a value (opted out), unset leaves it to the account."""
    doc = edit(POD, "spec.automountServiceAccountToken", automount)
    pod = from_dict(doc)
    assert isinstance(pod, Pod)
    assert pod.spec.automount_service_account_token is automount
    assert to_dict(pod)["spec"].get("automountServiceAccountToken") is automount


@pytest.mark.parametrize(("path", "value", "message"), [
    ("spec.containers[0].env[0].valueFrom.fieldRef.fieldPath", "spec.podCIDR",
     'spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: unsupported value "spec.podCIDR"'),
    ("spec.containers[0].env[0].valueFrom.fieldRef.apiVersion", "v2",
     'fieldRef.apiVersion: unsupported value "v2" (supported: v1)'),
    ("spec.containers[0].env[0].value", "x",
     "spec.containers[0].env[0].valueFrom: may not be specified when `value` is not empty"),
    ("spec.volumes[0].hostPath.path", "relative/dir",
     'spec.volumes[0].hostPath.path: invalid value "relative/dir": must be an absolute path'),
    ("spec.volumes[0].hostPath.type", "Pipe",
     'spec.volumes[0].hostPath.type: unsupported value "Pipe"'),
    ("spec.volumes[1].name", "state", "spec.volumes[1].name: duplicate value"),
    ("spec.volumes[3].emptyDir.medium", "Disk",
     'spec.volumes[3].emptyDir.medium: unsupported value "Disk"'),
    ("spec.containers[0].volumeMounts[1].name", "nowhere",
     'spec.containers[0].volumeMounts[1].name: not found: no volume "nowhere" in spec.volumes'),
    ("spec.containers[0].volumeMounts[0].mountPath", None,
     "spec.containers[0].volumeMounts[0].mountPath: required"),
    ("spec.hostNetwork", "yes", "spec.hostNetwork: expected boolean"),
    ("spec.automountServiceAccountToken", "yes",
     "spec.automountServiceAccountToken: expected boolean"),
])
def test_refuses_what_the_api_server_refuses(path: str, value: Any, message: str) -> None:
    assert message in error_of(edit(POD, path, value))


LIFECYCLE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "app", "namespace": "ns"},
    "spec": {
        "initContainers": [
            {"name": "first", "command": ["true"]},
            {"name": "second", "command": ["sh", "-c", "echo hi > /tmp/x"],
             "envFrom": [{"configMapRef": {"name": "cfg"}}]},
        ],
        "containers": [{
            "name": "app",
            "command": ["app"],
            "ports": [{"name": "http", "containerPort": 8080}],
            "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {
                "name": "creds", "key": "password", "optional": True}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}}],
            "envFrom": [{"prefix": "DB_", "secretRef": {"name": "db"}}],
            "startupProbe": {"exec": {"command": ["check"]}, "failureThreshold": 30},
            "livenessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 5},
            "readinessProbe": {"httpGet": {"port": 8080, "path": "/ready", "httpHeaders": [
                {"name": "X-Probe", "value": "a"}, {"name": "X-Probe", "value": "b"}]},
                               "successThreshold": 2, "timeoutSeconds": 0},
        }],
    },
}


def test_reads_init_containers_env_sources_and_probes_with_api_defaults() -> None:
    pod = round_trip(LIFECYCLE)
    assert isinstance(pod, Pod)
    assert [c.name for c in pod.spec.init_containers] == ["first", "second"]
    assert pod.spec.init_containers[1].env_from == (
        EnvFromSource(config_map_ref=LocalObjectRef("cfg")),)
    app: Container = pod.spec.containers[0]
    assert app.env[0].value_from == EnvVarSource(
        secret_key_ref=KeySelector("creds", "password", True))
    assert app.env[1].value_from == EnvVarSource(config_map_key_ref=KeySelector("cfg", "mode"))
    assert app.env_from == (EnvFromSource(prefix="DB_", secret_ref=LocalObjectRef("db")),)
    assert app.startup_probe == Probe(exec=ExecAction(("check",)), failure_threshold=30)
    assert app.liveness_probe == Probe(tcp_socket=TCPSocketAction("http"), period_seconds=5)
    headers = (HTTPHeader("X-Probe", "a"), HTTPHeader("X-Probe", "b"))
    assert app.readiness_probe == Probe(http_get=HTTPGetAction(8080, "/ready",
                                                               http_headers=headers),
                                        success_threshold=2, timeout_seconds=1)


@pytest.mark.parametrize(("path", "value", "message"), [
    ("spec.initContainers[1].name", "app", "spec.initContainers[1].name: Duplicate value"),
    ("spec.initContainers[1].name", "first", "spec.initContainers[1].name: duplicate value"),
    ("spec.initContainers[0].readinessProbe", {"exec": {"command": ["x"]}},
     "spec.initContainers[0].readinessProbe: may not be set for init containers"),
    ("spec.containers[0].livenessProbe.successThreshold", 2,
     "spec.containers[0].livenessProbe.successThreshold: must be 1"),
    ("spec.containers[0].startupProbe", {"exec": {"command": []}},
     "startupProbe.exec.command: required"),
    ("spec.containers[0].startupProbe", {"periodSeconds": 1},
     "spec.containers[0].startupProbe: must specify a handler type"),
    ("spec.containers[0].readinessProbe.tcpSocket", {"port": 1},
     "readinessProbe.tcpSocket: may not specify more than 1 handler type"),
    ("spec.containers[0].readinessProbe.periodSeconds", -1,
     "readinessProbe.periodSeconds"),
    ("spec.containers[0].livenessProbe.tcpSocket.port", 70000,
     "livenessProbe.tcpSocket.port: must be between 1 and 65535"),
    ("spec.containers[0].readinessProbe.httpGet.scheme", "FTP",
     'readinessProbe.httpGet.scheme: unsupported value "FTP"'),
    ("spec.containers[0].readinessProbe.httpGet.httpHeaders", [{"name": "X B", "value": "1"}],
     'httpGet.httpHeaders[0].name: invalid value "X B": a valid HTTP header must consist'),
    ("spec.containers[0].readinessProbe.httpGet.httpHeaders", [{"value": "1"}],
     "httpGet.httpHeaders[0].name: required"),
    ("spec.containers[0].env[0].valueFrom.secretKeyRef.key", "a/b",
     "secretKeyRef.key: invalid value"),
    ("spec.containers[0].env[0].valueFrom.secretKeyRef.name", None,
     "secretKeyRef.name: required"),
    ("spec.containers[0].env[0].valueFrom.fieldRef", {"fieldPath": "metadata.name"},
     "valueFrom.secretKeyRef: may not have more than one field specified at a time"),
    ("spec.containers[0].env[0].valueFrom", {},
     "valueFrom: must specify one of"),
    ("spec.containers[0].envFrom[0]", {"prefix": "X"},
     "envFrom[0]: must specify one of: `configMapRef` or `secretRef`"),
    ("spec.containers[0].envFrom[0].configMapRef", {"name": "c"},
     "envFrom[0].secretRef: may not have more than one field specified at a time"),
    ("spec.containers[0].envFrom[0].prefix", "A=B", "envFrom[0].prefix: invalid value"),
    ("spec.initContainers[0].volumeMounts", [{"name": "v", "mountPath": "/v"}],
     'spec.initContainers[0].volumeMounts[0].name: not found: no volume "v"'),
    ("spec.initContainers[0].restartPolicy", "Never",
     'spec.initContainers[0].restartPolicy: Unsupported value: "Never"'),
])
def test_refuses_lifecycle_fields_the_api_server_refuses(
    path: str, value: Any, message: str
) -> None:
    assert message in error_of(edit(LIFECYCLE, path, value))


def test_a_sidecar_init_container_may_have_probes() -> None:
    """Native sidecars (``restartPolicy: Always``, GA in Kubernetes 1.33) may have every
    probe: a cluster's Pod with one must read, or the agent would drop it as absent (no
    endpoint, no identity) and policy would see an unknown peer."""
    probe = {"exec": {"command": ["x"]}}
    pod = edit(LIFECYCLE, "spec.initContainers[0].restartPolicy", "Always")
    for key in ("startupProbe", "livenessProbe", "readinessProbe"):
        pod = edit(pod, f"spec.initContainers[0].{key}", probe)
    read = from_dict(pod)
    assert isinstance(read, Pod)
    sidecar = read.spec.init_containers[0]
    assert sidecar.restart_policy == "Always" and sidecar.readiness_probe is not None
    assert to_dict(read)["spec"]["initContainers"][0]["restartPolicy"] == "Always"
