"""The cluster state's count per kind (the agent's "listed KIND: N" line) follows additions,
replacements and deletions without walking every object."""

from __future__ import annotations

from typing import Any

from agent.kube.cache import Delta
from agent.kube.state import ClusterState


def _obj(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default"}}


def test_count_per_kind_follows_adds_updates_and_deletes() -> None:
    state = ClusterState(["Service", "EndpointSlice"])
    state.apply("Service", Delta("ADDED", ("default", "a"), _obj("a"), 1))
    state.apply("Service", Delta("ADDED", ("default", "b"), _obj("b"), 2))
    state.apply("Service", Delta("MODIFIED", ("default", "a"), _obj("a"), 3))
    state.apply("EndpointSlice", Delta("ADDED", ("default", "a"), _obj("a"), 4))
    state.apply("Service", Delta("DELETED", ("default", "b"), _obj("b"), 5))
    state.apply("Service", Delta("DELETED", ("default", "gone"), _obj("gone"), 6))
    assert state.count("Service") == 1 == sum(1 for _ in state.of_kind("Service"))
    assert state.count("EndpointSlice") == 1
    assert state.count("Pod") == 0  # a kind not watched
