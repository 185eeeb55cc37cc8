"""The Gateway Service controller, when a Gateway outlives its namespace: the API answers 404
to its Service; the round goes on (the other Gateways' Services, then their status) instead
of failing every round for good (seen in a CI run: every Gateway's status stalled)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from lightkube import ApiError

from lab.controllers.gatewayservices import GatewayServiceController
from lab.seed import GATEWAY_CLASS
from tests.unit.lab.controllers.test_serviceaccounts import Api, error


def gateway(ns: str) -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "edge", "namespace": ns, "uid": f"uid-{ns}"},
            "spec": {"gatewayClassName": GATEWAY_CLASS["metadata"]["name"],
                     "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}


def test_a_gateway_whose_namespace_is_gone_does_not_stop_the_others() -> None:
    api = Api({"gone": error(404)})
    objects = [copy.deepcopy(GATEWAY_CLASS), gateway("gone"), gateway("web")]
    result = GatewayServiceController(api).reconcile(objects, [])  # type: ignore[arg-type]
    assert len(result.create) == 2
    assert api.made == ["web"]


def test_other_errors_still_fail_the_round() -> None:
    api = Api({"gone": error(403)})
    objects = [copy.deepcopy(GATEWAY_CLASS), gateway("gone"), gateway("web")]
    with pytest.raises(ApiError) as failed:
        GatewayServiceController(api).reconcile(objects, [])  # type: ignore[arg-type]
    assert failed.value.status.code == 403
