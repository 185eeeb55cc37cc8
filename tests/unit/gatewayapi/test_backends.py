"""Backends: weighted choice, weight 0, invalid backends answering 500 for their share,
cross-namespace references and ReferenceGrants."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatewayapi import Answer, BackendTarget, ServiceParent
from gatewayapi.backends import WeightedChoice
from tests.unit.gatewayapi.helpers import (
    PARENT,
    backend,
    draws,
    forward,
    grant,
    request,
    respond,
    route,
    service,
    svc_ref,
    tables,
)


def _split(*refs: dict[str, Any], extra: tuple[Any, ...] = ()) -> Any:
    return tables(route("r", rules=[{"backendRefs": list(refs)}]), *extra)


def _share(t: Any, samples: int = 1000) -> Counter[str]:
    """Where ``samples`` evenly spread draws go: backend name, or the answer."""
    seen: Counter[str] = Counter()
    for i in range(samples):
        result = t.route(PARENT, request("/"), rng=draws((i + 0.5) / samples))
        seen[result.backend.name if hasattr(result, "backend") else str(result.answer)] += 1
    return seen


# Spec: BackendRef.weight: weight/(sum of weights); 0 means no traffic for that entry.
SPLITS = [
    ([("v1", 80), ("v2", 20)], {"v1": 800, "v2": 200}),
    ([("v1", 1), ("v2", 1), ("v3", 2)], {"v1": 250, "v2": 250, "v3": 500}),
    ([("v1", 0), ("v2", 5)], {"v2": 1000}),
    ([("v1", 3)], {"v1": 1000}),
]


@pytest.mark.parametrize(("weights", "expected"), SPLITS)
def test_weighted_split(weights: list[tuple[str, int]], expected: dict[str, int]) -> None:
    t = _split(*(backend(name, weight=w) for name, w in weights))
    assert _share(t) == expected


def test_invalid_backend_gets_500_for_its_share() -> None:
    # Spec: HTTPRouteRule.backendRefs: with two equal weights and one invalid backend,
    # 50 percent of traffic must receive a 500.
    t = _split(backend("v1"), backend("missing"))
    share = _share(t)
    assert share == {"v1": 500, str(Answer.INVALID_BACKEND): 500}
    answer = respond(t.route(PARENT, request("/"), rng=draws(0.9)))
    assert answer.response.status == 500
    assert "default/missing not found" in answer.detail


def test_all_weights_zero_and_no_backends_answer_500() -> None:
    zero = respond(_split(backend("v1", weight=0)).route(PARENT, request("/"), rng=draws(0.5)))
    assert (zero.answer, zero.response.status) == (Answer.NO_BACKEND, 500)
    empty = tables(route("r", rules=[{"matches": [{"path": {"value": "/"}}]}]))
    none = respond(empty.route(PARENT, request("/"), rng=draws(0.5)))
    assert (none.answer, none.response.status) == (Answer.NO_BACKEND, 500)


# Spec: HTTPBackendRef: a cross-namespace reference needs a ReferenceGrant in the
# referent's namespace (from HTTPRoute in the route's namespace to Service).
GRANTS: list[tuple[tuple[Any, ...], bool]] = [
    ((), False),
    ((grant("other", "default"),), True),
    ((grant("other", "default", to_name="api"),), True),
    ((grant("other", "default", to_name="else"),), False),
    ((grant("other", "elsewhere"),), False),
    ((grant("default", "default"),), False),  # a grant must live in the target namespace
    ((grant("other", "default", from_kind="Gateway"),), False),
]


@pytest.mark.parametrize(("grants", "allowed"), GRANTS)
def test_cross_namespace_backend_needs_grant(grants: tuple[Any, ...], allowed: bool) -> None:
    t = _split(
        backend("api", namespace="other"), extra=(service("api", namespace="other"), *grants)
    )
    result = t.route(PARENT, request("/"), rng=draws(0.0))
    if allowed:
        assert forward(result).backend == BackendTarget("other", "api", 8080)
    else:
        answer = respond(result)
        assert answer.answer is Answer.INVALID_BACKEND and "ReferenceGrant" in answer.detail


def test_grant_also_required_for_service_parents() -> None:
    # GEP-1426 exception: Tulle's waypoint forwards as itself, so mesh routes could widen
    # reach; cross-namespace backends of Service parents need a grant too.
    parent = ServiceParent("default", "web", 8080)
    objs = (service("api", namespace="other"),)
    r = route(
        "r", parents=[svc_ref("web")], rules=[{"backendRefs": [backend("api", namespace="other")]}]
    )
    denied = tables(r, *objs).route(parent, request("/"), rng=draws(0.0))
    assert respond(denied).answer is Answer.INVALID_BACKEND
    granted = tables(r, *objs, grant("other", "default")).route(
        parent, request("/"), rng=draws(0.0)
    )
    assert forward(granted).backend == BackendTarget("other", "api", 8080)


@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        (backend("web", port=9999), "has no port 9999"),
        (
            {"name": "web", "kind": "ServiceImport", "group": "multicluster.x-k8s.io"},
            "not supported",
        ),
    ],
)
def test_backend_port_and_kind(ref: dict[str, Any], problem: str) -> None:
    answer = respond(_split(ref).route(PARENT, request("/"), rng=draws(0.0)))
    assert problem in answer.detail


# --- properties -----------------------------------------------------------------------------

weights = st.lists(st.integers(min_value=0, max_value=1_000_000), min_size=1, max_size=16)


@given(weights=weights, draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_weighted_choice_never_picks_weight_zero(weights: list[int], draw: float) -> None:
    index = WeightedChoice(weights).pick(draw)
    if sum(weights) == 0:
        assert index is None
    else:
        assert index is not None and weights[index] > 0


@given(weights=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=6))
def test_weighted_choice_is_exactly_proportional_over_the_tickets(weights: list[int]) -> None:
    total = sum(weights)
    choice = WeightedChoice(weights)
    counts = Counter(choice.pick((t + 0.5) / total) for t in range(total)) if total else Counter()
    assert counts == Counter({i: w for i, w in enumerate(weights) if w})
