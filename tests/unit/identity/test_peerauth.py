"""The PeerAuthentication-shaped policy's decision (identity.peerauth): Istio's precedence
as a table of cases, and its invariants under Hypothesis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from identity.peerauth import (
    DEFAULT,
    Decision,
    Level,
    Mode,
    Policy,
    effective_mode,
    enrolled,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
U, D, P, S = Mode.UNSET, Mode.DISABLE, Mode.PERMISSIVE, Mode.STRICT
POD = ("shop", {"app": "web", "tier": "front"})


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def mesh(mode: Mode, name: str = "mesh", t: int = 0) -> Policy:
    return Policy("tulle-system", name, mode, created=at(t))


def ns(mode: Mode, name: str = "ns", t: int = 0, namespace: str = "shop") -> Policy:
    return Policy(namespace, name, mode, created=at(t))


def wl(
    mode: Mode,
    name: str = "wl",
    t: int = 0,
    selector: dict[str, str] | None = None,
    ports: dict[int, Mode] | None = None,
    namespace: str = "shop",
) -> Policy:
    return Policy(
        namespace, name, mode, selector or {"app": "web"}, ports or {}, created=at(t)
    )


CASES: list[tuple[str, list[Policy], int, Decision]] = [
    ("no policy: PERMISSIVE", [], 80, DEFAULT),
    ("mesh STRICT", [mesh(S)], 80, Decision(S, Level.MESH, ("tulle-system", "mesh"))),
    ("mesh UNSET: the default", [mesh(U)], 80, DEFAULT),
    ("namespace beats mesh", [mesh(S), ns(D)], 80, Decision(D, Level.NAMESPACE, ("shop", "ns"))),
    ("namespace UNSET inherits mesh", [mesh(S), ns(U)], 80,
     Decision(S, Level.MESH, ("tulle-system", "mesh"))),
    ("workload beats namespace", [mesh(S), ns(D), wl(P)], 80,
     Decision(P, Level.WORKLOAD, ("shop", "wl"))),
    ("workload UNSET inherits namespace", [ns(S), wl(U)], 80,
     Decision(S, Level.NAMESPACE, ("shop", "ns"))),
    ("workload UNSET, namespace UNSET: mesh", [mesh(D), ns(U), wl(U)], 80,
     Decision(D, Level.MESH, ("tulle-system", "mesh"))),
    ("selector not matching: namespace", [ns(S), wl(D, selector={"app": "db"})], 80,
     Decision(S, Level.NAMESPACE, ("shop", "ns"))),
    ("selector needs every label", [wl(D, selector={"app": "web", "tier": "back"})], 80, DEFAULT),
    ("empty selector is namespace-wide", [Policy("shop", "all", S, {}, created=at(0))], 80,
     Decision(S, Level.NAMESPACE, ("shop", "all"))),
    ("another namespace's policies: ignored",
     [ns(S, namespace="other"), wl(S, namespace="other")], 80, DEFAULT),
    ("a root-namespace policy with a selector applies to no one",
     [wl(S, namespace="tulle-system")], 80, DEFAULT),
    ("port override wins for its port", [ns(S), wl(U, ports={8080: D})], 8080,
     Decision(D, Level.PORT, ("shop", "wl"))),
    ("port override: other ports keep the workload's mode",
     [ns(D), wl(S, ports={8080: D})], 80, Decision(S, Level.WORKLOAD, ("shop", "wl"))),
    ("port override UNSET inherits the workload's mode", [wl(S, ports={8080: U})], 8080,
     Decision(S, Level.WORKLOAD, ("shop", "wl"))),
    ("port override UNSET, workload UNSET: namespace", [ns(P), wl(U, ports={8080: U})], 8080,
     Decision(P, Level.NAMESPACE, ("shop", "ns"))),
    ("oldest workload policy wins", [wl(S, "new", t=5), wl(D, "old", t=1)], 80,
     Decision(D, Level.WORKLOAD, ("shop", "old"))),
    ("oldest workload policy wins even when UNSET; the newer is not merged",
     [ns(P), wl(S, "new", t=5), wl(U, "old", t=1)], 80,
     Decision(P, Level.NAMESPACE, ("shop", "ns"))),
    ("only the winning workload policy's ports apply",
     [wl(S, "old", t=1), wl(S, "new", t=5, ports={8080: D})], 8080,
     Decision(S, Level.WORKLOAD, ("shop", "old"))),
    ("same age: by name", [wl(S, "b"), wl(D, "a")], 80, Decision(D, Level.WORKLOAD, ("shop", "a"))),
    ("oldest namespace policy wins", [ns(S, "b", t=2), ns(D, "a", t=3)], 80,
     Decision(S, Level.NAMESPACE, ("shop", "b"))),
    ("oldest mesh policy wins", [mesh(D, "z", t=0), mesh(S, "a", t=1)], 80,
     Decision(D, Level.MESH, ("tulle-system", "z"))),
    ("no timestamp sorts after a timestamp",
     [Policy("shop", "a", S, {"app": "web"}), wl(D, "z", t=9)], 80,
     Decision(D, Level.WORKLOAD, ("shop", "z"))),
]


@pytest.mark.parametrize(
    ("policies", "port", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_precedence(policies: list[Policy], port: int, expected: Decision) -> None:
    assert effective_mode(*POD, port, policies) == expected
    assert effective_mode(*POD, port, list(reversed(policies))) == expected


def test_a_pod_in_the_root_namespace_takes_the_mesh_policy_as_its_namespaces() -> None:
    policies = [mesh(S)]
    assert effective_mode("tulle-system", {"app": "web"}, 80, policies) == Decision(
        S, Level.MESH, ("tulle-system", "mesh")
    )


def test_the_root_namespace_is_a_parameter() -> None:
    policies = [ns(S, namespace="istio-system")]
    assert effective_mode(*POD, 80, policies) == DEFAULT
    assert effective_mode(*POD, 80, policies, root_namespace="istio-system").mode is S


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"tulle.io/mtls": "true"}, True),
        ({"tulle.io/mtls": "True"}, False),
        ({"tulle.io/mtls": "yes"}, False),
        ({"tulle.io/mtls": "1"}, False),
        ({"tulle.io/mtls": ""}, False),
        ({"tulle.io/mtls": "true "}, False),
        ({"istio.io/dataplane-mode": "ambient"}, False),
        ({}, False),
    ],
)
def test_enrolment_is_the_exact_label(labels: dict[str, str], expected: bool) -> None:
    assert enrolled(labels) is expected


# --- invariants ------------------------------------------------------------------------

NAMESPACES = st.sampled_from(["shop", "other", "tulle-system"])
LABELS = st.dictionaries(st.sampled_from(["app", "tier"]), st.sampled_from(["web", "db"]))
MODES = st.sampled_from(list(Mode))
PORTS = st.sampled_from([80, 443, 8080])


@st.composite
def policies(draw: st.DrawFn, namespace: st.SearchStrategy[str] = NAMESPACES) -> Policy:
    selector = draw(LABELS)
    return Policy(
        draw(namespace),
        draw(st.sampled_from(["a", "b", "c", "d"])),
        draw(MODES),
        selector,
        draw(st.dictionaries(PORTS, MODES, max_size=2)) if selector else {},
        created=at(draw(st.integers(0, 5))),
    )


POLICY_SETS = st.lists(policies(), max_size=6, unique_by=lambda p: (p.namespace, p.name))


@settings(max_examples=300)
@given(POLICY_SETS, policies(st.sampled_from(["other", "elsewhere"])), LABELS, PORTS)
def test_a_policy_in_another_namespace_never_changes_a_pods_mode(
    existing: list[Policy], added: Policy, labels: dict[str, str], port: int
) -> None:
    before = effective_mode("shop", labels, port, existing)
    assert effective_mode("shop", labels, port, [*existing, added]) == before


@settings(max_examples=300)
@given(POLICY_SETS, LABELS, PORTS)
def test_an_unset_workload_policy_equals_no_workload_policy(
    existing: list[Policy], labels: dict[str, str], port: int
) -> None:
    others = [p for p in existing if not (p.selector and p.namespace == "shop")]
    selector = dict(labels) or {"app": "web"}
    unset = Policy("shop", "u", Mode.UNSET, selector, created=at(0))
    assert effective_mode("shop", selector, port, [*others, unset]) == effective_mode(
        "shop", selector, port, others
    )


@settings(max_examples=300)
@given(POLICY_SETS, LABELS, PORTS)
def test_the_decision_is_never_unset_and_names_a_policy_that_says_so(
    existing: list[Policy], labels: dict[str, str], port: int
) -> None:
    decision = effective_mode("shop", labels, port, existing)
    assert decision.mode is not Mode.UNSET
    if decision.policy is None:
        assert decision == DEFAULT
        return
    [policy] = [p for p in existing if (p.namespace, p.name) == decision.policy]
    said = policy.ports[port] if decision.level is Level.PORT else policy.mode
    assert said is decision.mode


@settings(max_examples=200)
@given(POLICY_SETS, LABELS, PORTS, st.randoms(use_true_random=False))
def test_order_does_not_matter(
    existing: list[Policy], labels: dict[str, str], port: int, rnd: object
) -> None:
    shuffled = list(existing)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert effective_mode("shop", labels, port, shuffled) == effective_mode(
        "shop", labels, port, existing
    )
