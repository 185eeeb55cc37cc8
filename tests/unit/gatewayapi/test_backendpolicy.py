"""BackendTrafficPolicy attachment and status (GEP-713: the older policy wins a conflict,
the loser says so)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agent.model.backendpolicy import BackendTrafficPolicy
from agent.model.convert import from_dict
from gatewayapi.backendpolicy import attach, winners

NOW = datetime(2026, 12, 6, 7, 0, tzinfo=UTC)


def policy(name: str, created: str, *targets: str, ns: str = "shop") -> BackendTrafficPolicy:
    doc: dict[str, Any] = {
        "apiVersion": "policy.tulle.io/v1alpha1",
        "kind": "BackendTrafficPolicy",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": created,
                     "generation": 2},
        "spec": {"targetRefs": [{"kind": "Service", "name": t} for t in targets]},
    }
    p = from_dict(doc)
    assert isinstance(p, BackendTrafficPolicy)
    return p


def accepted(status: dict[str, Any], service: str) -> dict[str, Any]:
    for ancestor in status["ancestors"]:
        if ancestor["ancestorRef"]["name"] == service:
            (condition,) = ancestor["conditions"]
            assert condition["type"] == "Accepted"
            return dict(condition)
    raise AssertionError(f"no ancestor {service}")


def test_the_older_policy_wins_and_the_loser_names_it() -> None:
    old = policy("old", "2026-01-01T00:00:00Z", "echo")
    new = policy("new", "2026-02-01T00:00:00Z", "echo", "other")
    result = attach([new, old], [("shop", "echo"), ("shop", "other")], {}, NOW)
    assert result.winners == {("shop", "echo"): old, ("shop", "other"): new}
    assert accepted(result.statuses["shop/old"], "echo")["status"] == "True"
    lost = accepted(result.statuses["shop/new"], "echo")
    assert (lost["status"], lost["reason"]) == ("False", "Conflicted")
    assert "shop/old" in lost["message"]
    assert accepted(result.statuses["shop/new"], "other")["reason"] == "Accepted"
    assert lost["observedGeneration"] == 2


def test_same_age_orders_by_name() -> None:
    a = policy("a", "2026-01-01T00:00:00Z", "echo")
    b = policy("b", "2026-01-01T00:00:00Z", "echo")
    assert winners([b, a], [("shop", "echo")]) == {("shop", "echo"): a}


def test_a_missing_service_is_target_not_found() -> None:
    result = attach([policy("p", "2026-01-01T00:00:00Z", "gone")], [], {}, NOW)
    assert result.winners == {}
    condition = accepted(result.statuses["shop/p"], "gone")
    assert (condition["status"], condition["reason"]) == ("False", "TargetNotFound")


def test_a_service_of_another_namespace_is_not_a_target() -> None:
    result = attach([policy("p", "2026-01-01T00:00:00Z", "echo")], [("other", "echo")], {}, NOW)
    assert result.winners == {}


def test_transition_time_is_kept_while_the_status_holds() -> None:
    p = policy("p", "2026-01-01T00:00:00Z", "echo")
    first = attach([p], [("shop", "echo")], {}, NOW).statuses
    later = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    again = attach([p], [("shop", "echo")], first, later).statuses
    assert again == first
    gone = attach([p], [], first, later).statuses
    assert accepted(gone["shop/p"], "echo")["lastTransitionTime"] == "2026-12-06T08:00:00Z"
