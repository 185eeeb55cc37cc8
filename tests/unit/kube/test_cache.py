"""The informer's cache: each object version applied once, relists yield only differences."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.kube.cache import Cache, CacheError, Delta


def cm(name: str, rev: int, ns: str = "default") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": str(rev)}}


def test_replayed_events_are_dropped() -> None:
    cache: Cache[dict[str, Any]] = Cache()
    assert cache.apply("ADDED", cm("a", 5)) is not None
    assert cache.apply("ADDED", cm("a", 5)) is None
    assert cache.apply("MODIFIED", cm("b", 4)) is None  # older than what the cache reflects
    assert cache.revision == 5


def test_bookmark_moves_the_revision_only() -> None:
    cache: Cache[dict[str, Any]] = Cache()
    assert cache.apply("BOOKMARK", {"metadata": {"resourceVersion": "9"}}) is None
    assert cache.revision == 9 and cache.objects == {}


def test_relist_yields_differences() -> None:
    cache: Cache[dict[str, Any]] = Cache()
    cache.replace([cm("a", 1), cm("b", 2)], 2)
    deltas = cache.replace([cm("b", 2), cm("c", 7), cm("a", 6)], 8)
    assert sorted((d.type, d.key[1]) for d in deltas) == [("ADDED", "c"), ("MODIFIED", "a")]
    deltas = cache.replace([], 9)
    assert sorted((d.type, d.key[1], d.revision) for d in deltas) == [
        ("DELETED", "a", 9),
        ("DELETED", "b", 9),
        ("DELETED", "c", 9),
    ]


def test_a_relist_keeps_the_held_version_of_an_unchanged_object() -> None:
    """Consumers got the first version in a delta; the relist's equal copy is not held too."""
    cache: Cache[dict[str, Any]] = Cache()
    first = cm("a", 1)
    cache.replace([first, cm("b", 2)], 2)
    newer = cm("b", 3)
    deltas = cache.replace([cm("a", 1), newer], 3)
    assert [(d.type, d.key[1]) for d in deltas] == [("MODIFIED", "b")]
    assert cache.objects[("default", "a")] is first
    assert cache.objects[("default", "b")] is newer


def test_bad_objects_are_named() -> None:
    cache: Cache[dict[str, Any]] = Cache()
    with pytest.raises(CacheError, match="resourceVersion 'x'"):
        cache.apply("ADDED", {"metadata": {"name": "a", "resourceVersion": "x"}})
    with pytest.raises(CacheError, match="metadata.name"):
        cache.apply("ADDED", {"metadata": {"resourceVersion": "1"}})
    with pytest.raises(CacheError, match="unknown watch event type 'WEIRD'"):
        cache.apply("WEIRD", cm("a", 3))


# A revision log: (revision, name, type); replayed with duplicates and an overlap, as a
# resumed watch may deliver it, the cache ends where the log ends, each revision once.
ops = st.lists(st.tuples(st.sampled_from("abcd"), st.booleans()), max_size=40)


def _log(script: list[tuple[str, bool]]) -> list[tuple[int, str, str]]:
    live: set[str] = set()
    log = []
    for rev, (name, delete) in enumerate(script, start=1):
        if delete and name in live:
            live.discard(name)
            log.append((rev, name, "DELETED"))
        elif not delete:
            log.append((rev, name, "MODIFIED" if name in live else "ADDED"))
            live.add(name)
    return log


@settings(max_examples=200)
@given(ops, st.integers(min_value=0, max_value=40), st.integers(min_value=0, max_value=40))
def test_replays_apply_each_revision_once(
    script: list[tuple[str, bool]], cut: int, back: int
) -> None:
    log = _log(script)
    cache: Cache[dict[str, Any]] = Cache()
    # Deliver the log up to `cut`, then resume `back` events earlier (a replay), to the end.
    resumed = log[:cut] + log[max(0, cut - back) :]
    applied: list[Delta[dict[str, Any]]] = []
    for rev, name, type_ in resumed:
        delta = cache.apply(type_, cm(name, rev))
        if delta is not None:
            applied.append(delta)
    assert [(d.revision, d.key[1], d.type) for d in applied] == log
    live = {}
    for rev, name, type_ in log:
        if type_ == "DELETED":
            live.pop(name)
        else:
            live[name] = rev
    assert {k[1]: int(v["metadata"]["resourceVersion"]) for k, v in cache.objects.items()} == live
