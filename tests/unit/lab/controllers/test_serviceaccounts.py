"""The lab's ServiceAccounts controller: `default` in every Active namespace, made again when
deleted; none in a namespace being deleted; a 409 is success, other errors fail the round."""

from __future__ import annotations

from typing import Any

import pytest
from lightkube import ApiError
from lightkube.models.meta_v1 import Status

from lab.controllers.manager import FIELD_MANAGER
from lab.controllers.serviceaccounts import ServiceAccountController, missing
from lab.kubeapi import ApiWriter, connect
from tests.unit.lab.apilab import ApiLab


def ns(name: str, phase: str | None = "Active", deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-07T03:00:00Z"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta,
            "status": {"phase": phase} if phase else {}}


def sa(namespace: str, name: str = "default") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace}}


def test_each_active_namespace_lacking_default_gets_one() -> None:
    objects = [ns("web"), ns("shop", phase=None), ns("old", phase="Terminating"),
               ns("gone", deleting=True), ns("kube-system"), sa("kube-system"),
               sa("web", "builder"), sa("elsewhere")]
    planned = missing(objects)
    assert [(b["metadata"]["namespace"], b["metadata"]["name"]) for b in planned] == [
        ("shop", "default"), ("web", "default")]
    assert all(b["apiVersion"] == "v1" and b["kind"] == "ServiceAccount" for b in planned)


def test_nothing_to_do_when_every_namespace_has_default() -> None:
    assert missing([ns("web"), sa("web")]) == []


def error(code: int) -> ApiError:
    return ApiError(status=Status(code=code, message=f"HTTP {code}"))


class Api:
    def __init__(self, fail: dict[str, ApiError]) -> None:
        self.fail = fail
        self.made: list[str] = []

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        where = obj["metadata"]["namespace"]
        if where in self.fail:
            raise self.fail[where]
        self.made.append(where)
        return obj


def test_already_exists_is_success() -> None:
    api = Api({"a": error(409)})
    ServiceAccountController(api).reconcile([ns("a"), ns("b")])
    assert api.made == ["b"]


def test_other_errors_fail_the_round_after_trying_every_namespace() -> None:
    api = Api({"a": error(403)})
    with pytest.raises(ApiError) as failed:
        ServiceAccountController(api).reconcile([ns("a"), ns("b")])
    assert failed.value.status.code == 403
    assert api.made == ["b"]


def test_through_the_api_as_the_controller_and_again_after_a_delete(apilab: ApiLab) -> None:
    apilab.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}})
    with connect(apilab.controller, FIELD_MANAGER) as client:
        controller = ServiceAccountController(ApiWriter(client))
        for _ in range(2):
            objects, _rev = apilab.store.list(("Namespace", "ServiceAccount"))
            controller.reconcile(objects)
            made = apilab.store.get("ServiceAccount", "web", "default")
            assert made is not None and made["metadata"]["uid"]
            before = apilab.store.revision()
            controller.reconcile(apilab.store.list(("Namespace", "ServiceAccount"))[0])
            assert apilab.store.revision() == before  # nothing missing: nothing written
            apilab.store.delete("ServiceAccount", "web", "default")
    assert apilab.store.get("ServiceAccount", "web", "default") is None
