"""Environment variables from Secrets and ConfigMaps, resolved as a kubelet does when it
starts a container (pkg/kubelet/kubelet_pods.go makeEnvironmentVariables), pure over a
lookup of the objects as the API serves them (the lab controller's watch cache, as a
kubelet's Watch-based secret and ConfigMap managers):

- ``envFrom`` first, in order, each key of the object as ``prefix + key`` (a later source
  wins); a key that is no valid variable name is skipped and reported;
- then ``env``, where ``secretKeyRef``/``configMapKeyRef`` give the key's value.

A missing object or key that is not ``optional`` keeps the container from starting
(``EnvConfigError``: its message is the kubelet's, shown as CreateContainerConfigError);
an optional one leaves the variable unset. Objects are read with the model's readers
(agent.model.convert_core): a Secret's ``data`` decoded from base64 (the API server has
merged ``stringData`` into it), a ConfigMap's ``data`` (``binaryData`` is not put in the
environment); an object they refuse cannot configure the container.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.model.convert_core import read_config_map, read_secret
from agent.model.core import Container
from agent.model.core_container import KeySelector
from agent.model.meta import ObjectMeta
from agent.model.reader import FieldError, Reader

Lookup = Callable[[str, str, str], Mapping[str, Any] | None]  # (kind, namespace, name)
# Kubernetes' IsEnvVarName (validation.go): what envFrom may turn a key into.
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class EnvConfigError(Exception):
    """The container cannot be configured: a non-optional Secret, ConfigMap or key is
    missing (or the object does not read, e.g. a Secret's value is not base64)."""


@dataclass(frozen=True, slots=True)
class ResolvedEnv:
    """What Secrets and ConfigMaps give a container: ``env_from`` (envFrom, in order),
    ``keys`` by index in ``container.env`` (None: optional and missing, left unset) and
    the envFrom keys skipped as invalid names, by source (for the kubelet's event)."""

    env_from: dict[str, str] = field(default_factory=dict)
    keys: dict[int, str | None] = field(default_factory=dict)
    skipped: dict[str, tuple[str, ...]] = field(default_factory=dict)


def no_objects(kind: str, namespace: str, name: str) -> None:
    return None


def _data(kind: str, namespace: str, name: str, obj: Mapping[str, Any]) -> dict[str, str]:
    meta = ObjectMeta(name=name, namespace=namespace)
    try:
        if kind == "ConfigMap":
            return dict(read_config_map(Reader(obj), meta).data)
        secret = read_secret(Reader(obj), meta)
    except FieldError as err:
        raise EnvConfigError(f"{kind.lower()} {namespace}/{name}: {err}") from None
    # The kubelet puts the bytes in the environment as they are; this one needs text.
    return {k: v.decode("utf-8", "replace") for k, v in secret.data.items()}


def _object(kind: str, namespace: str, name: str, lookup: Lookup) -> dict[str, str] | None:
    obj = lookup(kind, namespace, name)
    return None if obj is None else _data(kind, namespace, name, obj)


def key_value(kind: str, ref: KeySelector, namespace: str, lookup: Lookup) -> str | None:
    """The value of ``ref``'s key; None when it is optional and missing."""
    data = _object(kind, namespace, ref.name, lookup)
    what = "secret" if kind == "Secret" else "configmap"
    if data is None:
        if ref.optional:
            return None
        raise EnvConfigError(f'{what} "{ref.name}" not found')
    if ref.key not in data:
        if ref.optional:
            return None
        raise EnvConfigError(f"couldn't find key {ref.key} in {kind} {namespace}/{ref.name}")
    return data[ref.key]


def resolve(container: Container, namespace: str, lookup: Lookup) -> ResolvedEnv:
    """Everything the container's environment reads from Secrets and ConfigMaps."""
    out = ResolvedEnv()
    for source in container.env_from:
        kind, ref = (("ConfigMap", source.config_map_ref) if source.config_map_ref
                     else ("Secret", source.secret_ref))
        if ref is None:  # the model admits exactly one of the two
            continue
        data = _object(kind, namespace, ref.name, lookup)
        if data is None:
            if ref.optional:
                continue
            what = "secret" if kind == "Secret" else "configmap"
            raise EnvConfigError(f'{what} "{ref.name}" not found')
        bad = []
        for key, value in data.items():
            name = source.prefix + key
            if _ENV_NAME.match(name):
                out.env_from[name] = value
            else:
                bad.append(name)
        if bad:
            out.skipped[f"{kind} {namespace}/{ref.name}"] = tuple(sorted(bad))
    for i, var in enumerate(container.env):
        src = var.value_from
        if src is not None and src.secret_key_ref is not None:
            out.keys[i] = key_value("Secret", src.secret_key_ref, namespace, lookup)
        elif src is not None and src.config_map_key_ref is not None:
            out.keys[i] = key_value("ConfigMap", src.config_map_key_ref, namespace, lookup)
    return out


def uses_objects(container: Container) -> bool:
    """Whether the container's environment reads Secrets or ConfigMaps at all."""
    return bool(container.env_from) or any(
        v.value_from is not None
        and (v.value_from.secret_key_ref is not None or v.value_from.config_map_key_ref is not None)
        for v in container.env
    )


def skipped_message(source: str, names: tuple[str, ...]) -> str:
    """The kubelet's InvalidEnvironmentVariableNames event message."""
    kind, ref = source.split(" ", 1)
    return (f"Keys [{', '.join(names)}] from the EnvFrom {kind.lower()} {ref} were skipped "
            "since they are considered invalid environment variable names.")
