"""Readers for the parts of a pod spec a node runs by: environment sources (the downward
API's ``fieldRef``), volumes (``hostPath``, ``emptyDir``, ``secret``, ``configMap``) and
volume mounts, with Kubernetes' validation of each (pkg/apis/core/validation: the field
paths an env var may name, the hostPath types and emptyDir media, a relative item path and a
file mode, a mount naming a declared volume)."""

from __future__ import annotations

import re

from agent.model.core import (
    Container,
    EmptyDirVolumeSource,
    EnvFromSource,
    EnvVar,
    EnvVarSource,
    HostPathVolumeSource,
    KeySelector,
    ObjectFieldSelector,
    Volume,
    VolumeMount,
)
from agent.model.core_container import (
    ConfigMapVolumeSource,
    KeyToPath,
    LocalObjectRef,
    SecretVolumeSource,
)
from agent.model.reader import REQUIRED, Reader
from agent.model.validation import config_key, dns1123_label, dns1123_subdomain, quote

# The downward API fields an environment variable may name (Kubernetes'
# validEnvDownwardAPIFieldPathExpressions), plus metadata.labels['k'] / annotations['k'].
ENV_FIELD_PATHS = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
)
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")
HOST_PATH_TYPES = (
    "", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice",
    "BlockDevice",
)


def read_env_var(r: Reader) -> EnvVar:
    var = EnvVar(
        name=r.string("name", REQUIRED, check=_env_name),
        value=r.string("value", ""),
        value_from=r.obj("valueFrom", _read_env_source),
    )
    if var.value and r.has("valueFrom"):
        r.fail("valueFrom", "may not be specified when `value` is not empty")
    return var


def _env_name(value: str) -> str | None:
    if not value or "=" in value or not value.isprintable():
        return f"invalid value {quote(value)}: must be printable characters other than '='"
    return None


_ENV_SOURCES = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
_ONE_AT_A_TIME = "may not have more than one field specified at a time"


def _read_env_source(r: Reader) -> EnvVarSource:
    r.exactly_one(_ENV_SOURCES, "must specify one of: `fieldRef`, `resourceFieldRef`, "
                  "`configMapKeyRef` or `secretKeyRef`", _ONE_AT_A_TIME)
    return EnvVarSource(
        field_ref=r.obj("fieldRef", _read_field_ref),
        secret_key_ref=r.obj("secretKeyRef", _read_key_selector),
        config_map_key_ref=r.obj("configMapKeyRef", _read_key_selector),
    )


def _read_key_selector(r: Reader) -> KeySelector:
    return KeySelector(
        name=r.string("name", REQUIRED, check=dns1123_subdomain),
        key=r.string("key", REQUIRED, check=config_key),
        optional=r.boolean("optional") or None,
    )


def read_env_from(r: Reader) -> EnvFromSource:
    r.exactly_one(("configMapRef", "secretRef"),
                  "must specify one of: `configMapRef` or `secretRef`", _ONE_AT_A_TIME)
    prefix = r.string("prefix", "")
    if prefix and (problem := _env_name(prefix)):
        r.fail("prefix", problem)
    return EnvFromSource(
        prefix=prefix,
        config_map_ref=r.obj("configMapRef", _read_local_ref),
        secret_ref=r.obj("secretRef", _read_local_ref),
    )


def _read_local_ref(r: Reader) -> LocalObjectRef:
    return LocalObjectRef(name=r.string("name", REQUIRED, check=dns1123_subdomain),
                          optional=r.boolean("optional") or None)


def _read_field_ref(r: Reader) -> ObjectFieldSelector:
    api_version = r.string("apiVersion", "v1")
    if api_version != "v1":
        r.fail("apiVersion", f"unsupported value {quote(api_version)} (supported: v1)")
    path = r.string("fieldPath", REQUIRED)
    if path not in ENV_FIELD_PATHS and not _SUBSCRIPT.match(path):
        supported = ", ".join(ENV_FIELD_PATHS)
        r.fail(
            "fieldPath",
            f"unsupported value {quote(path)} (supported: {supported}, "
            "metadata.labels['<key>'], metadata.annotations['<key>'])",
        )
    return ObjectFieldSelector(field_path=path, api_version=api_version)


def read_volume(r: Reader) -> Volume:
    return Volume(
        name=r.string("name", REQUIRED, check=dns1123_label),
        host_path=r.obj("hostPath", _read_host_path),
        empty_dir=r.obj("emptyDir", _read_empty_dir),
        secret=r.obj("secret", _read_secret_volume),
        config_map=r.obj("configMap", _read_config_map_volume),
    )


def _read_secret_volume(r: Reader) -> SecretVolumeSource:
    return SecretVolumeSource(
        secret_name=r.string("secretName", REQUIRED, check=dns1123_subdomain),
        items=r.objects("items", _read_key_to_path),
        default_mode=_mode(r, "defaultMode"),
        optional=r.boolean("optional") or None,
    )


def _read_config_map_volume(r: Reader) -> ConfigMapVolumeSource:
    return ConfigMapVolumeSource(
        name=r.string("name", REQUIRED, check=dns1123_subdomain),
        items=r.objects("items", _read_key_to_path),
        default_mode=_mode(r, "defaultMode"),
        optional=r.boolean("optional") or None,
    )


def _read_key_to_path(r: Reader) -> KeyToPath:
    path = r.string("path", REQUIRED)
    # validateLocalDescendingPath: relative, no ".." element.
    if path.startswith("/"):
        r.fail("path", f"invalid value {quote(path)}: must be a relative path")
    if ".." in path.split("/"):
        r.fail("path", f"invalid value {quote(path)}: must not contain '..'")
    return KeyToPath(key=r.string("key", REQUIRED, check=config_key), path=path,
                     mode=_mode(r, "mode"))


def _mode(r: Reader, key: str) -> int | None:
    """A file mode: 0 to 0777 (Kubernetes: "must be a number between 0 and 0777")."""
    return r.integer(key, minimum=0, maximum=0o777)


def _read_empty_dir(r: Reader) -> EmptyDirVolumeSource:
    medium = r.string("medium", "")
    if medium not in ("", "Memory", "HugePages") and not medium.startswith("HugePages-"):
        r.fail("medium", f'unsupported value {quote(medium)} '
               '(supported: "", "Memory", "HugePages", "HugePages-<size>")')
    return EmptyDirVolumeSource(medium=medium or None)


def _read_host_path(r: Reader) -> HostPathVolumeSource:
    path = r.string("path", REQUIRED)
    if not path.startswith("/"):
        r.fail("path", f"invalid value {quote(path)}: must be an absolute path")
    kind = r.string("type", "")
    if kind not in HOST_PATH_TYPES:
        supported = ", ".join(quote(t) for t in HOST_PATH_TYPES)
        r.fail("type", f"unsupported value {quote(kind)} (supported: {supported})")
    return HostPathVolumeSource(path=path, type=kind or None)


def read_volume_mount(r: Reader) -> VolumeMount:
    return VolumeMount(
        name=r.string("name", REQUIRED),
        mount_path=r.string("mountPath", REQUIRED),
        read_only=r.boolean("readOnly") or None,
    )


def check_mounts(
    r: Reader, containers: tuple[Container, ...], volumes: tuple[Volume, ...],
    key: str = "containers",
) -> None:
    """Every volume mount names a volume of the pod, as the API server requires."""
    declared = {v.name for v in volumes}
    for i, container in enumerate(containers):
        for j, mount in enumerate(container.volume_mounts):
            if mount.name not in declared:
                r.fail(
                    f"{key}[{i}].volumeMounts[{j}].name",
                    f"not found: no volume {quote(mount.name)} in spec.volumes",
                )


def check_init_containers(r: Reader, init: tuple[Container, ...], names: set[str]) -> None:
    """Names unique across both lists; ``restartPolicy`` only ``Always`` (a sidecar, which
    may have probes); no probes on the others (they run to completion)."""
    r.check_unique("initContainers", [c.name for c in init], "name")
    for i, c in enumerate(init):
        if c.name in names:
            r.fail(f"initContainers[{i}].name", f"Duplicate value: {quote(c.name)}")
        if c.restart_policy is not None and c.restart_policy != "Always":
            r.fail(f"initContainers[{i}].restartPolicy",
                   f'Unsupported value: {quote(c.restart_policy)}: supported values: "Always"')
        if c.restart_policy == "Always":
            continue
        for key, probe in (("startupProbe", c.startup_probe), ("livenessProbe", c.liveness_probe),
                           ("readinessProbe", c.readiness_probe)):
            if probe is not None:
                r.fail(f"initContainers[{i}].{key}", "may not be set for init containers")
