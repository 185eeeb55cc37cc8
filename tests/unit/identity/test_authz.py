"""Node authorization: a node gets the identities of its own running pods and nothing else."""

from __future__ import annotations

import pytest

from identity.authz import PodRecord, may_issue
from identity.spiffe import SpiffeId, workload_id
from tests.unit.identity.helpers import TD

WEB = workload_id(TD, "shop", "web")
PODS = (
    PodRecord("shop", "web-1", "n1", "web"),
    PodRecord("shop", "db-1", "n2", "db"),
    PodRecord("shop", "plain-1", "n1", None),
    PodRecord("shop", "pending-1", None, "queue"),
)


def test_a_pod_on_the_node_allows_its_identity() -> None:
    decision = may_issue("n1", WEB, TD, PODS)
    assert decision and decision.reason == "pod shop/web-1 runs as web on n1"


def test_no_pod_on_that_node_is_refused() -> None:
    decision = may_issue("n2", WEB, TD, PODS)
    assert not decision and decision.reason == "no pod of shop/web on node n2"
    assert not may_issue("n3", workload_id(TD, "shop", "db"), TD, PODS)


def test_an_unset_service_account_is_default() -> None:
    assert may_issue("n1", workload_id(TD, "shop"), TD, PODS)
    assert not may_issue("n1", workload_id(TD, "shop", "plain"), TD, PODS)


def test_the_namespace_must_match() -> None:
    decision = may_issue("n1", workload_id(TD, "other", "web"), TD, PODS)
    assert decision.reason == "no pod of other/web on node n1"


def test_an_unscheduled_pod_gives_no_node_its_identity() -> None:
    assert not may_issue("n1", workload_id(TD, "shop", "queue"), TD, PODS)


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_a_finished_pod_does_not_count(phase: str) -> None:
    pods = [PodRecord("shop", "job-1", "n1", "batch", phase=phase)]
    decision = may_issue("n1", workload_id(TD, "shop", "batch"), TD, pods)
    assert not decision
    assert decision.reason == f"no pod of shop/batch on node n1 (finished: job-1 ({phase}))"
    running = [*pods, PodRecord("shop", "job-2", "n1", "batch")]
    assert may_issue("n1", workload_id(TD, "shop", "batch"), TD, running)


@pytest.mark.parametrize(("phase", "deleting"), [("Pending", False), ("Running", True)])
def test_starting_and_terminating_pods_count(phase: str, deleting: bool) -> None:
    pods = [PodRecord("shop", "web-9", "n1", "web", phase=phase, deleting=deleting)]
    assert may_issue("n1", WEB, TD, pods)


def test_another_trust_domain_is_refused() -> None:
    decision = may_issue("n1", workload_id("evil.example", "shop", "web"), TD, PODS)
    assert not decision
    assert decision.reason == "trust domain 'evil.example' is not ours ('cluster.local')"


@pytest.mark.parametrize(
    "text", ["spiffe://cluster.local", "spiffe://cluster.local/ns/shop/sa/web/extra",
             "spiffe://cluster.local/admin"]
)
def test_ids_not_of_the_workload_shape_are_refused(text: str) -> None:
    decision = may_issue("n1", SpiffeId.parse(text), TD, PODS)
    assert not decision and "not of the shape" in decision.reason


def test_an_empty_node_name_is_refused() -> None:
    # A pod with no node_name must not match a requester that names no node either.
    pods = [PodRecord("shop", "web-1", "", "web")]
    assert not may_issue("", WEB, TD, pods)
