"""The readers for a Gateway's ``spec.infrastructure`` (GEP-1762) and a GatewayClass's
``spec.parametersRef``. Infrastructure: the v1.6.1 CRD's limits
(at most 8 labels and 16 annotations, label values as Kubernetes', annotation values up to
4096 characters) and its CEL rules on the keys, with upstream's messages, so that a key the
API server would refuse never reaches an object Tulle creates for the Gateway."""

from __future__ import annotations

import re

from agent.model.frozen import FrozenMap
from agent.model.gateway import (
    GatewayInfrastructure,
    LocalParametersReference,
    ParametersReference,
)
from agent.model.reader import REQUIRED, Reader
from agent.model.validation import (
    Check,
    dns1123_label,
    gateway_group,
    gateway_kind,
    label_value,
)

MAX_LABELS = 8
MAX_ANNOTATIONS = 16
MAX_ANNOTATION_VALUE = 4096
# The CRD's CEL rule for both maps' keys: an optional DNS-subdomain prefix and '/', then a
# name of at most 63 characters; and the part before the first '/' under 253 characters.
_KEY = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]"
)


def _key_check(what: str) -> Check:
    def check(key: str) -> str | None:
        if not _KEY.fullmatch(key):
            return (
                f"{what} keys must be in the form of an optional DNS subdomain prefix "
                "followed by a required name segment of up to 63 characters."
            )
        if len(key.split("/")[0]) >= 253:
            return (
                f"If specified, the {what.lower()} key's prefix must be a DNS subdomain not "
                "longer than 253 characters in total."
            )
        return None

    return check


_label_key = _key_check("Label")
_annotation_key = _key_check("Annotation")


def _annotation_value(value: str) -> str | None:
    if len(value) > MAX_ANNOTATION_VALUE:
        return f"may not be longer than {MAX_ANNOTATION_VALUE} characters"
    return None


def read_infrastructure(r: Reader) -> GatewayInfrastructure:
    labels = r.string_map("labels", key_check=_label_key, value_check=label_value)
    annotations = r.string_map(
        "annotations", key_check=_annotation_key, value_check=_annotation_value
    )
    _at_most(r, "labels", labels, MAX_LABELS)
    _at_most(r, "annotations", annotations, MAX_ANNOTATIONS)
    return GatewayInfrastructure(
        labels=labels,
        annotations=annotations,
        parameters_ref=r.obj("parametersRef", _read_parameters_ref),
    )


def _at_most(r: Reader, key: str, entries: FrozenMap[str, str], limit: int) -> None:
    if len(entries) > limit:
        r.fail(key, f"Too many: {len(entries)}: must have at most {limit} items")


def _read_parameters_ref(r: Reader) -> LocalParametersReference:
    return LocalParametersReference(
        group=r.string("group", REQUIRED, check=gateway_group),
        kind=r.string("kind", REQUIRED, check=gateway_kind),
        name=r.string("name", REQUIRED, check=_reference_name),
    )


def read_class_parameters_ref(r: Reader) -> ParametersReference:
    """A GatewayClass's ``spec.parametersRef`` (``ParametersReference``): the Gateway's
    fields and an optional namespace (a DNS label, as Gateway API's ``Namespace``)."""
    return ParametersReference(
        group=r.string("group", REQUIRED, check=gateway_group),
        kind=r.string("kind", REQUIRED, check=gateway_kind),
        name=r.string("name", REQUIRED, check=_reference_name),
        namespace=r.string("namespace", check=dns1123_label),
    )


def _reference_name(value: str) -> str | None:
    return None if 1 <= len(value) <= 253 else "must be 1 to 253 characters"
