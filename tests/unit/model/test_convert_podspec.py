"""The pod spec parts a node runs by: hostNetwork, env fieldRef, hostPath volumes, mounts."""

from __future__ import annotations

from typing import Any

import pytest

from agent.model.convert import from_dict, to_dict
from agent.model.core import (
    EnvVarSource,
    HostPathVolumeSource,
    ObjectFieldSelector,
    Pod,
    Volume,
    VolumeMount,
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
                    {"name": "cfg", "configMap": {"name": "x"}}],
    },
}


def test_reads_host_network_env_sources_volumes_and_mounts() -> None:
    pod = round_trip(POD)
    assert isinstance(pod, Pod)
    assert pod.spec.host_network is True
    env = pod.spec.containers[0].env
    assert env[0].value_from == EnvVarSource(ObjectFieldSelector("spec.nodeName"))
    assert env[1].value_from == EnvVarSource(ObjectFieldSelector("metadata.labels['app']"))
    assert env[2].value_from == EnvVarSource()  # a Secret's key: kept as a name only
    assert pod.spec.volumes == (
        Volume("state", HostPathVolumeSource("/var/run/x", "DirectoryOrCreate")), Volume("cfg"))
    assert pod.spec.containers[0].volume_mounts == (
        VolumeMount("state", "/var/run/x", True), VolumeMount("cfg", "/etc/x"))


def test_false_and_unset_are_omitted_as_the_api_omits_them() -> None:
    doc = edit(POD, "spec.hostNetwork", False)
    doc = edit(doc, "spec.containers[0].volumeMounts[0].readOnly", False)
    spec = to_dict(from_dict(doc))["spec"]
    assert "hostNetwork" not in spec
    assert spec["containers"][0]["volumeMounts"][0] == {"name": "state", "mountPath": "/var/run/x"}


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
    ("spec.containers[0].volumeMounts[1].name", "nowhere",
     'spec.containers[0].volumeMounts[1].name: not found: no volume "nowhere" in spec.volumes'),
    ("spec.containers[0].volumeMounts[0].mountPath", None,
     "spec.containers[0].volumeMounts[0].mountPath: required"),
    ("spec.hostNetwork", "yes", "spec.hostNetwork: expected boolean"),
])
def test_refuses_what_the_api_server_refuses(path: str, value: Any, message: str) -> None:
    assert message in error_of(edit(POD, path, value))
