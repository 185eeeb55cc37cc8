"""Env from Secrets and ConfigMaps (lab.envsource, lab.podspec.declared_env), as the
kubelet's makeEnvironmentVariables: envFrom first, then env; a missing key that is not
optional keeps the container from starting with the kubelet's message."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from agent.model.convert import from_dict
from agent.model.core import Container, Pod
from lab.envsource import EnvConfigError, resolve, skipped_message, uses_objects
from lab.podspec import declared_env
from lab.topology import plan_lab

OBJECTS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("Secret", "shop", "db"): {"data": {
        "password": base64.b64encode(b"s3cret").decode(), "user": base64.b64encode(b"app").decode(),
        "bad-name": base64.b64encode(b"x").decode()}},
    ("ConfigMap", "shop", "cfg"): {"data": {"mode": "fast", "LEVEL": "3"},
                                   "binaryData": {"blob": "AAAA"}},
    ("Secret", "other", "db"): {"data": {"password": base64.b64encode(b"theirs").decode()}},
}


def lookup(kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    return OBJECTS.get((kind, namespace, name))


def _pod(**container: Any) -> Pod:
    pod = from_dict({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "p", "namespace": "shop"},
                     "spec": {"containers": [{"name": "c", **container}]}})
    assert isinstance(pod, Pod)
    return pod


def _env(pod: Pod) -> dict[str, str]:
    c: Container = pod.spec.containers[0]
    sources = resolve(c, pod.metadata.namespace, lookup)
    return declared_env(pod, None, plan_lab("t", 1).nodes[0], c, sources)


def _key(kind: str, name: str, key: str, optional: bool = False) -> dict[str, Any]:
    ref = "secretKeyRef" if kind == "Secret" else "configMapKeyRef"
    return {"valueFrom": {ref: {"name": name, "key": key, **({"optional": True} if optional
                                                              else {})}}}


def test_key_refs_give_the_decoded_values_and_later_vars_expand_them() -> None:
    env = _env(_pod(env=[
        {"name": "PW", **_key("Secret", "db", "password")},
        {"name": "MODE", **_key("ConfigMap", "cfg", "mode")},
        {"name": "DSN", "value": "app:$(PW)@db?$(MODE)"},
    ]))
    assert env == {"PW": "s3cret", "MODE": "fast", "DSN": "app:s3cret@db?fast"}


def test_env_from_prefixes_keys_skips_invalid_names_and_env_wins() -> None:
    pod = _pod(envFrom=[{"configMapRef": {"name": "cfg"}},
                        {"prefix": "DB_", "secretRef": {"name": "db"}}],
               env=[{"name": "LEVEL", "value": "9"}])
    env = _env(pod)
    assert env == {"mode": "fast", "LEVEL": "9", "DB_password": "s3cret", "DB_user": "app",
                   "DB_bad-name": "x"}  # '-' is valid in IsEnvVarName
    assert "blob" not in env  # binaryData is not put in the environment
    skipped = resolve(_pod(envFrom=[{"prefix": "1", "configMapRef": {"name": "cfg"}}])
                      .spec.containers[0], "shop", lookup).skipped
    assert skipped == {"ConfigMap shop/cfg": ("1LEVEL", "1mode")}
    assert skipped_message("ConfigMap shop/cfg", ("1LEVEL",)).startswith(
        "Keys [1LEVEL] from the EnvFrom configmap shop/cfg were skipped")


def test_only_the_pods_namespace_is_read() -> None:
    assert _env(_pod(env=[{"name": "PW", **_key("Secret", "db", "password")}])) == {
        "PW": "s3cret"}
    pod = from_dict({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "p", "namespace": "elsewhere"},
                     "spec": {"containers": [{"name": "c", "env": [
                         {"name": "PW", **_key("Secret", "db", "password")}]}]}})
    assert isinstance(pod, Pod)
    with pytest.raises(EnvConfigError, match='secret "db" not found'):
        resolve(pod.spec.containers[0], "elsewhere", lookup)


@pytest.mark.parametrize(("var", "message"), [
    (_key("Secret", "db", "nope"), "couldn't find key nope in Secret shop/db"),
    (_key("Secret", "gone", "password"), 'secret "gone" not found'),
    (_key("ConfigMap", "cfg", "blob"), "couldn't find key blob in ConfigMap shop/cfg"),
    (_key("ConfigMap", "gone", "x"), 'configmap "gone" not found'),
])
def test_a_missing_key_or_object_is_a_config_error(var: dict[str, Any], message: str) -> None:
    pod = _pod(env=[{"name": "X", **var}])
    with pytest.raises(EnvConfigError) as err:
        resolve(pod.spec.containers[0], "shop", lookup)
    assert str(err.value) == message


def test_a_missing_env_from_source_is_a_config_error_unless_optional() -> None:
    pod = _pod(envFrom=[{"secretRef": {"name": "gone"}}])
    with pytest.raises(EnvConfigError, match='secret "gone" not found'):
        resolve(pod.spec.containers[0], "shop", lookup)
    assert _env(_pod(envFrom=[{"secretRef": {"name": "gone", "optional": True}}])) == {}


def test_an_optional_missing_key_leaves_the_variable_unset() -> None:
    env = _env(_pod(envFrom=[{"configMapRef": {"name": "cfg"}}], env=[
        {"name": "mode", **_key("Secret", "db", "nope", optional=True)},
        {"name": "Y", **_key("ConfigMap", "gone", "x", optional=True)},
    ]))
    assert env == {"mode": "fast", "LEVEL": "3"}  # envFrom's mode stays; Y is not set


def test_a_secret_value_that_is_not_base64_is_a_config_error() -> None:
    OBJECTS[("Secret", "shop", "broken")] = {"data": {"k": "not base64!"}}
    try:
        with pytest.raises(EnvConfigError,
                           match=r"^secret shop/broken: data\[k\]: invalid base64$"):
            resolve(_pod(envFrom=[{"secretRef": {"name": "broken"}}]).spec.containers[0],
                    "shop", lookup)
    finally:
        del OBJECTS[("Secret", "shop", "broken")]


def test_a_secret_reads_as_the_models_reader_reads_it() -> None:
    # agent.model.convert_core.read_secret: Go's decoder skips line breaks (a wrapped value,
    # as `base64` prints it, is valid); a key that is no config key is refused.
    wrapped = base64.encodebytes(b"x" * 80).decode()
    assert "\n" in wrapped.strip()
    OBJECTS[("Secret", "shop", "wrapped")] = {"data": {"k": wrapped}}
    OBJECTS[("Secret", "shop", "badkey")] = {"data": {"a b": "eA=="}}
    try:
        env = _env(_pod(envFrom=[{"secretRef": {"name": "wrapped"}}]))
        with pytest.raises(EnvConfigError, match=r"secret shop/badkey: data\[a b\]"):
            _env(_pod(envFrom=[{"secretRef": {"name": "badkey"}}]))
    finally:
        del OBJECTS[("Secret", "shop", "wrapped")], OBJECTS[("Secret", "shop", "badkey")]
    assert env == {"k": "x" * 80}


def test_a_secrets_string_data_is_read_and_wins_over_data() -> None:
    # The lab's API server merges stringData on write; a manifest's Secret may still hold it.
    OBJECTS[("Secret", "shop", "mixed")] = {
        "data": {"a": base64.b64encode(b"old").decode(), "b": base64.b64encode(b"kept").decode()},
        "stringData": {"a": "new"}}
    try:
        env = _env(_pod(envFrom=[{"secretRef": {"name": "mixed"}}]))
    finally:
        del OBJECTS[("Secret", "shop", "mixed")]
    assert env == {"a": "new", "b": "kept"}


def test_a_container_without_object_sources_reads_nothing() -> None:
    pod = _pod(env=[{"name": "A", "value": "1"},
                    {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}])
    assert not uses_objects(pod.spec.containers[0])
    assert uses_objects(_pod(envFrom=[{"secretRef": {"name": "db"}}]).spec.containers[0])
