"""Which lists of the built-in kinds merge, and by which key (``patchMergeKey``).

Taken from the ``patchStrategy``/``patchMergeKey`` tags of the Kubernetes API types; every
list not named here is atomic (replaced whole), as in the API. "" means a set of scalars.
"""

from __future__ import annotations

_CONTAINER = {
    "ports": "containerPort",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
}
_POD_SPEC = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "schedulingGates": "name",
    "resourceClaims": "name",
}
_METADATA = {"metadata.finalizers": "", "metadata.ownerReferences": "uid"}
_CONDITIONS = {"status.conditions": "type"}


def _pod_spec(prefix: str) -> dict[str, str]:
    table = {f"{prefix}.{field}": key for field, key in _POD_SPEC.items()}
    for containers in ("containers", "initContainers", "ephemeralContainers"):
        for field, key in _CONTAINER.items():
            table[f"{prefix}.{containers}.{field}"] = key
    return table


_BY_KIND: dict[str, dict[str, str]] = {
    "Pod": {**_pod_spec("spec"), **_CONDITIONS},
    "Deployment": {**_pod_spec("spec.template.spec"), **_CONDITIONS},
    "Service": {"spec.ports": "port"},
    "Node": {**_CONDITIONS, "status.addresses": "type", "spec.podCIDRs": ""},
    "ServiceAccount": {"secrets": "name"},
    "Namespace": {**_CONDITIONS},
}


def merge_key(kind: str, path: tuple[str, ...]) -> str | None:
    """The merge key of the list at ``path`` (field names, list items skipped), or None."""
    dotted = ".".join(path)
    if dotted in _METADATA:
        return _METADATA[dotted]
    return _BY_KIND.get(kind, {}).get(dotted)


def merge_key_table(kind: str) -> dict[str, str]:
    """Every merging list of ``kind`` (dotted path: merge key), metadata's included."""
    return {**_METADATA, **_BY_KIND.get(kind, {})}
