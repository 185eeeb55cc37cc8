"""Readers for metadata and the shared types: ObjectMeta, LabelSelector, Condition."""

from __future__ import annotations

from agent.model.frozen import FrozenMap
from agent.model.meta import (
    Condition,
    ConditionStatus,
    LabelSelector,
    LabelSelectorRequirement,
    ObjectMeta,
    OwnerReference,
    SelectorOperator,
)
from agent.model.reader import REQUIRED, Reader
from agent.model.validation import (
    Check,
    condition_type,
    dns1123_label,
    label_value,
    qualified_name,
)


def read_object_meta(r: Reader, name_check: Check | None) -> ObjectMeta:
    """Read ``metadata``. With a ``name_check`` the name is required and checked (top-level
    objects); without one it is optional (pod templates). The namespace is returned as
    written; ``convert.from_dict`` applies the kind's scoping and default."""
    name = r.string("name", "")
    if name_check is not None:
        if not name:
            r.fail("name", "required")
        if (problem := name_check(name)) is not None:
            r.fail("name", problem)
    return ObjectMeta(
        name=name,
        namespace=r.string("namespace", "", check=dns1123_label),
        uid=r.string("uid", ""),
        resource_version=r.string("resourceVersion", ""),
        generation=r.integer("generation", minimum=0),
        creation_timestamp=r.timestamp("creationTimestamp"),
        labels=read_labels(r, "labels"),
        annotations=r.string_map("annotations", key_check=qualified_name),
        owner_references=_read_owner_references(r),
    )


def _read_owner_references(r: Reader) -> tuple[OwnerReference, ...]:
    refs = r.objects("ownerReferences", _read_owner_reference)
    r.check_unique("ownerReferences", [ref.uid for ref in refs], "uid")
    controllers = [i for i, ref in enumerate(refs) if ref.controller]
    if len(controllers) > 1:
        r.fail(f"ownerReferences[{controllers[1]}].controller", "only one owner can be controller")
    return refs


def _read_owner_reference(r: Reader) -> OwnerReference:
    return OwnerReference(
        api_version=r.string("apiVersion", REQUIRED),
        kind=r.string("kind", REQUIRED),
        name=r.string("name", REQUIRED),
        uid=r.string("uid", REQUIRED, check=lambda v: None if v else "required"),
        controller=r.boolean("controller"),
        block_owner_deletion=r.boolean("blockOwnerDeletion"),
    )


def read_labels(r: Reader, key: str) -> FrozenMap[str, str]:
    """A label map (also ``matchLabels`` and a Service selector)."""
    return r.string_map(key, key_check=qualified_name, value_check=label_value)


def read_label_selector(r: Reader) -> LabelSelector:
    return LabelSelector(
        match_labels=read_labels(r, "matchLabels"),
        match_expressions=r.objects("matchExpressions", _read_requirement),
    )


def _read_requirement(r: Reader) -> LabelSelectorRequirement:
    key = r.string("key", REQUIRED, check=qualified_name)
    operator = r.enum("operator", SelectorOperator, REQUIRED)
    values = r.string_list("values", check=label_value)
    if operator in (SelectorOperator.IN, SelectorOperator.NOT_IN) and not values:
        r.fail("values", f"must be specified when operator is {operator}")
    if operator in (SelectorOperator.EXISTS, SelectorOperator.DOES_NOT_EXIST) and values:
        r.fail("values", f"may not be specified when operator is {operator}")
    return LabelSelectorRequirement(key=key, operator=operator, values=values)


def read_condition(r: Reader) -> Condition:
    """A metav1.Condition. reason and message may be omitted (Tulle is lenient here)."""
    return Condition(
        type=r.string("type", REQUIRED, check=condition_type),
        status=r.enum("status", ConditionStatus, REQUIRED),
        reason=r.string("reason", ""),
        message=r.string("message", ""),
        last_transition_time=r.timestamp("lastTransitionTime"),
        observed_generation=r.integer("observedGeneration", minimum=0),
    )


def read_conditions(r: Reader, key: str = "conditions") -> tuple[Condition, ...]:
    conditions = r.objects(key, read_condition, max_items=8)
    r.check_unique(key, [c.type for c in conditions], "type")
    return conditions
