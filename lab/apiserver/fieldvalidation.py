"""``fieldValidation``: unknown fields are rejected (Strict), reported as warnings (Warn, the
default) or dropped silently (Ignore), as the API server's strict decoding does.

Checked: the built-in kinds at every depth against their types (``builtin_validation``,
which also refuses a value of the wrong type as Go's decoder would, in every mode); custom
resources against their CRD's schema; Gateway API kinds (served as CRDs on a cluster, here
without their schemas unless the CRDs are applied) at the top level and ``metadata``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lab.apiserver import builtin_types, builtin_validation, schema
from lab.apiserver.errors import ApiError
from lab.apiserver.resources import Resource

_META = frozenset(
    {
        "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
        "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
        "annotations", "ownerReferences", "finalizers", "managedFields",
    }
)  # fmt: skip
_SPEC_STATUS = frozenset({"spec", "status"})
_TOP: dict[str, frozenset[str]] = {
    "ConfigMap": frozenset({"data", "binaryData", "immutable"}),
    "Secret": frozenset({"data", "stringData", "type", "immutable"}),
    "ServiceAccount": frozenset({"secrets", "imagePullSecrets", "automountServiceAccountToken"}),
    "EndpointSlice": frozenset({"addressType", "endpoints", "ports"}),
    "Event": frozenset(
        {
            "involvedObject",
            "reason",
            "message",
            "source",
            "firstTimestamp",
            "lastTimestamp",
            "count",
            "type",
            "eventTime",
            "series",
            "action",
            "related",
            "reportingComponent",
            "reportingInstance",
        }
    ),  # fmt: skip
    "ClusterRole": frozenset({"rules", "aggregationRule"}),
    "Role": frozenset({"rules"}),
    "ClusterRoleBinding": frozenset({"subjects", "roleRef"}),
    "RoleBinding": frozenset({"subjects", "roleRef"}),
    "NetworkPolicy": frozenset({"spec"}),
    "ReferenceGrant": frozenset({"spec"}),
    "Lease": frozenset({"spec"}),
}
MODES = ("Strict", "Warn", "Ignore")


def unknown_fields(kind: str, obj: Mapping[str, Any]) -> list[str]:
    """Paths of the fields of ``obj`` that ``kind`` does not have (patch directives skipped)."""
    known = {"apiVersion", "kind", "metadata"} | _TOP.get(kind, _SPEC_STATUS)
    found = [k for k in obj if k not in known and not k.startswith("$")]
    meta = obj.get("metadata")
    if isinstance(meta, Mapping):
        found += [f"metadata.{k}" for k in meta if k not in _META and not k.startswith("$")]
    if kind == "ServiceAccount":
        for i, ref in enumerate(obj.get("imagePullSecrets") or []):
            if isinstance(ref, Mapping):
                found += [f"imagePullSecrets[{i}].{k}" for k in ref if k != "name"]
    return found


def _without(body: Mapping[str, Any], paths: list[str]) -> dict[str, Any]:
    out = dict(body)
    for path in paths:
        head, _, rest = path.partition(".")
        if rest and head == "metadata" and isinstance(out.get("metadata"), Mapping):
            out["metadata"] = {k: v for k, v in out["metadata"].items() if k != rest}
        elif not rest and "[" not in head:
            out.pop(head, None)
    return out


def check(resource: Resource, version: str, body: Any, mode: str | None) -> tuple[Any, list[str]]:
    """(the body without its unknown fields, warnings); raises 400 under Strict.

    ``mode`` None means Warn. Unknown fields are never stored: Go's decoder has nowhere to
    put them, so a cluster drops them too.
    """
    mode = mode or "Warn"
    if mode not in MODES:
        raise ApiError(400, f"fieldValidation must be one of {', '.join(MODES)}, got {mode!r}")
    if not isinstance(body, Mapping):
        return body, []
    kind = resource.kind
    message = (
        None if resource.custom else builtin_types.message_name(resource.api_version(version), kind)
    )
    declared = resource.schema_dict()
    if message is not None:  # a built-in kind: its whole type, at every depth
        decoded = builtin_validation.decode(message, dict(body))
        if decoded.type_error is not None:
            raise ApiError(
                400,
                f'{kind} in version "{version}" cannot be handled as a {kind}: '
                f"{decoded.type_error}",
            )
        unknown = decoded.unknown
    else:
        unknown = unknown_fields(kind, body)
        if declared is not None:
            unknown += schema.unknown_fields(declared, body)
    if not unknown:
        return body, []
    messages = [f'unknown field "{path}"' for path in unknown]
    if mode == "Strict":
        raise ApiError(
            400,
            f'{kind} in version "{version}" cannot be handled as a {kind}: strict decoding '
            f"error: {', '.join(messages)}",
        )
    pruned = decoded.pruned if message is not None else _without(body, unknown)
    if declared is not None and message is None:
        pruned = schema.prune(declared, pruned)
    return pruned, [] if mode == "Ignore" else messages
