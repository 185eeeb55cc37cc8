"""The pure SVID schedule: which identities a node needs, when to fetch, renew, refetch after
a root left the bundle, drop after the grace, and the back-off after failures."""

from __future__ import annotations

from typing import Any

import pytest

from agent.svid.schedule import (
    DROP_GRACE,
    RETRY,
    Held,
    Retry,
    decide,
    needed,
    retry_after,
)

WEB = ("shop", "web")
DB = ("shop", "db")
ROOT_A, ROOT_B = "aa" * 32, "bb" * 32


def pod(
    ns: str, name: str, node: str = "n1", sa: str | None = None, phase: str = "Running"
) -> dict[str, Any]:
    spec: dict[str, Any] = {"nodeName": node}
    if sa is not None:
        spec["serviceAccountName"] = sa
    return {"metadata": {"namespace": ns, "name": name}, "spec": spec, "status": {"phase": phase}}


def namespace(name: str, label: str | None = "true") -> dict[str, Any]:
    labels = {} if label is None else {"tulle.io/mtls": label}
    return {"metadata": {"name": name, "labels": labels}}


NAMESPACES = [namespace("shop"), namespace("plain", None), namespace("odd", "True")]


def test_needed_is_the_service_accounts_of_enrolled_unfinished_pods_on_this_node() -> None:
    pods = [
        pod("shop", "web-1", sa="web"),
        pod("shop", "web-2", sa="web"),  # the same identity once
        pod("shop", "api-1"),  # no serviceAccountName: default
        pod("shop", "db-1", node="n2", sa="db"),  # another node's
        pod("shop", "job-1", sa="batch", phase="Succeeded"),  # finished
        pod("shop", "job-2", sa="crash", phase="Failed"),
        pod("shop", "new-1", sa="pending", phase="Pending"),  # not finished: needs one
        pod("plain", "p-1", sa="web"),  # not enrolled
        pod("odd", "o-1", sa="web"),  # "True" is not "true"
        pod("ghost", "g-1"),  # its namespace is not (yet) known
    ]
    assert needed(pods, NAMESPACES, "n1") == {
        ("shop", "web"),
        ("shop", "default"),
        ("shop", "pending"),
    }
    assert needed(pods, NAMESPACES, "n2") == {("shop", "db")}
    assert needed(pods, [], "n1") == frozenset()


def held(start: float = 0.0, life: float = 60.0, root: str = ROOT_A) -> Held:
    return Held("spiffe://cluster.local/ns/shop/sa/web", 7, start, start + life, root)


def test_a_missing_identity_is_fetched_and_a_fresh_one_waits_for_its_half_life() -> None:
    first = decide(100.0, frozenset({WEB}), {}, frozenset({ROOT_A}))
    assert first.fetch == ((WEB, "missing"),)
    fresh = decide(100.0, frozenset({WEB}), {WEB: held(90.0)}, frozenset({ROOT_A}))
    assert fresh.fetch == () and fresh.drop == ()
    assert fresh.wake_at == 120.0  # notBefore 90 + 60 s / 2


@pytest.mark.parametrize(
    ("now", "reason"),
    [
        (119.999, None),
        (120.0, "renew"),
        (149.0, "renew"),
        (150.0, "expired"),
        (500.0, "expired"),
    ],
)
def test_renewal_starts_at_half_life(now: float, reason: str | None) -> None:
    decision = decide(now, frozenset({WEB}), {WEB: held(90.0)}, frozenset({ROOT_A}))
    assert decision.fetch == (() if reason is None else ((WEB, reason),))


def test_a_root_removed_from_the_bundle_triggers_a_refetch_before_half_life() -> None:
    svid = held(90.0, root=ROOT_A)
    during_overlap = decide(95.0, frozenset({WEB}), {WEB: svid}, frozenset({ROOT_A, ROOT_B}))
    assert during_overlap.fetch == ()
    after = decide(95.0, frozenset({WEB}), {WEB: svid}, frozenset({ROOT_B}))
    assert after.fetch == ((WEB, "root-removed"),)


def test_an_identity_no_pod_needs_is_dropped_only_after_the_grace() -> None:
    holding = {WEB: held(0.0, 3600.0), DB: held(0.0, 3600.0)}
    roots = frozenset({ROOT_A})
    first = decide(10.0, frozenset({DB}), holding, roots)
    assert first.drop == () and first.unneeded == {WEB: 10.0}
    assert first.wake_at == 10.0 + DROP_GRACE
    later = decide(
        10.0 + DROP_GRACE - 1, frozenset({DB}), holding, roots, unneeded_since=first.unneeded
    )
    assert later.drop == () and later.unneeded == {WEB: 10.0}
    due = decide(10.0 + DROP_GRACE, frozenset({DB}), holding, roots, unneeded_since=later.unneeded)
    assert due.drop == (WEB,) and due.unneeded == {}
    # A pod back within the grace keeps it: the clock starts again on the next absence.
    back = decide(30.0, frozenset({DB, WEB}), holding, roots, unneeded_since=first.unneeded)
    assert back.drop == () and back.unneeded == {}


def test_a_failed_identity_waits_out_its_back_off() -> None:
    retries = {WEB: Retry(1, 105.0)}
    waiting = decide(100.0, frozenset({WEB, DB}), {}, frozenset({ROOT_A}), retries)
    assert waiting.fetch == ((DB, "missing"),)  # the other identity is not held up
    assert waiting.wake_at == 105.0
    due = decide(105.0, frozenset({WEB}), {}, frozenset({ROOT_A}), retries)
    assert due.fetch == ((WEB, "missing"),)


def test_back_off_grows_with_jitter_and_is_capped() -> None:
    low = [retry_after(n, 1000.0, lambda: 0.0).at - 1000.0 for n in range(1, 12)]
    high = [retry_after(n, 1000.0, lambda: 1.0).at - 1000.0 for n in range(1, 12)]
    assert low[:4] == [0.5, 1.0, 2.0, 4.0]  # half the ceiling at the lowest jitter
    assert high[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(high) == RETRY.cap and max(low) == RETRY.cap / 2
    assert all(b >= a for a, b in zip(high, high[1:], strict=False))
    assert retry_after(3, 0.0, lambda: 0.5).failures == 3


def test_nothing_to_do_schedules_no_wake_up() -> None:
    assert decide(0.0, frozenset(), {}, frozenset({ROOT_A})) == decide(
        0.0, frozenset(), {}, frozenset()
    )
    assert decide(0.0, frozenset(), {}, frozenset()).wake_at is None


def test_half_life_counts_from_receipt_when_the_ca_backdated_not_before() -> None:
    # The CA backdates notBefore a minute: a 60 s SVID received at 100 runs 40..160.
    svid = Held("spiffe://cluster.local/ns/shop/sa/web", 7, 40.0, 160.0, ROOT_A, 100.0)
    assert svid.renew_at == 130.0
    assert decide(100.0, frozenset({WEB}), {WEB: svid}, frozenset({ROOT_A})).fetch == ()
    assert decide(130.0, frozenset({WEB}), {WEB: svid}, frozenset({ROOT_A})).fetch == (
        (WEB, "renew"),
    )
