"""The controller's view: versions only move forward per object, a deletion is not undone by
an older event, and the generation moves exactly when the view changes."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agent.kube.cache import Delta
from lab.liveview import LiveView


def pod(name: str, rv: int, **labels: str) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "resourceVersion": str(rv),
            "labels": labels,
        },
    }


def test_an_older_version_never_replaces_a_newer_one() -> None:
    view = LiveView(["Pod"])
    assert view.observe("Pod", pod("a", 5, v="5"))
    gen = view.generation
    assert not view.observe("Pod", pod("a", 3, v="3"))  # the watch was behind a write's answer
    assert not view.observe("Pod", pod("a", 5, v="5"))  # the same version again
    assert view.generation == gen
    held = view.get("Pod", "default", "a")
    assert held is not None and held["metadata"]["labels"] == {"v": "5"}


def test_a_deletion_is_not_undone_by_an_older_event() -> None:
    view = LiveView(["Pod"])
    feed = view.feed("Pod")
    view.observe("Pod", pod("a", 5))
    assert view.forget("Pod", ("default", "a"), 5)  # deleted by this controller
    feed(Delta("MODIFIED", ("default", "a"), pod("a", 4), 4))  # stale watch event
    assert view.get("Pod", "default", "a") is None
    feed(Delta("DELETED", ("default", "a"), pod("a", 6), 6))
    feed(Delta("ADDED", ("default", "a"), pod("a", 9), 9))  # created again later
    assert view.get("Pod", "default", "a") is not None


def test_list_items_without_kind_get_theirs() -> None:
    view = LiveView(["Pod"])
    item = pod("a", 1)
    del item["kind"]
    view.feed("Pod")(Delta("ADDED", ("default", "a"), item, 1, resync=True))
    held = view.get("Pod", "default", "a")
    assert held is not None and held["kind"] == "Pod" and held["apiVersion"] == "v1"


events = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.integers(1, 30), st.booleans()), max_size=40
)


@given(events)
def test_any_order_of_events_ends_at_each_objects_newest_state(
    evs: list[tuple[str, int, bool]],
) -> None:
    """Whatever order writes' answers and watch events arrive in, each object ends as its
    newest event says (deleted or at its newest version)."""
    view = LiveView(["Pod"])
    newest: dict[str, tuple[int, bool]] = {}
    for name, rv, deleted in evs:
        if deleted:
            view.forget("Pod", ("default", name), rv)
        else:
            view.observe("Pod", pod(name, rv))
        if name not in newest or rv > newest[name][0]:
            newest[name] = (rv, deleted)
        elif rv == newest[name][0] and deleted:
            newest[name] = (rv, True)
    for name, (rv, deleted) in newest.items():
        held = view.get("Pod", "default", name)
        if deleted:
            assert held is None
        else:
            assert held is not None and held["metadata"]["resourceVersion"] == str(rv)
