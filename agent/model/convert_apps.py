"""Readers for apps/v1 kinds: Deployment."""

from __future__ import annotations

from agent.model.apps import (
    Deployment,
    DeploymentCondition,
    DeploymentSpec,
    DeploymentStatus,
    PodTemplateSpec,
)
from agent.model.convert_core import read_pod_spec
from agent.model.convert_meta import read_label_selector, read_object_meta
from agent.model.core import RestartPolicy
from agent.model.meta import ConditionStatus, ObjectMeta
from agent.model.reader import REQUIRED, Reader


def read_deployment(r: Reader, metadata: ObjectMeta) -> Deployment:
    return Deployment(
        metadata=metadata,
        spec=r.obj("spec", _read_deployment_spec, REQUIRED),
        status=r.obj("status", _read_deployment_status, DeploymentStatus()),
    )


def _read_deployment_spec(r: Reader) -> DeploymentSpec:
    replicas = r.integer("replicas", 1, minimum=0)
    selector = r.obj("selector", read_label_selector, REQUIRED)
    if selector.is_empty:
        r.fail("selector", "empty selector is invalid for a Deployment")
    template = r.obj("template", _read_pod_template, REQUIRED)
    if not selector.matches(template.metadata.labels):
        r.fail("template.metadata.labels", "`selector` does not match template `labels`")
    if template.spec.restart_policy is not RestartPolicy.ALWAYS:
        r.fail(
            "template.spec.restartPolicy",
            f'unsupported value "{template.spec.restart_policy}" (supported: Always)',
        )
    return DeploymentSpec(selector=selector, template=template, replicas=replicas)


def _read_pod_template(r: Reader) -> PodTemplateSpec:
    return PodTemplateSpec(
        metadata=read_object_meta(r.child("metadata"), name_check=None),
        spec=r.obj("spec", read_pod_spec, REQUIRED),
    )


def _read_deployment_status(r: Reader) -> DeploymentStatus:
    return DeploymentStatus(
        observed_generation=r.integer("observedGeneration", minimum=0),
        replicas=r.integer("replicas", minimum=0),
        updated_replicas=r.integer("updatedReplicas", minimum=0),
        ready_replicas=r.integer("readyReplicas", minimum=0),
        available_replicas=r.integer("availableReplicas", minimum=0),
        conditions=r.objects("conditions", _read_deployment_condition),
    )


def _read_deployment_condition(r: Reader) -> DeploymentCondition:
    return DeploymentCondition(
        type=r.string("type", REQUIRED),
        status=r.enum("status", ConditionStatus, REQUIRED),
        reason=r.string("reason", ""),
        message=r.string("message", ""),
        last_update_time=r.timestamp("lastUpdateTime"),
        last_transition_time=r.timestamp("lastTransitionTime"),
    )
