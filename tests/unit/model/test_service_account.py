"""A Pod's ServiceAccount (its workload identity): read, defaulted, validated, written."""

from __future__ import annotations

from typing import Any

import pytest

from agent.model.apps import Deployment
from agent.model.convert import from_dict, to_dict
from agent.model.core import Pod
from lab.controllers.deployment import plan_deployment
from tests.unit.model.helpers import edit, error_of, round_trip

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web-0", "namespace": "shop"},
    "spec": {"containers": [{"name": "app"}]},
}


def _pod(doc: dict[str, Any]) -> Pod:
    pod = round_trip(doc)
    assert isinstance(pod, Pod)
    return pod


def test_service_account_name_round_trips() -> None:
    doc = edit(POD, "spec.serviceAccountName", "orders.reader")
    pod = _pod(doc)
    assert pod.spec.service_account_name == "orders.reader"
    assert pod.spec.service_account == "orders.reader"
    assert to_dict(pod)["spec"]["serviceAccountName"] == "orders.reader"


def test_unset_reads_as_none_and_runs_as_default() -> None:
    """The model keeps the object as written (admission, not the reader, fills it in);
    the identity is `default` all the same."""
    pod = _pod(POD)
    assert pod.spec.service_account_name is None
    assert pod.spec.service_account == "default"
    assert "serviceAccountName" not in to_dict(pod)["spec"]


def test_deprecated_service_account_is_read_as_the_name() -> None:
    pod = _pod(edit(POD, "spec.serviceAccount", "legacy"))
    assert pod.spec.service_account_name == "legacy"
    assert to_dict(pod)["spec"]["serviceAccountName"] == "legacy"


def test_service_account_name_wins_over_the_deprecated_alias() -> None:
    doc = edit(edit(POD, "spec.serviceAccount", "legacy"), "spec.serviceAccountName", "web")
    assert _pod(doc).spec.service_account_name == "web"


@pytest.mark.parametrize("field", ["serviceAccountName", "serviceAccount"])
@pytest.mark.parametrize("bad", ["Web", "web_sa", "-web", "a/b", "x" * 254])
def test_an_invalid_name_is_refused_naming_the_field(field: str, bad: str) -> None:
    message = error_of(edit(POD, f"spec.{field}", bad))
    assert message.startswith(f"Pod shop/web-0: spec.{field}: invalid value "), message
    assert "RFC 1123 subdomain" in message or "253 characters" in message


def test_a_non_string_name_is_refused() -> None:
    assert error_of(edit(POD, "spec.serviceAccountName", 7)) == (
        "Pod shop/web-0: spec.serviceAccountName: expected string, got integer 7"
    )


def test_deployment_pods_carry_the_template_service_account() -> None:
    deploy = from_dict({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "uid": "d-1", "generation": 1},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"serviceAccountName": "web-sa", "containers": [{"name": "c"}]},
            },
        },
    })
    assert isinstance(deploy, Deployment)
    [created] = plan_deployment(deploy, []).create
    pod = from_dict(created)
    assert isinstance(pod, Pod)
    assert pod.spec.service_account_name == "web-sa"
