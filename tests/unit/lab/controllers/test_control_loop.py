"""The lab controller's loop under API errors: pods keep running, rounds back off and retry,
and the kubelet only hears about pods once every kind has been listed in full."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx
import pytest
from lightkube import ApiError
from lightkube.models.meta_v1 import Status

from lab.controllers.endpointslice import MANAGED_BY, MANAGED_BY_LABEL
from lab.controllers.manager import TICK, ControlLoop
from lab.controllers.reconcile import Controller
from lab.kubeapi import retryable
from lab.liveview import LiveView
from lab.store.retry import Backoff

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web", "namespace": "default", "uid": "u-web", "resourceVersion": "5"},
    "spec": {"containers": [{"name": "echo"}], "nodeName": "node1"},
}
DEPLOY = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "api", "namespace": "default", "uid": "u-api", "resourceVersion": "6"},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "api"}},
        "template": {
            "metadata": {"labels": {"app": "api"}},
            "spec": {"containers": [{"name": "c"}]},
        },
    },
}


def api_error(code: int) -> ApiError:
    return ApiError(status=Status(code=code, message=f"HTTP {code}"))


class FailingApi:
    """Answers writes as the API server would, after raising what is queued in ``errors``."""

    def __init__(self, view: LiveView) -> None:
        self.view = view
        self.errors: list[Exception] = []
        self.created: list[str] = []

    def _maybe_fail(self) -> None:
        if self.errors:
            raise self.errors.pop(0)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._maybe_fail()
        out = {**obj, "metadata": {**obj["metadata"], "uid": "u-new", "resourceVersion": "100"}}
        self.view.observe(obj["kind"], out)
        self.created.append(obj["metadata"]["name"])
        return out

    def update(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._maybe_fail()
        return obj

    def update_status(self, kind: str, ns: str, name: str, status: Any) -> dict[str, Any]:
        self._maybe_fail()
        return {}

    def delete(self, kind: str, ns: str, name: str) -> bool:
        self._maybe_fail()
        return True


class FakeKubelet:
    def __init__(self) -> None:
        self.synced: list[list[str]] = []
        self.ticks = 0
        self.shutdowns = 0
        self.tick_errors: list[Exception] = []

    def sync(self, pods: list[Any]) -> None:
        self.synced.append(sorted(p.metadata.name for p in pods))

    def tick(self) -> None:
        self.ticks += 1
        if self.tick_errors:
            raise self.tick_errors.pop(0)

    def shutdown(self) -> None:
        self.shutdowns += 1


class NoGateways:
    def reconcile(self, objs: Any, services: Any, lb: Any = None) -> None:
        pass


@pytest.fixture
def loop():
    view = LiveView(("Deployment", "Pod", "Service", "EndpointSlice"))
    view.observe("Pod", POD)
    api = FailingApi(view)
    kubelet = FakeKubelet()
    synced = [True]
    loop = ControlLoop(
        view,
        lambda: synced[0],
        kubelet,  # type: ignore[arg-type]
        Controller(api, ["node1"]),  # type: ignore[arg-type]
        NoGateways(),  # type: ignore[arg-type]
        backoff=Backoff(initial=1.0, cap=8.0),
    )
    return loop, api, kubelet, synced


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("connection refused"),
        ConnectionResetError("reset by peer"),
        api_error(503),
        api_error(500),
        api_error(429),
        api_error(409),
    ],
    ids=["connect", "reset", "503", "500", "429", "409"],
)
def test_api_errors_back_off_and_never_tear_down_pods(loop, error: Exception) -> None:
    loop, api, kubelet, _ = loop
    assert retryable(error)
    assert loop.step() == TICK
    assert kubelet.synced == [["web"]]
    loop.view.observe("Deployment", DEPLOY)  # a change: its pod cannot be created yet
    api.errors = [error, error, error]
    delays = [loop.step() for _ in range(3)]
    assert 0.5 <= delays[0] <= 1.0 < delays[1] <= 2.0 < delays[2] <= 4.0  # growing back-off
    assert all(pods == ["web"] for pods in kubelet.synced)  # the running pod stays
    assert kubelet.shutdowns == 0
    assert kubelet.ticks == 4  # container supervision went on meanwhile
    assert loop.step() == TICK  # the API is back: the change is reconciled
    assert len(api.created) == 1 and loop.failures == 0


def test_the_kubelet_hears_nothing_before_every_kind_is_listed(loop) -> None:
    loop, api, kubelet, synced = loop
    synced[0] = False
    assert loop.step() == TICK
    assert kubelet.synced == [] and kubelet.ticks == 1
    synced[0] = True
    assert loop.step() == TICK
    assert kubelet.synced == [["web"]]


def test_a_failing_status_write_in_the_kubelet_is_retried_not_fatal(loop) -> None:
    loop, api, kubelet, _ = loop
    kubelet.tick_errors = [httpx.ReadTimeout("the API server did not answer")]
    assert loop.step() > TICK
    assert loop.step() == TICK
    assert kubelet.shutdowns == 0


def test_a_failed_reconcile_is_retried_even_without_a_change(loop) -> None:
    loop, api, kubelet, _ = loop
    calls = []

    class FlakyGateways:
        def reconcile(self, objs: Any, services: Any, lb: Any = None) -> None:
            calls.append(1)
            if len(calls) == 1:
                raise api_error(503)

    loop.gateways = FlakyGateways()
    assert loop.step() > TICK
    assert kubelet.synced == [["web"]]  # the view was complete: the kubelet got it
    assert loop.step() == TICK
    assert len(calls) == 2


@pytest.mark.parametrize("code", [400, 403, 404, 422])
def test_errors_about_the_request_are_not_retryable(code: int) -> None:
    assert not retryable(api_error(code))


def user_slice(name: str, version: str, managed: bool = False) -> dict[str, Any]:
    labels = {"kubernetes.io/service-name": "other"}
    if managed:
        labels[MANAGED_BY_LABEL] = MANAGED_BY
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "default", "resourceVersion": version,
                         "labels": labels},
            "addressType": "IPv4", "endpoints": [], "ports": []}


class CountingGateways:
    def __init__(self) -> None:
        self.rounds = 0

    def reconcile(self, objs: Any, services: Any, lb: Any = None) -> None:
        self.rounds += 1


def test_a_change_to_a_slice_no_part_reads_costs_no_round(loop) -> None:
    loop, _, kubelet, _ = loop
    loop.gateways = rounds = CountingGateways()
    assert loop.step() == TICK and rounds.rounds == 1
    loop.view.observe("EndpointSlice", user_slice("mine", "50"))  # a user's, selector-less
    loop.step()
    loop.view.forget("EndpointSlice", ("default", "mine"), 51)
    loop.step()
    assert rounds.rounds == 1  # no decode and replan of the whole cluster for them
    assert kubelet.synced == [["web"]]


def test_managed_slices_wanted_slices_and_other_kinds_still_cost_a_round(loop) -> None:
    loop, _, _, _ = loop
    loop.gateways = rounds = CountingGateways()
    loop.step()
    loop.view.observe("EndpointSlice", user_slice("stray", "50", managed=True))  # to delete
    loop.step()
    assert rounds.rounds == 2
    loop.controller.wanted_slices.add(("default", "wanted"))
    loop.view.observe("EndpointSlice", user_slice("wanted", "51"))
    loop.step()
    assert rounds.rounds == 3
    loop.view.observe("Deployment", DEPLOY)
    loop.step()
    assert rounds.rounds == 4


def test_after_a_failed_round_the_next_is_full_whatever_changed(loop) -> None:
    loop, _, _, _ = loop

    class FailOnce(CountingGateways):
        def reconcile(self, objs: Any, services: Any, lb: Any = None) -> None:
            super().reconcile(objs, services)
            if self.rounds == 1:
                raise api_error(503)

    loop.gateways = rounds = FailOnce()
    assert loop.step() > TICK
    loop.view.observe("EndpointSlice", user_slice("mine", "50"))  # not ours, yet a retry is due
    loop.step()
    assert rounds.rounds == 2


def test_one_deployment_refused_does_not_stall_the_others(loop) -> None:
    """A pod the API server refuses for one Deployment (422) leaves the others reconciled in
    the same round; the round still fails, so the refused one is retried after back-off."""
    loop, api, kubelet, _synced = loop
    other = {**DEPLOY, "metadata": {**DEPLOY["metadata"], "name": "web", "uid": "u-web-deploy",
                                    "resourceVersion": "7"}}
    loop.view.observe("Deployment", DEPLOY)  # first in the view: its create is refused
    loop.view.observe("Deployment", other)
    api.errors = [api_error(422)]
    delay = loop.step()
    assert delay > TICK and loop.failures == 1
    assert [name.split("-")[0] for name in api.created] == ["web"]
    assert kubelet.synced  # the kubelet still got the round's view
    assert loop.step() == TICK  # the retry creates the refused Deployment's pod
    assert sorted(name.split("-")[0] for name in api.created) == ["api", "web"]


def test_a_refused_deployment_does_not_stop_binding_or_slices(loop) -> None:
    """The scheduler and the EndpointSlice controller still run in a round whose Deployment
    part failed: one bad Deployment must not stop every pending Pod lab-wide."""
    loop, api, _kubelet, _synced = loop
    pending = {**POD, "metadata": {**POD["metadata"], "name": "pending", "uid": "u-pending",
                                   "resourceVersion": "8"},
               "spec": {"containers": [{"name": "echo"}]}}
    loop.view.observe("Pod", pending)
    loop.view.observe("Deployment", DEPLOY)
    bound: list[str] = []
    update = api.update

    def recording_update(obj: dict[str, Any]) -> dict[str, Any]:
        bound.append(obj["metadata"]["name"])
        return update(obj)

    api.update = recording_update  # type: ignore[method-assign]
    api.errors = [api_error(422)]  # the Deployment's pod create is refused
    assert loop.step() > TICK and loop.failures == 1
    assert bound == ["pending"]


def test_the_loop_makes_each_namespaces_default_account_and_remakes_it() -> None:
    from lab.controllers.serviceaccounts import ServiceAccountController

    view = LiveView(("Deployment", "Pod", "Service", "EndpointSlice", "Namespace",
                     "ServiceAccount"))
    api = FailingApi(view)
    loop = ControlLoop(
        view, lambda: True, FakeKubelet(),  # type: ignore[arg-type]
        Controller(api, ["node1"]), NoGateways(),  # type: ignore[arg-type]
        service_accounts=ServiceAccountController(api),
    )
    view.observe("Namespace", {"apiVersion": "v1", "kind": "Namespace",
                               "metadata": {"name": "web", "resourceVersion": "7"}})
    assert loop.step() == TICK
    assert api.created == ["default"]
    assert view.get("ServiceAccount", "web", "default") is not None
    assert loop.step() == TICK and api.created == ["default"]  # present: not made again
    assert view.forget("ServiceAccount", ("web", "default"), 101)
    assert loop.step() == TICK
    assert api.created == ["default", "default"]
