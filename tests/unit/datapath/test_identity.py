"""Identities: security-relevant labels, a stable hash, and deterministic collision handling."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.datapath import identity
from agent.datapath.identity import (
    MAX_POD_IDENTITY,
    MIN_POD_IDENTITY,
    NAMESPACE_LABEL,
    SERVICE_ACCOUNT_LABEL,
    allocate_identities,
    identity_for,
    identity_labels,
)

REPO = Path(__file__).resolve().parents[3]
PINNED = 9032396  # identity_labels("default", {"app": "web"}): default ServiceAccount


def test_reserved_numbers_are_ciliums() -> None:
    assert (identity.WILDCARD, identity.HOST, identity.WORLD, identity.REMOTE_NODE) == (0, 1, 2, 6)


def test_identity_labels_drop_controller_bookkeeping_and_add_the_namespace() -> None:
    labels = {
        "app": "web",
        "tier": "front",
        "pod-template-hash": "5d8f7c",
        "controller-revision-hash": "web-7b9",
        "statefulset.kubernetes.io/pod-name": "web-0",
        "pod-template-generation": "3",
        "batch.kubernetes.io/controller-uid": "u",
        "controller-uid": "u",
        "job-name": "j",
    }
    assert identity_labels("shop", labels) == (
        ("app", "web"),
        (NAMESPACE_LABEL, "shop"),
        (SERVICE_ACCOUNT_LABEL, "default"),
        ("tier", "front"),
    )


def test_the_service_account_is_part_of_the_identity() -> None:
    web = identity_labels("shop", {"app": "web"}, "web")
    assert (SERVICE_ACCOUNT_LABEL, "web") in web
    assert identity_for(web) != identity_for(identity_labels("shop", {"app": "web"}, "admin"))
    # Unset is the ServiceAccount admission writes: the same identity.
    assert identity_labels("shop", {"app": "web"}, "") == identity_labels("shop", {"app": "web"})


def test_a_pod_cannot_claim_another_service_account_by_label() -> None:
    spoofed = identity_labels("shop", {"app": "web", SERVICE_ACCOUNT_LABEL: "admin"}, "web")
    assert spoofed == identity_labels("shop", {"app": "web"}, "web")


def test_a_pod_cannot_claim_another_namespace() -> None:
    spoofed = identity_labels("dev", {"app": "db", NAMESPACE_LABEL: "prod"})
    assert spoofed == identity_labels("dev", {"app": "db"})
    assert identity_for(spoofed) != identity_for(identity_labels("prod", {"app": "db"}))


def test_rollouts_keep_their_identity() -> None:
    old = identity_labels("shop", {"app": "web", "pod-template-hash": "aaa"})
    new = identity_labels("shop", {"app": "web", "pod-template-hash": "bbb"})
    assert identity_for(old) == identity_for(new)


def test_identity_is_pinned_across_versions_and_processes() -> None:
    # Nodes running different builds must agree: changing the hash is a breaking change.
    # The label set grew the ServiceAccount in s11 (a new identity for every pod: nodes
    # on the two sides of that upgrade disagree until all run it); the hash did not change.
    assert identity_for((("app", "web"), (NAMESPACE_LABEL, "default"))) == 9379157
    label_set = identity_labels("default", {"app": "web"})
    assert identity_for(label_set) == PINNED
    assert identity_for(()) == 15752468
    code = (
        "from agent.datapath.identity import identity_for, identity_labels;"
        "print(identity_for(identity_labels('default', {'app': 'web'})))"
    )
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        assert int(out.stdout) == PINNED


def test_key_value_boundaries_do_not_alias() -> None:
    assert identity_for((("ab", "c"),)) != identity_for((("a", "bc"),))
    assert identity_for((("a", "b"), ("c", "d"))) != identity_for((("a", "b,c=d"),))


label_sets = st.lists(
    st.dictionaries(st.sampled_from("abcdef"), st.sampled_from(["1", "2", "3"]), max_size=3).map(
        lambda d: tuple(sorted(d.items()))
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(label_sets)
def test_identities_are_in_the_pod_range(sets: list[tuple[tuple[str, str], ...]]) -> None:
    allocation = allocate_identities(sets)
    assert set(allocation.by_labels) == set(sets)
    assert all(MIN_POD_IDENTITY <= n < MAX_POD_IDENTITY for n in allocation.by_labels.values())
    assert allocation.collisions == ()
    assert all(allocation.by_labels[s] == identity_for(s) for s in sets)


def _tiny_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every label set hashes to 256 or 257: collisions everywhere."""
    monkeypatch.setattr(identity, "identity_for", lambda s: MIN_POD_IDENTITY + len(s) % 2)


A = (("app", "a"),)
B = (("app", "b"),)
C = (("app", "c"),)
AB = (("app", "a"), ("tier", "b"))


def test_collisions_resolve_by_canonical_order(monkeypatch: pytest.MonkeyPatch) -> None:
    _tiny_hash(monkeypatch)
    allocation = allocate_identities([C, AB, B, A])
    # A, B, C hash to 257; AB to 256 (its own number, not taken from it by probing).
    assert allocation.by_labels == {A: 257, B: 258, C: 259, AB: 256}
    assert allocation.collisions == (
        "identity 257: {app=b} collides with {app=a}, which keeps it; moved to 258",
        "identity 257: {app=c} collides with {app=a}, which keeps it; moved to 259",
    )


@settings(max_examples=100, deadline=None)
@given(label_sets, st.randoms(use_true_random=False))
def test_collision_resolution_ignores_input_order_and_is_injective(
    sets: list[tuple[tuple[str, str], ...]], rnd: object
) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        _tiny_hash(monkeypatch)
        first = allocate_identities(sets)
        shuffled = list(sets) * 2
        rnd.shuffle(shuffled)  # type: ignore[attr-defined]
        second = allocate_identities(shuffled)
        hashed = {identity.identity_for(s) for s in sets}
    assert first == second
    numbers = list(first.by_labels.values())
    assert len(set(numbers)) == len(numbers)
    assert len(first.collisions) == len(set(sets)) - len(hashed)


def test_probing_wraps_inside_the_pod_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identity, "identity_for", lambda s: MAX_POD_IDENTITY - 1)
    allocation = allocate_identities([A, B, C])
    assert allocation.by_labels == {A: MAX_POD_IDENTITY - 1, B: MIN_POD_IDENTITY, C: 257}
    assert len(allocation.collisions) == 2
